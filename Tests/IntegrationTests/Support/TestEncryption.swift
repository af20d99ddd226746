import Encryption
import Foundation

/// `PGBACKD_TEST_ENCRYPTION=1` (scripts/test.sh's `encrypted` rows) runs the integration suite on
/// encrypted repositories (issue #15): every configuration the tests write gets an `[encryption]`
/// table naming one repository key this test process makes once. Read here only, never by pgbackd.
extension TestServices {
    static var encrypted: Bool { environment["PGBACKD_TEST_ENCRYPTION"] == "1" }

    /// The process's key file, /tmp/pgbackd-test-key-<pid>/repo.key, mode 0600 and owned by
    /// `postgres` when the tests run as root: archive_command runs pgbackd as postgres, and root
    /// reads it anyway. Nil without encryption.
    static let encryptionKeyFile: String? = {
        guard encrypted else { return nil }
        let directory = "/tmp/pgbackd-test-key-\(getpid())"
        let path = "\(directory)/repo.key"
        do {
            try? FileManager.default.removeItem(atPath: directory)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
            try RepositoryKey.generate().write(to: path)
            if geteuid() == 0, let user = getpwnam("postgres") {
                guard chown(path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                    fatalError("PGBACKD_TEST_ENCRYPTION: cannot give \(path) to postgres: \(String(cString: strerror(errno)))")
                }
            }
        } catch {
            fatalError("PGBACKD_TEST_ENCRYPTION: cannot write the test repository key \(path): \(error)")
        }
        atexit { try? FileManager.default.removeItem(atPath: "/tmp/pgbackd-test-key-\(getpid())") }
        return path
    }()

    /// What an object's file or S3 key ends in beyond its key: ".enc" when encrypted.
    static var objectSuffix: String { encrypted ? EncryptedStorage.suffix : "" }

    /// The `[encryption]` table every test configuration ends with: "" without encryption.
    static var encryptionTOML: String { encryptionKeyFile.map(encryptionTOML(keyFile:)) ?? "" }

    static func encryptionTOML(keyFile: String) -> String {
        "\n[encryption]\nkey_file = \"\(keyFile)\"\n"
    }

    /// A copy of the test key that `user` owns (mode 0600), for a test running pgbackd as a user
    /// that may not read the shared key; nil without encryption.
    static func encryptionKeyCopy(in directory: String, owner user: String) throws -> String? {
        guard let keyFile = encryptionKeyFile else { return nil }
        let path = "\(directory)/\(user).key"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: keyFile))
        guard FileManager.default.createFile(atPath: path, contents: bytes, attributes: [.posixPermissions: 0o600]),
              let entry = getpwnam(user), chown(path, entry.pointee.pw_uid, entry.pointee.pw_gid) == 0 else {
            throw EncryptionKeyCopyError(path: path)
        }
        return path
    }

    struct EncryptionKeyCopyError: Error, CustomStringConvertible {
        var path: String
        var description: String { "cannot write a copy of the test repository key at \(path): \(String(cString: strerror(errno)))" }
    }
}
