import Encryption
import Foundation
import Logging
import ObjectStorage

/// Opens the repository the configuration names.
public enum RepositoryFactory {
    /// The repository, encrypting when `[encryption]` says so; refused when the configuration's
    /// keys do not fit the stanza (``Repository/checkEncryption()``), before anything is read.
    public static func open(_ configuration: Configuration, logger: Logger, checkingEncryption: Bool = true) async throws -> Repository {
        let base = try storage(configuration.repository, logger: logger)
        let layout = RepositoryLayout(stanza: configuration.repository.stanza)
        guard let encryption = configuration.encryption else {
            let repository = Repository(storage: base, stanza: configuration.repository.stanza)
            if checkingEncryption { try await repository.checkEncryption() }
            return repository
        }
        let keys = try ([encryption.keyFile] + encryption.oldKeyFiles).map { path throws(EncryptionError) in try RepositoryKey.load(path: path) }
        let repository = Repository(storage: EncryptedStorage(base: base, keys: keys, layout: layout), stanza: configuration.repository.stanza)
        if checkingEncryption { try await repository.checkEncryption() }
        return repository
    }

    static func storage(_ repository: RepositoryConfiguration, logger: Logger) throws -> any ObjectStorage {
        switch repository.kind {
        case .file(let path):
            return FileStorage(root: path)
        case .s3(let settings):
            return try makeS3Storage(settings, logger: logger)
        }
    }

    /// For messages: where the repository is, without secrets.
    public static func describe(_ configuration: Configuration) -> String {
        switch configuration.repository.kind {
        case .file(let path): "file repository \(path)"
        case .s3(let s3): "S3 bucket \(s3.bucket) at \(s3.endpoint)"
        }
    }
}
