import CurlHTTP
import Dispatch
import Foundation
import Logging
import Synchronization

/// Resumes the caller of `get` once: when the response's headers say 2xx (the stream can be
/// handed out), or with the error that ended the GET before any byte arrived.
final class GetReadiness: Sendable {
    private let continuation: Mutex<CheckedContinuation<Void, any Error>?>

    init(_ continuation: CheckedContinuation<Void, any Error>) {
        self.continuation = Mutex(continuation)
    }

    func resolve(_ result: Result<Void, any Error>) {
        let waiting = continuation.withLock { state -> CheckedContinuation<Void, any Error>? in
            defer { state = nil }
            return state
        }
        waiting?.resume(with: result)
    }
}

extension S3Client {
    /// Streams an object into `producer`, blocking. A broken transfer is resumed from the first
    /// byte not yet delivered, with `If-Match` on the ETag so the pieces belong to one version.
    /// The retry budget starts again whenever an attempt delivered bytes.
    func streamGet(key: String, range: Range<Int64>?, producer: BlockingProducer, ready: GetReadiness, chunkSize: Int = 1 << 20) {
        let bucketKey = bucketKey(key)
        var delivered: Int64 = 0
        var eTag: String?
        var attemptNumber = 0

        func fail(_ error: StorageError) {
            ready.resolve(.failure(error))
            producer.finish(throwing: error)
        }

        while true {
            attemptNumber += 1
            let deliveredBefore = delivered
            var headers: [(name: String, value: String)] = []
            let start = (range?.lowerBound ?? 0) + delivered
            let rangeRequested = range != nil || delivered > 0
            if rangeRequested {
                let end = range.map { String($0.upperBound - 1) } ?? ""
                headers.append(("Range", "bytes=\(start)-\(end)"))
            }
            if let eTag { headers.append(("If-Match", eTag)) }
            let request = Request(operation: "GetObject", method: "GET", bucketKey: bucketKey, displayKey: key, headers: headers)

            let transfer = CurlTransfer(cancel: nil)
            var pending: [UInt8] = []
            var consumerGone = false
            // A server that ignores Range answers 200 with the whole object: skip to `start`
            // and stop at the range's end ourselves.
            var skip: Int64 = 0
            var limit: Int64 = .max
            transfer.onHeaders = { status, headers in
                guard (200..<300).contains(status) else { return }
                if eTag == nil { eTag = headers["etag"] }
                if status == 200, rangeRequested {
                    skip = start
                    limit = range.map { $0.upperBound - start } ?? .max
                }
                ready.resolve(.success(()))
            }
            transfer.onBody = { received in
                var bytes = received
                if skip > 0 {
                    let dropped = Int(min(skip, Int64(bytes.count)))
                    skip -= Int64(dropped)
                    bytes = UnsafeRawBufferPointer(rebasing: bytes[dropped...])
                }
                if Int64(bytes.count) > limit { bytes = UnsafeRawBufferPointer(rebasing: bytes[..<Int(limit)]) }
                if limit != .max { limit -= Int64(bytes.count) }
                pending.append(contentsOf: bytes)
                guard pending.count >= chunkSize else { return true }
                let chunk = pending
                pending = []
                pending.reserveCapacity(chunkSize)
                guard producer.send(chunk) else {
                    consumerGone = true
                    return false
                }
                delivered += Int64(chunk.count)
                return true
            }
            let outcome = attempt(request, payloadHash: SigV4Signer.emptyPayloadHash, transfer: transfer)
            if consumerGone || producer.isCancelled { return }
            // What arrived before a break is good: hand it on before deciding what to do next.
            if (200..<300).contains(transfer.status), !pending.isEmpty {
                guard producer.send(pending) else { return }
                delivered += Int64(pending.count)
            }
            if delivered > deliveredBefore { attemptNumber = 1 }

            let failure: StorageError
            let retryable: Bool
            switch outcome {
            case .response(let response) where (200..<300).contains(response.status):
                ready.resolve(.success(()))
                producer.finish()
                return
            case .response(let response):
                let body = S3XML.errorBody(response.body)
                if response.status == 416, delivered == 0, let range,
                    let size = Self.totalSize(contentRange: response.headers["content-range"]) ?? body?.actualObjectSize
                        ?? (try? headObject(key: key))?.size,
                    range.lowerBound == size
                {
                    // A range starting right at the end: no bytes, as for any other store.
                    ready.resolve(.success(()))
                    producer.finish()
                    return
                }
                retryable = S3RetryPolicy.isRetryable(status: response.status, errorCode: body?.code)
                failure = errors.error(status: response.status, body: body, headers: response.headers, operation: "GetObject", key: key, attempts: attemptNumber)
                var details = metadata(request, attempt: attemptNumber)
                details["s3.status"] = "\(response.status)"
                details["s3.code"] = "\(body?.code ?? "-")"
                logFailure(failure, retrying: retryable && attemptNumber <= configuration.maxRetries, metadata: details)
            case .transport(let kind, let detail):
                retryable = S3RetryPolicy.isRetryable(kind)
                failure = errors.error(transport: kind, detail: detail, operation: "GetObject", key: key, attempts: attemptNumber)
                var details = metadata(request, attempt: attemptNumber)
                details["s3.delivered"] = "\(delivered)"
                logFailure(failure, retrying: retryable && attemptNumber <= configuration.maxRetries, metadata: details)
            }
            guard retryable, attemptNumber <= configuration.maxRetries else {
                fail(failure)
                return
            }
            sleepBeforeRetry(attemptNumber, cancel: nil)
        }
    }

    /// The object size in a `Content-Range: bytes */SIZE` (or `bytes A-B/SIZE`) header.
    static func totalSize(contentRange: String?) -> Int64? {
        guard let contentRange, let slash = contentRange.lastIndex(of: "/") else { return nil }
        return Int64(contentRange[contentRange.index(after: slash)...].trimmingCharacters(in: .whitespaces))
    }
}
