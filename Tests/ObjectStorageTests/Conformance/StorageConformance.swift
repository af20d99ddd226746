import Foundation
import Encryption
import ObjectStorage
import Testing

/// The behaviour every driver must share (DESIGN.md §3). Each driver's suite calls `runAll`
/// with a storage and a prefix of its own, so the same checks run against memory, disk and S3.
enum StorageConformance {
    /// - Parameters:
    ///   - interruptedUploadSize: bytes an interrupted upload has written; S3 needs more than a
    ///     part before anything (a multipart upload) exists on the server.
    ///   - reportsUploadStartTimes: moto dates every multipart upload 2010-11-10.
    static func runAll(_ storage: any ObjectStorage, prefix: String, interruptedUploadSize: Int = 1000, reportsUploadStartTimes: Bool = true) async throws {
        try await roundTrip(storage, prefix: prefix + "/round-trip")
        try await streamingUpload(storage, prefix: prefix + "/streaming")
        try await invisibleUntilCommit(storage, prefix: prefix + "/commit-point")
        try await rangedGet(storage, prefix: prefix + "/range")
        try await missingObjects(storage, prefix: prefix + "/missing")
        try await listing(storage, prefix: prefix + "/list")
        try await overwrite(storage, prefix: prefix + "/overwrite")
        try await incompleteUploadsAreAborted(storage, prefix: prefix + "/incomplete", size: interruptedUploadSize, checkStartTimes: reportsUploadStartTimes)
        try await invalidKeysAreRejected(storage, prefix: prefix)
    }

    static func pattern(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &+ ($0 >> 9)) }
    }

    static func roundTrip(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/object.bin"
        let bytes = pattern(100_000)
        let stored = try await storage.put(key: key, bytes: bytes)
        #expect(stored.size == 100_000)
        #expect(try await storage.getAll(key: key) == bytes)
        #expect(try await storage.head(key: key)?.size == 100_000)
        #expect(try await storage.list(prefix: prefix).map(\.key) == [key])
        try await storage.delete(key: key)
        #expect(try await storage.head(key: key) == nil)
        #expect(try await storage.list(prefix: prefix).isEmpty)
    }

    static func streamingUpload(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/large.bin"
        let bytes = pattern(3 << 20 | 12345, seed: 3)
        let upload = try await storage.makeUpload(key: key, expectedSize: nil)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + 65_537, bytes.count)
            try await upload.write(Array(bytes[offset..<end]))
            offset = end
        }
        let info = try await upload.commit()
        #expect(info.size == Int64(bytes.count))
        #expect(try await storage.getAll(key: key) == bytes)
        try await storage.delete(key: key)
    }

    static func invisibleUntilCommit(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/manifest.json"
        let upload = try await storage.makeUpload(key: key, expectedSize: nil)
        try await upload.write(Array("{\"half\":".utf8))
        #expect(try await storage.head(key: key) == nil)
        #expect(try await storage.list(prefix: prefix).isEmpty)
        await upload.abort()
        #expect(try await storage.head(key: key) == nil)
        #expect(try await storage.list(prefix: prefix).isEmpty)
        #expect(try await storage.abortIncompleteUploads(prefix: prefix, startedBefore: Date().addingTimeInterval(60)) == 0)
    }

    static func rangedGet(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/ranged.bin"
        let bytes = pattern(10_000, seed: 9)
        try await storage.put(key: key, bytes: bytes)
        #expect(try await storage.getAll(key: key, range: 100..<1100) == Array(bytes[100..<1100]))
        #expect(try await storage.getAll(key: key, range: 9_990..<10_000) == Array(bytes[9_990..<10_000]))
        try await storage.delete(key: key)
    }

    static func missingObjects(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/nothing-here"
        #expect(try await storage.head(key: key) == nil)
        try await storage.delete(key: key)
        do {
            _ = try await storage.getAll(key: key)
            Issue.record("reading a missing object must fail")
        } catch let error as StorageError {
            #expect(error.code == .notFound)
            #expect(error.description.contains("nothing-here"))
        }
    }

    static func listing(_ storage: any ObjectStorage, prefix: String) async throws {
        let keys = [prefix + "/a/1", prefix + "/a/2", prefix + "/ab", prefix + "/b/deep/x"]
        for key in keys.reversed() { try await storage.put(key: key, bytes: [1, 2, 3]) }
        #expect(try await storage.list(prefix: prefix + "/").map(\.key) == keys)
        #expect(try await storage.list(prefix: prefix + "/a").map(\.key) == Array(keys[0...2]))
        #expect(try await storage.list(prefix: prefix + "/a/").map(\.key) == Array(keys[0...1]))
        #expect(try await storage.list(prefix: prefix + "/b/").map(\.size) == [3])
        for key in keys { try await storage.delete(key: key) }
        #expect(try await storage.list(prefix: prefix).isEmpty)
    }

    static func overwrite(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/object"
        try await storage.put(key: key, bytes: pattern(5000))
        try await storage.put(key: key, bytes: [42])
        #expect(try await storage.getAll(key: key) == [42])
        try await storage.delete(key: key)
    }

    static func incompleteUploadsAreAborted(_ storage: any ObjectStorage, prefix: String, size: Int, checkStartTimes: Bool) async throws {
        let key = prefix + "/interrupted.dump.gz"
        let upload = try await storage.makeUpload(key: key, expectedSize: nil)
        try await upload.write(pattern(size))
        // The process "dies" here: neither commit nor abort is ever called.
        if checkStartTimes {
            #expect(try await storage.abortIncompleteUploads(prefix: prefix, startedBefore: Date().addingTimeInterval(-3600)) == 0)
        }
        #expect(try await storage.abortIncompleteUploads(prefix: prefix, startedBefore: Date().addingTimeInterval(60)) == 1)
        #expect(try await storage.abortIncompleteUploads(prefix: prefix, startedBefore: Date().addingTimeInterval(60)) == 0)
        #expect(try await storage.head(key: key) == nil)
        #expect(try await storage.list(prefix: prefix).isEmpty)
    }

    static func invalidKeysAreRejected(_ storage: any ObjectStorage, prefix: String) async throws {
        for key in ["", "/absolute", prefix + "/../escape", prefix + "//double"] {
            await #expect(throws: StorageError.self) { try await storage.put(key: key, bytes: [1]) }
        }
    }
}

