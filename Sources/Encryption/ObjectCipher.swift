import CSodium

/// The format of one encrypted object: libsodium's secretstream (XChaCha20-Poly1305), after
/// compression.
///
///     "PGBKENC1"                      8 bytes, clear
///     data key id                     16 hex digits, clear (which wrapped key opens it)
///     secretstream header             24 bytes
///     name length (big endian)        2 bytes
///     chunk 0: the object's name      name length + 17 bytes, authenticated like the data
///     chunks 1…n: the data            64 KiB + 17 bytes each; the last holds 0…64 KiB + 17
///                                     and carries TAG_FINAL
///
/// The chain of chunks is authenticated in order: a flipped bit, a reordered chunk or another
/// data key fails a chunk; a stream without its final chunk is truncated; an object that was
/// written under another name (a swapped object) decrypts, but names itself.
public enum ObjectCipher {
    public static let magic = Array("PGBKENC1".utf8)
    static let idBytes = 16
    public static let chunkSize = 64 * 1024
    static var headerBytes: Int { Int(crypto_secretstream_xchacha20poly1305_headerbytes()) }
    static var overhead: Int { Int(crypto_secretstream_xchacha20poly1305_abytes()) }

    /// The stored size of an object of `plainSize` bytes named `name`: what a listing shows.
    public static func encryptedSize(plainSize: Int64, name: String) -> Int64 {
        let chunks = max(1, (plainSize + Int64(chunkSize) - 1) / Int64(chunkSize))
        return Int64(magic.count + idBytes + headerBytes + 2 + name.utf8.count + overhead) + chunks * Int64(overhead) + plainSize
    }

    /// The plain size of a stored object of `encryptedSize` bytes named `name` (nil: not one).
    public static func plainSize(encryptedSize: Int64, name: String) -> Int64? {
        let fixed = Int64(magic.count + idBytes + headerBytes + 2 + name.utf8.count + overhead)
        let rest = encryptedSize - fixed
        guard rest >= Int64(overhead) else { return nil }
        let fullChunk = Int64(chunkSize + overhead)
        let chunks = max(1, (rest + fullChunk - 1) / fullChunk)
        let plain = rest - chunks * Int64(overhead)
        return plain >= 0 && Self.encryptedSize(plainSize: plain, name: name) == encryptedSize ? plain : nil
    }
}

/// Encrypts one object as it streams: feed any slices, then ``finish()``.
public final class ObjectEncryptor {
    private var state = crypto_secretstream_xchacha20poly1305_state()
    private var pending: [UInt8] = []
    private var started = false
    private let name: String

    public init(key: DataKey, name: String) throws(EncryptionError) {
        try Sodium.require()
        self.name = name
        var header = [UInt8](repeating: 0, count: ObjectCipher.headerBytes)
        key.secret.withBytes { _ = crypto_secretstream_xchacha20poly1305_init_push(&state, &header, $0.baseAddress!) }
        let nameBytes = Array(name.utf8)
        precondition(nameBytes.count <= Int(UInt16.max), "object names are short")
        precondition(key.id.utf8.count == ObjectCipher.idBytes, "data key ids are 16 hex digits")
        pending = ObjectCipher.magic + Array(key.id.utf8) + header + [UInt8(nameBytes.count >> 8), UInt8(nameBytes.count & 0xFF)]
        pending += seal(nameBytes, final: false)
    }

    deinit { sodium_memzero(&state, MemoryLayout.size(ofValue: state)) }

    /// Ciphertext for what `plain` completes; keeps up to one chunk back for the final tag.
    public func update(_ plain: [UInt8]) -> [UInt8] {
        var output = started ? [] : pending
        if !started { pending = []; started = true }
        pending += plain
        let chunks = max(0, (pending.count - 1) / ObjectCipher.chunkSize)
        guard chunks > 0 else { return output }
        output.reserveCapacity(output.count + chunks * (ObjectCipher.chunkSize + ObjectCipher.overhead))
        // Strictly more than a chunk: the last chunk must be sealed by finish(), with TAG_FINAL.
        pending.withUnsafeBufferPointer { buffer in
            for index in 0..<chunks {
                seal(UnsafeBufferPointer(rebasing: buffer[(index * ObjectCipher.chunkSize)..<((index + 1) * ObjectCipher.chunkSize)]), final: false, into: &output)
            }
        }
        pending.removeFirst(chunks * ObjectCipher.chunkSize)
        return output
    }

