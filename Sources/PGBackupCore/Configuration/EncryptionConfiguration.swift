import Foundation

/// `[encryption]`: client-side encryption of everything stored (docs/operations.md,
/// "Encryption"). Absent: nothing is encrypted.
public struct EncryptionConfiguration: Sendable, Equatable {
    /// The repository key's file (`pgbackd keygen` writes one), mode 0600. A relative path names
    /// a systemd credential (`LoadCredential=`), read from `$CREDENTIALS_DIRECTORY`, else next to
    /// the configuration file. Required.
    public var keyFile: String
    /// Keys rotated away from, still tried for reading until `pgbackd rekey` has rewrapped every
    /// data key under `key_file`. Default none.
    public var oldKeyFiles: [String]

    public init(keyFile: String, oldKeyFiles: [String] = []) {
        self.keyFile = keyFile
        self.oldKeyFiles = oldKeyFiles
    }

    init?(_ reader: TOMLReader?, environment: [String: String]) throws {
        guard let reader else { return nil }
        guard let keyFile = try reader.string("key_file"), !keyFile.isEmpty else {
            throw reader.error(.missingKey, "key_file", "[encryption] needs key_file: the repository key's file, as 'pgbackd keygen --output FILE' writes it")
        }
        let resolve = { (path: String) in S3RepositorySettings.secretFilePath(path, configurationFile: reader.file, environment: environment) }
        self.keyFile = resolve(keyFile)
        oldKeyFiles = try (reader.strings("old_key_files") ?? []).map(resolve)
        try reader.rejectUnknownKeys()
    }
}
