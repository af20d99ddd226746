import Foundation
import ObjectStorage
import Synchronization

/// Any storage, with every object it holds encrypted (``ObjectCipher``) under a data key per
/// scope, each data key stored wrapped by the repository key under `keysPrefix`. It honours the
/// storage contract as seen from above: keys, sizes and bytes are the plain ones.
///
/// - An encrypted object is stored as `<key>.enc`, so a listing tells it apart from an object
///   written before encryption was turned on, which is still read as it is.
/// - The layout names a key's data-key scope (`backups/<id>`, `wal/<timeline>/<log>`, `meta`),
///   or nil for what stays in clear: the repository marker and the wrapped keys themselves; and
///   where the wrapped keys are.
/// - Data keys are created on first write to a scope, one per process that writes there; no two
///   writers ever replace each other's key (each has its own id).
public final class EncryptedStorage: ObjectStorage, Sendable {
    public static let suffix = ".enc"

    public let base: any ObjectStorage
    /// The current key first (new data keys are wrapped under it), then old ones (read only).
    public let keys: [RepositoryKey]
    let layout: any EncryptionLayout
    private let writing = Mutex<[String: DataKey]>([:])
    private let known = Mutex<[String: DataKey]>([:])

    public init(base: any ObjectStorage, keys: [RepositoryKey], layout: any EncryptionLayout) {
        precondition(!keys.isEmpty, "an encrypted storage needs its key")
        self.base = base
        self.keys = keys
        self.layout = layout
    }

    func scope(_ key: String) -> String? { layout.encryptionScope(ofKey: key) }

    /// The data key `scope`'s new objects are encrypted with: one the scope has under the
    /// current repository key, else a new one (so a scope gets one key per rotation, not one per
    /// process that writes to it).
    func writingKey(_ scope: String) async throws -> DataKey {
        if let key = writing.withLock({ $0[scope] }) { return key }
        for object in try await base.list(prefix: layout.wrappedKeysPrefix(scope: scope)) {
            guard let id = layout.wrappedKeyId(ofKey: object.key, scope: scope),
                  let wrapped = try? JSONDecoder().decode(WrappedKey.self, from: Data(try await base.getAll(key: object.key))),
                  wrapped.keyFingerprint == keys[0].fingerprint, wrapped.keyId == id, wrapped.scope == scope,
                  let key = try? wrapped.unwrap(with: [keys[0]]) else { continue }
            return writing.withLock { writing in
                if let existing = writing[scope] { return existing }
                writing[scope] = key
                return key
            }
        }
        let (dataKey, wrapped) = try WrappedKey.generate(scope: scope, under: keys[0])
        try await base.put(key: layout.wrappedKeyKey(scope: scope, keyId: dataKey.id), bytes: Array(try JSONEncoder().encode(wrapped)))
        return writing.withLock { writing in
            if let existing = writing[scope] { return existing } // a concurrent first write won
            writing[scope] = dataKey
            return dataKey
        }
    }

    /// Every data key of `scope` the repository holds, unwrapped (read each time: another
    /// process may have added one).
    func readingKeys(_ scope: String) async throws -> [DataKey] {
        var result: [DataKey] = []
        for object in try await base.list(prefix: layout.wrappedKeysPrefix(scope: scope)) {
            guard let id = layout.wrappedKeyId(ofKey: object.key, scope: scope) else { continue }
            if let key = known.withLock({ $0[id] }) {
                result.append(key)
                continue
            }
            let wrapped = try JSONDecoder().decode(WrappedKey.self, from: Data(try await base.getAll(key: object.key)))
            guard wrapped.keyId == id, wrapped.scope == scope else {
                throw EncryptionError(.tampered, message: "the wrapped key \(object.key) names key \(wrapped.keyId) of \(wrapped.scope): it was moved or altered")
            }
            let key = try wrapped.unwrap(with: keys)
            known.withLock { $0[id] = key }
            result.append(key)
        }
        return result
    }

    // MARK: ObjectStorage

    public func makeUpload(key: String, expectedSize: Int64?) async throws -> any ObjectUpload {
        guard !key.isEmpty, let scope = scope(key) else { return try await base.makeUpload(key: key, expectedSize: expectedSize) }
        let dataKey = try await writingKey(scope)
        let upload = try await base.makeUpload(key: key + Self.suffix,
                                               expectedSize: expectedSize.map { ObjectCipher.encryptedSize(plainSize: $0, name: key) })
        return EncryptingUpload(key: key, upload: upload, encryptor: try ObjectEncryptor(key: dataKey, name: key))
    }

