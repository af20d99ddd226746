import CurlHTTP
import Foundation
import Logging

/// A multipart upload that was started and neither completed nor aborted.
public struct S3IncompleteUpload: Sendable, Hashable {
    /// The object key, relative to the configured prefix.
    public var key: String
    public var uploadID: String
    public var initiated: Date?

    public init(key: String, uploadID: String, initiated: Date?) {
        self.key = key
        self.uploadID = uploadID
        self.initiated = initiated
    }
}

/// The multipart steps, blocking (run them on a ``S3Client/transferQueue()``).
extension S3Client {
    func createMultipartUpload(key: String) throws -> String {
        // A fresh connection: libcurl's silent resend on a broken reused one would start a
        // second upload behind our back, and the first would never be aborted.
        var request = Request(
            operation: "CreateMultipartUpload", method: "POST", bucketKey: bucketKey(key), displayKey: key,
            query: [QueryItem("uploads")]
        )
        request.freshConnection = true
        let response = try send(request)
        guard let uploadID = S3XML.initiateMultipartUpload(response.body) else {
            throw StorageError(.protocolError, key: key, message: "S3 at \(errors.endpoint) answered CreateMultipartUpload for \(key) without an UploadId")
        }
        logger.debug("S3 multipart upload started", metadata: ["s3.key": "\(key)", "s3.upload_id": "\(uploadID)"])
        if response.attempts > 1 {
            abortOtherUploads(key: key, keeping: uploadID)
        }
        return uploadID
    }

    /// A retried CreateMultipartUpload may have started an upload on an earlier attempt whose
    /// answer was lost (a connection reset after the server acted): that upload would stay open,
    /// holding storage, until a later backup's or expire's clean-up. Every object key pgbackd
    /// uploads is its own (a backup id or a WAL file name is in it), so any other upload of this
    /// key is such a leftover, or one an interrupted run left: abort them now. Best effort: a
    /// failure here is logged and left to that clean-up.
    func abortOtherUploads(key: String, keeping uploadID: String) {
        do {
            for upload in try listMultipartUploads(prefix: key) where upload.key == key && upload.uploadID != uploadID {
                try abortMultipartUpload(key: key, uploadID: upload.uploadID)
                logger.debug("S3 multipart upload left by a retried CreateMultipartUpload aborted", metadata: [
                    "s3.key": "\(key)", "s3.upload_id": "\(upload.uploadID)",
                ])
            }
        } catch {
            logger.warning("could not abort an S3 multipart upload left by a retried CreateMultipartUpload; a later backup or expire will", metadata: [
                "s3.key": "\(key)", "s3.error": "\(error)",
            ])
        }
    }

    /// Uploads one part and returns its ETag. The body stays in memory, so a retry re-sends it.
    func uploadPart(key: String, uploadID: String, number: Int, body: [UInt8], cancel: CancellationFlag?) throws -> String {
        let response = try send(Request(
            operation: "UploadPart", method: "PUT", bucketKey: bucketKey(key), displayKey: key,
            query: [QueryItem("partNumber", "\(number)"), QueryItem("uploadId", uploadID)],
            body: body
        ), cancel: cancel)
        guard let eTag = response.headers["etag"], !eTag.isEmpty else {
            throw StorageError(.protocolError, key: key, message: "S3 at \(errors.endpoint) answered UploadPart \(number) for \(key) without an ETag")
        }
        return eTag
    }

