import Foundation
import Logging
import ObjectStorage

extension RepositoryFactory {
    static func makeS3Storage(_ settings: S3RepositorySettings, logger: Logger) throws -> any ObjectStorage {
        guard let endpoint = URL(string: settings.endpoint) else {
            throw ConfigurationError(.invalidValue, file: nil, key: "repository.s3.endpoint", message: "not a URL: \(settings.endpoint)")
        }
        let configuration = S3Configuration(
            endpoint: endpoint, bucket: settings.bucket, region: settings.region,
            accessKeyID: settings.accessKeyID, secretAccessKey: settings.secretAccessKey,
            prefix: settings.prefix, uriStyle: settings.virtualHosted ? .virtualHosted : .path,
            verifyTLS: settings.verifyTLS, caFile: settings.caFile,
            partSize: settings.partSizeMiB << 20, parallelParts: settings.parallelParts,
            lowSpeedTime: .seconds(settings.stallTimeoutSeconds))
        return try S3Storage(configuration: configuration, logger: logger)
    }
}