    public func get(key: String, range: Range<Int64>?) async throws -> ObjectByteStream {
        guard let scope = scope(key) else { return try await base.get(key: key, range: range) }
        guard try await base.head(key: key + Self.suffix) != nil else {
            return try await base.get(key: key, range: range) // written before encryption, or absent
        }
        let decryptor = try ObjectDecryptor(keys: try await readingKeys(scope), name: key)
        let stream = ObjectByteStream(transforming: try await base.get(key: key + Self.suffix, range: nil),
                                      with: DecryptingTransform(decryptor: decryptor, range: range))
        return stream
    }

    public func head(key: String) async throws -> ObjectInfo? {
        guard scope(key) != nil else { return try await base.head(key: key) }
        if let info = try await base.head(key: key + Self.suffix) { return try plain(info) }
        return try await base.head(key: key)
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        try await base.list(prefix: prefix).map { info in
            guard info.key.hasSuffix(Self.suffix), scope(String(info.key.dropLast(Self.suffix.count))) != nil else { return info }
            return try plain(info)
        }.sorted { $0.key < $1.key }
    }

    public func delete(key: String) async throws {
        if scope(key) != nil { try await base.delete(key: key + Self.suffix) }
        try await base.delete(key: key)
    }

    public func abortIncompleteUploads(prefix: String, startedBefore date: Date) async throws -> Int {
        try await base.abortIncompleteUploads(prefix: prefix, startedBefore: date)
    }

    /// A stored encrypted object as the layer above sees it: its own key and plain size.
    private func plain(_ info: ObjectInfo) throws -> ObjectInfo {
        let key = String(info.key.dropLast(Self.suffix.count))
        guard let size = ObjectCipher.plainSize(encryptedSize: info.size, name: key) else {
            throw EncryptionError(.truncated, message: "\(info.key) has \(info.size) bytes, which no encrypted object of that name can have: it was cut short or altered")
        }
        return ObjectInfo(key: key, size: size, lastModified: info.lastModified)
    }
}

/// An upload that encrypts what is written to it.
final class EncryptingUpload: ObjectUpload, Sendable {
    let key: String
    let upload: any ObjectUpload
    private let state: Mutex<(encryptor: ObjectEncryptor, plainBytes: Int64)>

    init(key: String, upload: any ObjectUpload, encryptor: sending ObjectEncryptor) {
        self.key = key
        self.upload = upload
        state = Mutex((encryptor, 0))
    }

    func write(_ bytes: [UInt8]) async throws {
        let cipher = state.withLock { state in
            state.plainBytes += Int64(bytes.count)
            return state.encryptor.update(bytes)
        }
        if !cipher.isEmpty { try await upload.write(cipher) }
    }

    func commit() async throws -> ObjectInfo {
        let (cipher, plainBytes) = state.withLock { ($0.encryptor.finish(), $0.plainBytes) }
        try await upload.write(cipher)
        let info = try await upload.commit()
        return ObjectInfo(key: key, size: plainBytes, lastModified: info.lastModified)
    }

    func abort() async { await upload.abort() }
}

/// Decryption as a stream transform, optionally cut to a byte range of the plain object.
final class DecryptingTransform: ByteStreamTransform {
    private let state: Mutex<(decryptor: ObjectDecryptor, offset: Int64)>
    let range: Range<Int64>?

    init(decryptor: sending ObjectDecryptor, range: Range<Int64>?) {
        state = Mutex((decryptor, 0))
        self.range = range
    }

    func next(_ chunk: [UInt8]) throws -> [UInt8] {
        try state.withLock { state in cut(try state.decryptor.update(chunk), at: &state.offset) }
    }

    func finish() throws -> [UInt8] {
        try state.withLock { state in cut(try state.decryptor.finish(), at: &state.offset) }
    }

    private func cut(_ plain: [UInt8], at offset: inout Int64) -> [UInt8] {
        defer { offset += Int64(plain.count) }
        guard let range else { return plain }
        let start = max(range.lowerBound - offset, 0), end = min(range.upperBound - offset, Int64(plain.count))
        return start < end ? Array(plain[Int(start)..<Int(end)]) : []
    }
}

/// Where an encrypted repository keeps what: the repository's key layout answers for it.
public protocol EncryptionLayout: Sendable {
    /// The data-key scope of an object key; nil for objects stored in clear.
    func encryptionScope(ofKey key: String) -> String?
    /// Where the wrapped data keys of `scope` are listed.
    func wrappedKeysPrefix(scope: String) -> String
    /// The object holding one wrapped data key.
    func wrappedKeyKey(scope: String, keyId: String) -> String
    /// The data key id a wrapped key's object names; nil for another object.
    func wrappedKeyId(ofKey key: String, scope: String) -> String?
}
