import Foundation
import Logging
import OffloadedWork

/// What a HEAD tells about an object.
public struct S3ObjectHead: Sendable, Hashable {
    public var size: Int64
    public var lastModified: Date?
    /// As S3 sends it, quotes included; a multipart object's ends in `-<parts>"`.
    public var eTag: String?

    public init(size: Int64, lastModified: Date?, eTag: String?) {
        self.size = size
        self.lastModified = lastModified
        self.eTag = eTag
    }
}

/// The S3 driver (DESIGN.md §3): libcurl with our own SigV4 signing, path-style or
/// virtual-hosted URLs, retries with back-off and jitter, multipart uploads with several parts
/// in flight. Every transfer runs on a dedicated dispatch queue, never on Swift's cooperative
/// pool.
public final class S3Storage: ObjectStorage {
    public let configuration: S3Configuration
    let client: S3Client

    /// - Parameter logger: receives debug lines per request failure and warnings per retry,
    ///   with `s3.*` metadata; never a secret. Nothing is logged when nil.
    /// - Throws: ``StorageError/Code/invalidArgument`` for an unusable configuration.
    public init(configuration: S3Configuration, logger: Logger? = nil) throws {
        guard configuration.parallelParts >= 1 else {
            throw StorageError(.invalidArgument, message: "repository.s3.parallel_parts must be at least 1, not \(configuration.parallelParts)")
        }
        guard configuration.maxRetries >= 0 else {
            throw StorageError(.invalidArgument, message: "the S3 retry count must not be negative, not \(configuration.maxRetries)")
        }
        guard (1...1000).contains(configuration.listPageSize) else {
            throw StorageError(.invalidArgument, message: "the S3 list page size must be between 1 and 1000, not \(configuration.listPageSize)")
        }
        guard !configuration.region.isEmpty else {
            throw StorageError(.invalidArgument, message: "no S3 region configured: set repository.s3.region (us-east-1 for most S3-compatible servers)")
        }
        guard !configuration.accessKeyID.isEmpty, !configuration.secretAccessKey.isEmpty else {
            throw StorageError(.invalidArgument, message: "S3 credentials are missing: set access_key_id and secret_access_key")
        }
        if let caFile = configuration.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw StorageError(.invalidArgument, message: "repository.s3.ca_file \(caFile) cannot be read: fix the path or its permissions")
        }
        self.configuration = configuration
        self.client = try logger.map { try S3Client(configuration: configuration, logger: $0) } ?? S3Client(configuration: configuration)
    }

    public func makeUpload(key: String, expectedSize: Int64?) async throws -> any ObjectUpload {
        try validate(key: key)
        if let expectedSize, expectedSize > S3PartSizer.maximumObjectSize {
            throw StorageError(.invalidArgument, key: key, message: "object \(key) of \(expectedSize) bytes is larger than S3's limit of 5 TiB")
        }
        return S3Upload(client: client, key: key, expectedSize: expectedSize)
    }

    public func get(key: String, range: Range<Int64>?) async throws -> ObjectByteStream {
        try validate(key: key)
        if let range {
            guard range.lowerBound >= 0 else {
                throw StorageError(.invalidArgument, key: key, message: "range \(range) of \(key) starts before the object")
            }
            if range.isEmpty {
                // S3 cannot express an empty range; answer like the other drivers.
                guard let info = try await head(key: key) else {
                    throw StorageError(.notFound, key: key, message: "no object \(key) in bucket \(configuration.bucket)")
                }
                guard range.lowerBound <= info.size else {
                    throw StorageError(.invalidArgument, key: key, message: "range \(range) is outside object \(key) of \(info.size) bytes")
                }
                return ObjectByteStream(bytes: [])
            }
        }
        let (stream, producer) = ObjectByteStream.makeBlockingProducer()
        let client = self.client
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready = GetReadiness(continuation)
            client.transferQueue().async {
                client.streamGet(key: key, range: range, producer: producer, ready: ready)
            }
        }
        return stream
    }

    public func head(key: String) async throws -> ObjectInfo? {
        try await headObject(key: key).map { ObjectInfo(key: key, size: $0.size, lastModified: $0.lastModified) }
    }

    /// HEAD with the ETag; nil when there is no object (or, as S3 gives no body to tell them
    /// apart, no bucket).
    public func headObject(key: String) async throws -> S3ObjectHead? {
        try validate(key: key)
        let client = self.client
        return try await offload(on: client.transferQueue()) { try client.headObject(key: key) }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        try await list(prefix: prefix, pageSize: configuration.listPageSize)
    }

    /// Lists with `pageSize` keys per ListObjectsV2 request (1 ... 1000).
    public func list(prefix: String, pageSize: Int) async throws -> [ObjectInfo] {
        try await listPages(prefix: prefix, pageSize: pageSize).flatMap { $0 }
    }

    /// The listing page by page, as S3 returned it.
    func listPages(prefix: String, pageSize: Int) async throws -> [[ObjectInfo]] {
        guard (1...1000).contains(pageSize) else {
            throw StorageError(.invalidArgument, message: "the S3 list page size must be between 1 and 1000, not \(pageSize)")
        }
        let client = self.client
        let root = client.rootPrefix
        var pages: [[ObjectInfo]] = []
        var token: String?
        while true {
            var query = [QueryItem("list-type", "2"), QueryItem("prefix", root + prefix), QueryItem("max-keys", "\(pageSize)")]
            if let token { query.append(QueryItem("continuation-token", token)) }
            let response = try await client.sendAsync(S3Client.Request(operation: "ListObjectsV2", method: "GET", query: query))
            guard let page = S3XML.listObjectsV2(response.body) else {
                throw StorageError(.protocolError, message: "S3 at \(client.errors.endpoint) answered ListObjectsV2 with a body that is not a ListBucketResult")
            }
            pages.append(page.objects.compactMap { object in
                guard object.key.hasPrefix(root) else { return nil }
                var relative = object
                relative.key = String(object.key.dropFirst(root.count))
                return relative
            })
            guard page.isTruncated else { return pages }
            guard let next = page.nextContinuationToken, next != token else {
                throw StorageError(.protocolError, message: "S3 at \(client.errors.endpoint) answered a truncated ListObjectsV2 without a new continuation token")
            }
            token = next
        }
    }

    public func delete(key: String) async throws {
        try validate(key: key)
        let client = self.client
        let response = try await client.sendAsync(
            S3Client.Request(operation: "DeleteObject", method: "DELETE", bucketKey: client.bucketKey(key), displayKey: key),
            accept: { $0 == 404 }
        )
        if response.status == 404, let body = S3XML.errorBody(response.body), body.code != "NoSuchKey" {
            throw client.errors.error(status: 404, body: body, headers: response.headers, operation: "DeleteObject", key: key, attempts: 1)
        }
    }

    /// Multipart uploads under `prefix` that were started and never completed or aborted.
    public func incompleteUploads(prefix: String) async throws -> [S3IncompleteUpload] {
        let client = self.client
        return try await offload(on: client.transferQueue()) { try client.listMultipartUploads(prefix: prefix) }
    }

    public func abortIncompleteUploads(prefix: String, startedBefore date: Date) async throws -> Int {
        let client = self.client
        let stale = try await incompleteUploads(prefix: prefix).filter { upload in
            guard let initiated = upload.initiated else {
                client.logger.warning("S3 multipart upload without an initiation time left alone", metadata: [
                    "s3.key": "\(upload.key)", "s3.upload_id": "\(upload.uploadID)",
                ])
                return false
            }
            return initiated < date
        }
        var aborted = 0
        for upload in stale {
            if try await offload(on: client.transferQueue(), { try client.abortMultipartUpload(key: upload.key, uploadID: upload.uploadID) }) {
                aborted += 1
            }
        }
        if aborted > 0 {
            client.logger.info("aborted incomplete S3 multipart uploads", metadata: ["s3.prefix": "\(prefix)", "s3.count": "\(aborted)"])
        }
        return aborted
    }
}