    /// The rest of the object: the last chunk, with TAG_FINAL.
    public func finish() -> [UInt8] {
        var output = update([])
        let last = pending
        last.withUnsafeBufferPointer { seal($0, final: true, into: &output) }
        pending = []
        return output
    }

    private func seal(_ plain: [UInt8], final: Bool) -> [UInt8] {
        var output: [UInt8] = []
        plain.withUnsafeBufferPointer { seal($0, final: final, into: &output) }
        return output
    }

    /// Appends one sealed chunk to `output`, written in place.
    private func seal(_ plain: UnsafeBufferPointer<UInt8>, final: Bool, into output: inout [UInt8]) {
        let tag = final ? crypto_secretstream_xchacha20poly1305_tag_final() : crypto_secretstream_xchacha20poly1305_tag_message()
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: plain.count + ObjectCipher.overhead))
        var length: UInt64 = 0
        output.withUnsafeMutableBufferPointer { buffer in
            _ = crypto_secretstream_xchacha20poly1305_push(&state, buffer.baseAddress! + start, &length, plain.baseAddress, UInt64(plain.count), nil, 0, tag)
        }
        output.removeLast(plain.count + ObjectCipher.overhead - Int(length))
    }
}

/// Decrypts one object as it streams: feed what storage returns, then ``finish()``. Every error
/// names the object.
public final class ObjectDecryptor {
    private var state = crypto_secretstream_xchacha20poly1305_state()
    private var buffer: [UInt8] = []
    private var phase = Phase.header
    private let keys: [String: DataKey]
    private let name: String

    private enum Phase {
        case header
        case name(length: Int)
        case data
        case done
    }

    /// `keys`: the data keys the object may name, by id.
    public init(keys: [DataKey], name: String) throws(EncryptionError) {
        try Sodium.require()
        self.keys = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.name = name
    }

    public convenience init(key: DataKey, name: String) throws(EncryptionError) {
        try self.init(keys: [key], name: name)
    }

    deinit { sodium_memzero(&state, MemoryLayout.size(ofValue: state)) }

    /// The plain bytes `cipher` completes.
    public func update(_ cipher: [UInt8]) throws(EncryptionError) -> [UInt8] {
        buffer += cipher
        var output: [UInt8] = []
        var offset = 0
        loop: while true {
            switch phase {
            case .header:
                let needed = ObjectCipher.magic.count + ObjectCipher.idBytes + ObjectCipher.headerBytes + 2
                guard buffer.count - offset >= needed else { break loop }
                guard Array(buffer[offset..<(offset + ObjectCipher.magic.count)]) == ObjectCipher.magic else {
                    throw EncryptionError(.notEncrypted, message: "\(name) is not an encrypted pgbackd object (no PGBKENC1 header): it was stored without encryption, or replaced")
                }
                let idStart = offset + ObjectCipher.magic.count
                let id = String(decoding: buffer[idStart..<(idStart + ObjectCipher.idBytes)], as: UTF8.self)
                guard let key = keys[id] else {
                    throw EncryptionError(.unknownDataKey, message: "\(name) was encrypted with data key \(id), which the repository has no wrapped copy of (its keys/ object is missing)")
                }
                let headerStart = idStart + ObjectCipher.idBytes
                let header = Array(buffer[headerStart..<(headerStart + ObjectCipher.headerBytes)])
                let status = key.secret.withBytes { crypto_secretstream_xchacha20poly1305_init_pull(&state, header, $0.baseAddress!) }
                guard status == 0 else { throw EncryptionError(.tampered, message: "\(name): the stream header is invalid") }
                let length = Int(buffer[offset + needed - 2]) << 8 | Int(buffer[offset + needed - 1])
                offset += needed
                phase = .name(length: length)
            case .name(let length):
                guard buffer.count - offset >= length + ObjectCipher.overhead else { break loop }
                let (plain, final) = try open(Array(buffer[offset..<(offset + length + ObjectCipher.overhead)]), first: true)
                offset += length + ObjectCipher.overhead
                let written = String(decoding: plain, as: UTF8.self)
                guard written == name else {
                    throw EncryptionError(.wrongObject, message: "\(name) holds the encrypted content of \(written): the object was swapped or copied")
                }
                phase = final ? .done : .data
            case .data:
                // A full chunk is only known not to be the last once more bytes follow it.
                let full = ObjectCipher.chunkSize + ObjectCipher.overhead
                guard buffer.count - offset > full else { break loop }
                let final = try open(from: offset, count: full, into: &output)
                offset += full
                if final { phase = .done }
            case .done:
                if buffer.count > offset {
                    throw EncryptionError(.tampered, message: "\(name) has bytes after its final chunk")
                }
                break loop
            }
        }
        buffer.removeFirst(offset)
        return output
    }

