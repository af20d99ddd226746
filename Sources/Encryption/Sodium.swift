import CSodium

/// libsodium's one-time initialisation (thread-safe, idempotent in libsodium itself).
enum Sodium {
    static let ready: Bool = sodium_init() >= 0

    static func require() throws(EncryptionError) {
        guard ready else { throw EncryptionError(.unavailable, message: "libsodium could not be initialised (sodium_init failed)") }
    }
}

/// 32 secret bytes that are wiped when their owner goes away.
public final class SecretBytes: Sendable {
    /// Read only through ``withBytes(_:)``; never printed.
    private nonisolated(unsafe) let storage: UnsafeMutableBufferPointer<UInt8>

    init(copying bytes: some Collection<UInt8>) {
        storage = .allocate(capacity: bytes.count)
        _ = storage.initialize(from: bytes)
    }

    init(random count: Int) {
        storage = .allocate(capacity: count)
        randombytes_buf(storage.baseAddress!, count)
    }

    deinit {
        sodium_memzero(storage.baseAddress!, storage.count)
        storage.deallocate()
    }

    var count: Int { storage.count }

    func withBytes<T>(_ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
        try body(UnsafeBufferPointer(storage))
    }
}
