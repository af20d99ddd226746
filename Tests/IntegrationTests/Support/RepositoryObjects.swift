import Encryption
import Foundation
import ObjectStorage
import PGBackupCore

/// A test's direct hands on a file repository's objects (keys as the storage names them,
/// `<stanza>/backups/...`). In a plain repository they are the files themselves, read and
/// written exactly as before; in an encrypted one (PGBACKD_TEST_ENCRYPTION=1) each object is
/// `<key>.enc`, ciphertext bound to its name, so a test that plants or reads an object's plain
/// bytes goes through pgbackd's own encrypting storage, and one that damages the stored bytes
/// flips them in the `.enc` file.
struct RepositoryObjects: Sendable {
    let root: String
    let repository: Repository

    init(configuration: Configuration) async throws {
        guard case .file(let root) = configuration.repository.kind else {
            throw ObjectsError(description: "RepositoryObjects needs a file repository")
        }
        self.root = root
        repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)
    }

    init(config path: String) async throws {
        try await self.init(configuration: try Configuration.load(path: path))
    }

    /// The file holding `key` on disk: `<key>.enc` when encrypted.
    func path(_ key: String) -> String { Self.path(root: root, key) }

    static func path(root: String, _ key: String) -> String {
        "\(root)/\(key)\(TestServices.objectSuffix)"
    }

    /// The object's key for a file's key in a listing of the bare files (`<key>.enc` → `<key>`).
    static func key(file: String) -> String {
        TestServices.encrypted && file.hasSuffix(EncryptedStorage.suffix) ? String(file.dropLast(EncryptedStorage.suffix.count)) : file
    }

    /// The object's plain bytes (as pgbackd wrote them before any encryption).
    func read(_ key: String) async throws -> [UInt8] {
        guard TestServices.encrypted else { return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(key)))) }
        return try await repository.storage.getAll(key: key)
    }

    /// A file with the object's plain bytes, for tools outside pgbackd (gunzip, sha256sum): the
    /// object's own file in a plain repository; encrypted, a decrypted copy in `directory`, after
    /// checking that what is stored is ciphertext, not the plain bytes.
    func plainFile(_ key: String, in directory: String) async throws -> String {
        guard TestServices.encrypted else { return path(key) }
        let bytes = try await read(key)
        let stored = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path(key))))
        guard stored.count > bytes.count, !stored.starts(with: bytes.prefix(16)) else {
            throw ObjectsError(description: "\(path(key)) holds the plain bytes of \(key), not ciphertext")
        }
        let copy = "\(directory)/\((key as NSString).lastPathComponent)"
        try Data(bytes).write(to: URL(fileURLWithPath: copy))
        return copy
    }

    /// Stores `bytes` as the object `key`, as pgbackd would have written them.
    func write(_ key: String, _ bytes: [UInt8]) async throws {
        guard TestServices.encrypted else { return try Data(bytes).write(to: URL(fileURLWithPath: path(key))) }
        _ = try await repository.storage.put(key: key, bytes: bytes)
    }

    func remove(_ key: String) throws {
        try FileManager.default.removeItem(atPath: path(key))
    }

    struct ObjectsError: Error, CustomStringConvertible {
        var description: String
    }
}
