import Foundation
import Encryption
import ObjectStorage
import Testing

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