    /// The last chunk; throws ``EncryptionError/Code/truncated`` when the stream ends early.
    public func finish() throws(EncryptionError) -> [UInt8] {
        var output = try update([])
        switch phase {
        case .done:
            return output
        case .data where !buffer.isEmpty:
            let (plain, final) = try open(buffer, first: false, last: true)
            guard final else {
                throw EncryptionError(.truncated, message: "\(name) ends before its final chunk: the object was cut short")
            }
            output += plain
            buffer = []
            phase = .done
            return output
        default:
            throw EncryptionError(.truncated, message: "\(name) ends before its final chunk: the object was cut short")
        }
    }

    /// Opens the data chunk at `buffer[offset..<offset+count]` straight into `output`.
    private func open(from offset: Int, count: Int, into output: inout [UInt8]) throws(EncryptionError) -> Bool {
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: count - ObjectCipher.overhead))
        var length: UInt64 = 0
        var tag: UInt8 = 0
        let status = buffer.withUnsafeBufferPointer { cipher in
            output.withUnsafeMutableBufferPointer { plain in
                crypto_secretstream_xchacha20poly1305_pull(&state, plain.baseAddress! + start, &length, &tag, cipher.baseAddress! + offset, UInt64(count), nil, 0)
            }
        }
        guard status == 0 else {
            output.removeLast(count - ObjectCipher.overhead)
            throw EncryptionError(.tampered, message: "\(name) fails authentication: bits were altered or chunks reordered")
        }
        output.removeLast(count - ObjectCipher.overhead - Int(length))
        return tag == crypto_secretstream_xchacha20poly1305_tag_final()
    }

    private func open(_ cipher: [UInt8], first: Bool, last: Bool = false) throws(EncryptionError) -> ([UInt8], Bool) {
        guard cipher.count >= ObjectCipher.overhead else {
            throw EncryptionError(.truncated, message: "\(name) ends inside a chunk: the object was cut short")
        }
        var plain = [UInt8](repeating: 0, count: cipher.count - ObjectCipher.overhead)
        var length: UInt64 = 0
        var tag: UInt8 = 0
        guard crypto_secretstream_xchacha20poly1305_pull(&state, &plain, &length, &tag, cipher, UInt64(cipher.count), nil, 0) == 0 else {
            if first {
                throw EncryptionError(.tampered, message: "\(name) does not decrypt with its data key: it belongs to another backup or WAL epoch, or was altered")
            }
            if last && cipher.count < ObjectCipher.chunkSize + ObjectCipher.overhead {
                throw EncryptionError(.truncated, message: "\(name) fails authentication in its last chunk: the object was cut short or altered at its end")
            }
            throw EncryptionError(.tampered, message: "\(name) fails authentication: bits were altered or chunks reordered")
        }
        return (Array(plain.prefix(Int(length))), tag == crypto_secretstream_xchacha20poly1305_tag_final())
    }
}