@Suite struct MemoryStorageConformance {
    @Test func conformance() async throws {
        let storage = MemoryStorage()
        try await StorageConformance.runAll(storage, prefix: "memory")
        #expect(storage.incompleteUploadCount == 0)
    }
}

@Suite struct FileStorageConformance {
    @Test func conformance() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-file-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await StorageConformance.runAll(FileStorage(root: root), prefix: "stanza")
    }

    @Test func unwritableRootNamesTheDirectory() async throws {
        let storage = FileStorage(root: "/proc/pgbackd-cannot-exist")
        do {
            try await storage.put(key: "x/y", bytes: [1])
            Issue.record("writing under /proc must fail")
        } catch let error as StorageError {
            #expect(error.code == .io)
            #expect(error.description.contains("/proc/pgbackd-cannot-exist"))
        }
    }
}

@Suite(.enabled(if: S3TestServer.current != nil || S3TestServer.isCI, "no S3 test server: run scripts/services.sh start"))
struct S3StorageConformance {
    @Test func conformance() async throws {
        guard let server = S3TestServer.required() else { return }
        try await StorageConformance.runAll(try server.storage(prefix: uniquePrefix("conformance"), partSize: 5 << 20), prefix: "stanza",
                                            interruptedUploadSize: 11 << 20, reportsUploadStartTimes: false)
    }
}

/// The encrypting layer keeps the contract over each driver: what goes in comes out, sizes are the
/// plain ones, and nothing under the tests' prefixes is stored in clear.
@Suite struct EncryptedStorageConformance {
    /// Scopes by first path component; wrapped keys under `keys/`.
    struct Layout: EncryptionLayout {
        func encryptionScope(ofKey key: String) -> String? { key.hasPrefix("keys/") ? nil : String(key.split(separator: "/").first ?? "meta") }
        func wrappedKeysPrefix(scope: String) -> String { "keys/\(scope)/" }
        func wrappedKeyKey(scope: String, keyId: String) -> String { "keys/\(scope)/\(keyId)" }
        func wrappedKeyId(ofKey key: String, scope: String) -> String? {
            key.hasPrefix(wrappedKeysPrefix(scope: scope)) ? String(key.dropFirst(wrappedKeysPrefix(scope: scope).count)) : nil
        }
    }

    static func encrypted(_ base: any ObjectStorage) throws -> EncryptedStorage {
        EncryptedStorage(base: base, keys: [try RepositoryKey.generate()], layout: Layout())
    }

    @Test func overMemory() async throws {
        let base = MemoryStorage()
        try await StorageConformance.runAll(try Self.encrypted(base), prefix: "memory")
        #expect(base.incompleteUploadCount == 0)
    }

    @Test func overFiles() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-enc-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await StorageConformance.runAll(try Self.encrypted(FileStorage(root: root)), prefix: "stanza")
    }

    @Test(.enabled(if: S3TestServer.current != nil || S3TestServer.isCI, "no S3 test server: run scripts/services.sh start"))
    func overS3() async throws {
        guard let server = S3TestServer.required() else { return }
        try await StorageConformance.runAll(try Self.encrypted(try server.storage(prefix: uniquePrefix("encrypted"), partSize: 5 << 20)),
                                            prefix: "stanza", interruptedUploadSize: 11 << 20, reportsUploadStartTimes: false)
    }

    @Test func whatIsStoredIsCiphertextAndOldPlainObjectsStillRead() async throws {
        let base = MemoryStorage()
        try await base.put(key: "stanza/old.bin", bytes: Array("written before encryption".utf8))
        let storage = try Self.encrypted(base)
        let marker = Array("MARKER-row-content".utf8)
        let plain = Array(repeating: marker, count: 10_000).flatMap { $0 }
        try await storage.put(key: "stanza/new.bin", bytes: plain)
        let stored = try await base.getAll(key: "stanza/new.bin.enc")
        #expect(stored.firstRange(of: marker) == nil)
        #expect(try await base.head(key: "stanza/new.bin") == nil)
        #expect(try await base.list(prefix: "keys/stanza/").count == 1, "one wrapped data key for the scope")
        #expect(try await storage.getAll(key: "stanza/new.bin") == plain)
        #expect(try await storage.getAll(key: "stanza/old.bin") == Array("written before encryption".utf8))
        #expect(try await storage.list(prefix: "stanza/").map(\.key) == ["stanza/new.bin", "stanza/old.bin"])
        #expect(try await storage.head(key: "stanza/new.bin")?.size == Int64(plain.count))
        // Another repository key cannot read it, and says whose key it needs.
        let stranger = EncryptedStorage(base: base, keys: [try RepositoryKey.generate()], layout: Layout())
        do {
            _ = try await stranger.getAll(key: "stanza/new.bin")
            Issue.record("read with the wrong key")
        } catch let error as EncryptionError {
            #expect(error.code == .wrongKey)
            #expect(error.message.contains(storage.keys[0].fingerprint))
        }
    }
}
