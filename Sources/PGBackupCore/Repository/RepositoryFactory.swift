import Foundation
import Logging
import ObjectStorage

/// Opens the repository the configuration names.
public enum RepositoryFactory {
    public static func open(_ configuration: Configuration, logger: Logger) async throws -> Repository {
        Repository(storage: try storage(configuration.repository, logger: logger), stanza: configuration.repository.stanza)
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