    /// Completes an upload. S3 may answer 200 and put an error in the body; those worth it are
    /// retried. If an earlier attempt completed it but its answer was lost (the retry then finds
    /// NoSuchUpload), the object is there with the expected size, and that counts as done.
    func completeMultipartUpload(key: String, uploadID: String, parts: [(number: Int, eTag: String)], size: Int64) throws {
        var request = Request(
            operation: "CompleteMultipartUpload", method: "POST", bucketKey: bucketKey(key), displayKey: key,
            query: [QueryItem("uploadId", uploadID)],
            headers: [("Content-Type", "application/xml")],
            body: S3XML.completeMultipartUploadBody(parts: parts)
        )
        // A fresh connection, so that a completion that took effect but lost its answer is
        // retried by us (NoSuchUpload, then HEAD) and never silently resent by libcurl (whose
        // NoSuchUpload would look like a first attempt's and fail the upload).
        request.freshConnection = true
        var attempt = 0
        while true {
            attempt += 1
            let response: Response
            do {
                response = try send(request)
            } catch let error as StorageError where error.code == .notFound && attempt > 1 {
                if let head = try? headObject(key: key), head.size == size { return }
                throw error
            }
            switch S3XML.completeMultipartUpload(response.body) {
            case .completed?:
                return
            case .failed(let body)?:
                let failure = errors.error(status: response.status, body: body, headers: response.headers, operation: "CompleteMultipartUpload", key: key, attempts: attempt)
                guard S3RetryPolicy.isRetryable(status: response.status, errorCode: body.code), attempt <= configuration.maxRetries else {
                    throw failure
                }
                logFailure(failure, retrying: true, metadata: metadata(request, attempt: attempt))
                sleepBeforeRetry(attempt, cancel: nil)
            case nil:
                throw StorageError(.protocolError, key: key, message: "S3 at \(errors.endpoint) answered CompleteMultipartUpload for \(key) with a body that is not a CompleteMultipartUploadResult")
            }
        }
    }

    /// Aborts an upload; one already gone (NoSuchUpload) counts as aborted.
    /// - Returns: false when it was already gone.
    @discardableResult
    func abortMultipartUpload(key: String, uploadID: String) throws -> Bool {
        let response = try send(Request(
            operation: "AbortMultipartUpload", method: "DELETE", bucketKey: bucketKey(key), displayKey: key,
            query: [QueryItem("uploadId", uploadID)]
        ), accept: { $0 == 404 })
        if response.status == 404 {
            let body = S3XML.errorBody(response.body)
            if body?.code == "NoSuchBucket" {
                throw errors.error(status: 404, body: body, headers: response.headers, operation: "AbortMultipartUpload", key: key, attempts: 1)
            }
            return false
        }
        logger.debug("S3 multipart upload aborted", metadata: ["s3.key": "\(key)", "s3.upload_id": "\(uploadID)"])
        return true
    }

    /// Every incomplete upload whose key starts with `prefix` (relative to the root prefix).
    func listMultipartUploads(prefix: String) throws -> [S3IncompleteUpload] {
        var uploads: [S3IncompleteUpload] = []
        var keyMarker: String?
        var uploadIDMarker: String?
        while true {
            var query = [QueryItem("uploads"), QueryItem("prefix", rootPrefix + prefix)]
            if let keyMarker { query.append(QueryItem("key-marker", keyMarker)) }
            if let uploadIDMarker { query.append(QueryItem("upload-id-marker", uploadIDMarker)) }
            let response = try send(Request(operation: "ListMultipartUploads", method: "GET", query: query))
            guard let page = S3XML.listMultipartUploads(response.body) else {
                throw StorageError(.protocolError, message: "S3 at \(errors.endpoint) answered ListMultipartUploads with a body that is not a ListMultipartUploadsResult")
            }
            for upload in page.uploads where upload.key.hasPrefix(rootPrefix) {
                uploads.append(S3IncompleteUpload(key: String(upload.key.dropFirst(rootPrefix.count)), uploadID: upload.uploadID, initiated: upload.initiated))
            }
            guard page.isTruncated else { return uploads }
            guard page.nextKeyMarker != nil || page.nextUploadIDMarker != nil,
                page.nextKeyMarker != keyMarker || page.nextUploadIDMarker != uploadIDMarker
            else {
                throw StorageError(.protocolError, message: "S3 at \(errors.endpoint) answered a truncated ListMultipartUploads without new markers")
            }
            keyMarker = page.nextKeyMarker
            uploadIDMarker = page.nextUploadIDMarker
        }
    }

    /// HEAD; nil for 404.
    func headObject(key: String) throws -> S3ObjectHead? {
        let response = try send(Request(operation: "HeadObject", method: "HEAD", bucketKey: bucketKey(key), displayKey: key), accept: { $0 == 404 })
        if response.status == 404 { return nil }
        guard let size = response.headers["content-length"].flatMap({ Int64($0) }) else {
            throw StorageError(.protocolError, key: key, message: "S3 at \(errors.endpoint) answered HeadObject for \(key) without a Content-Length")
        }
        return S3ObjectHead(size: size, lastModified: response.headers["last-modified"].flatMap(S3XML.parseHTTPDate), eTag: response.headers["etag"])
    }
}
