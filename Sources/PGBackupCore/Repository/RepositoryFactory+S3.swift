import Logging
import ObjectStorage

extension RepositoryFactory {
    static func makeS3Storage(_ settings: S3RepositorySettings, logger: Logger) throws -> any ObjectStorage {
        throw StorageError(.invalidArgument, message: "the S3 driver is not built yet")
    }
}
