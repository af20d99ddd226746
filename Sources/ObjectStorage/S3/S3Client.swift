import CCurl
import CShims
import CurlHTTP
import Dispatch
import Foundation
import Logging
import OffloadedWork
import Synchronization

/// Signs and sends S3 requests with retries. Every method here blocks: call them on a
/// ``transferQueue()`` (through `offload` or `OffloadedWork`), never on Swift's cooperative pool.
final class S3Client: Sendable {
    let configuration: S3Configuration
    let addressing: S3Addressing
    let signer: SigV4Signer
    let errors: S3ErrorMapper
    let pool: CurlHandlePool
    let logger: Logger
    /// The key prefix inside the bucket, empty or ending in `/`.
    let rootPrefix: String

    init(configuration: S3Configuration, logger: Logger = Logger(label: "pgbackd.s3", factory: { _ in SwiftLogNoOpLogHandler() })) throws {
        self.configuration = configuration
        self.addressing = try S3Addressing(configuration: configuration)
        self.signer = SigV4Signer(
            accessKeyID: configuration.accessKeyID,
            secretAccessKey: configuration.secretAccessKey,
            region: configuration.region,
            service: "s3"
        )
        self.errors = S3ErrorMapper(
            bucket: configuration.bucket,
            endpoint: configuration.endpointDescription,
            accessKeyID: configuration.accessKeyID
        )
        self.pool = CurlHandlePool(capacity: max(8, configuration.parallelParts * 2))
        var logger = logger
        logger[metadataKey: "s3.bucket"] = "\(configuration.bucket)"
        self.logger = logger
        self.rootPrefix = configuration.rootPrefix
    }

    struct Request: Sendable {
        /// The S3 action, for logs and messages (`PutObject`, `UploadPart`, …).
        var operation: String
        var method: String
        /// The key inside the bucket (root prefix included), or nil for a bucket request.
        var bucketKey: String?
        /// The key as the caller named it, for messages.
        var displayKey: String?
        var query: [QueryItem] = []
        /// Extra headers; `x-amz-*` ones are signed.
        var headers: [(name: String, value: String)] = []
        var body: [UInt8] = []
        /// Hex SHA-256 of `body`; computed when nil.
        var payloadHash: String?
        /// A new connection for each attempt (``CurlTransferOptions/freshConnection``): for
        /// requests that are not idempotent, so that no attempt is repeated unseen.
        var freshConnection = false
    }

    struct Response: Sendable {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        /// The attempts ``send(_:cancel:accept:)`` made for it: more than 1 when earlier ones
        /// failed, and a failed attempt may still have taken effect on the server.
        var attempts = 1
    }

    /// What one attempt ended with.
    enum Outcome {
        case response(Response)
        case transport(S3TransportFailure, detail: String)
    }

    /// The transfer options for one attempt: freshly dated and signed.
    func transferOptions(for request: Request, payloadHash: String, now: Date = Date()) -> CurlTransferOptions {
        let target = addressing.target(key: request.bucketKey, query: request.query)
        let amzDate = SigV4Signer.amzDate(now)
        var signed: [(name: String, value: String)] = [
            ("host", target.hostHeader), ("x-amz-content-sha256", payloadHash), ("x-amz-date", amzDate),
        ]
        signed += request.headers.filter { $0.name.lowercased().hasPrefix("x-amz-") }
        let signature = signer.sign(
            method: request.method,
            canonicalURI: target.canonicalURI,
            canonicalQuery: target.canonicalQuery,
            headers: signed,
            payloadHash: payloadHash,
            amzDate: amzDate
        )
        var lines = [
            "Host: \(target.hostHeader)",
            "x-amz-date: \(amzDate)",
            "x-amz-content-sha256: \(payloadHash)",
            "Authorization: \(signature.authorization)",
            // No "Expect: 100-continue" round trip: S3 answers errors before reading the body anyway.
            "Expect:",
        ]
        var hasContentType = false
        for header in request.headers {
            if header.name.lowercased() == "content-type" { hasContentType = true }
            lines.append("\(header.name): \(header.value)")
        }
        if request.method == "PUT" || request.method == "POST", !hasContentType {
            // Without it libcurl sends a form content type, and some servers (moto) parse the body as a form.
            lines.append("Content-Type: application/octet-stream")
        }
        var options = CurlTransferOptions(
            method: request.method,
            url: target.url,
            headers: lines,
            body: request.body,
            connectTimeoutMilliseconds: Int(configuration.connectTimeout.seconds * 1000),
            lowSpeedLimit: configuration.lowSpeedLimit,
            lowSpeedTimeSeconds: max(1, Int(configuration.lowSpeedTime.seconds)),
            verifyTLS: configuration.verifyTLS,
            caFile: configuration.caFile
        )
        options.freshConnection = request.freshConnection
        return options
    }

    /// Sends one attempt, with `transfer` collecting or streaming the response.
    func attempt(_ request: Request, payloadHash: String, transfer: CurlTransfer) -> Outcome {
        let options = transferOptions(for: request, payloadHash: payloadHash)
        do {
            let code = try pool.withHandle { transfer.perform(on: $0, options) }
            if code != CURLE_OK {
                return .transport(S3TransportFailure(curlCode: code.rawValue), detail: transfer.detail)
            }
            return .response(Response(status: transfer.status, headers: transfer.headers, body: transfer.body))
        } catch {
            return .transport(.other, detail: "\(error)")
        }
    }

    /// Sends `request`, retrying what is worth retrying. Returns a 2xx response, or one whose
    /// status `accept` takes (404 for HEAD, say); throws a ``StorageError`` otherwise.
    func send(_ request: Request, cancel: CancellationFlag? = nil, accept: (Int) -> Bool = { _ in false }) throws -> Response {
        let payloadHash = request.payloadHash ?? SigV4Signer.payloadHash(request.body)
        var attempt = 0
        while true {
            attempt += 1
            if cancel?.isCancelled == true {
                throw errors.error(transport: .cancelled, detail: "", operation: request.operation, key: request.displayKey, attempts: attempt - 1)
            }
            let transfer = CurlTransfer(cancel: cancel)
            let failure: StorageError
            let retryable: Bool
            switch self.attempt(request, payloadHash: payloadHash, transfer: transfer) {
            case .response(let response):
                if (200..<300).contains(response.status) || accept(response.status) {
                    if attempt > 1 {
                        logger.debug("S3 request succeeded after retries", metadata: metadata(request, attempt: attempt))
                    }
                    var response = response
                    response.attempts = attempt
                    return response
                }
                let body = S3XML.errorBody(response.body)
                retryable = S3RetryPolicy.isRetryable(status: response.status, errorCode: body?.code)
                failure = errors.error(status: response.status, body: body, headers: response.headers, operation: request.operation, key: request.displayKey, attempts: attempt)
                var details = metadata(request, attempt: attempt)
                details["s3.status"] = "\(response.status)"
                details["s3.code"] = "\(body?.code ?? "-")"
                logFailure(failure, retrying: retryable && attempt <= configuration.maxRetries, metadata: details)
            case .transport(let kind, let detail):
                retryable = S3RetryPolicy.isRetryable(kind) && !(cancel?.isCancelled ?? false)
                failure = errors.error(transport: kind, detail: detail, operation: request.operation, key: request.displayKey, attempts: attempt)
                logFailure(failure, retrying: retryable && attempt <= configuration.maxRetries, metadata: metadata(request, attempt: attempt))
            }
            guard retryable, attempt <= configuration.maxRetries else { throw failure }
            sleepBeforeRetry(attempt, cancel: cancel)
        }
    }

    func metadata(_ request: Request, attempt: Int) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["s3.operation": "\(request.operation)", "s3.attempt": "\(attempt)"]
        if let key = request.displayKey { metadata["s3.key"] = "\(key)" }
        return metadata
    }

    func logFailure(_ error: StorageError, retrying: Bool, metadata: Logger.Metadata) {
        var metadata = metadata
        metadata["s3.error"] = "\(error.message)"
        if retrying {
            logger.warning("S3 request failed; retrying", metadata: metadata)
        } else {
            logger.debug("S3 request failed", metadata: metadata)
        }
    }

    /// Blocks the calling (dispatch) thread for the back-off before retry `retry`, waking early
    /// when cancelled.
    func sleepBeforeRetry(_ retry: Int, cancel: CancellationFlag?) {
        let delay = S3RetryPolicy.delay(beforeRetry: retry, base: configuration.retryBaseDelay, max: configuration.retryMaxDelay)
        let deadline = Date().addingTimeInterval(delay.seconds)
        while Date() < deadline {
            if cancel?.isCancelled == true { return }
            Thread.sleep(forTimeInterval: min(0.05, max(0, deadline.timeIntervalSinceNow)))
        }
    }

    /// A queue for one blocking transfer. Each is a new serial queue: those target the
    /// overcommitting root queue, which gives every blocked transfer a thread of its own. (One
    /// shared `.concurrent` queue would not: it targets the width-limited root queue, where a
    /// few blocked transfers, a GET stream waiting for its reader say, hold back all others.)
    func transferQueue() -> DispatchQueue {
        DispatchQueue(label: "pgbackd.s3.transfer")
    }

    /// `send` on a transfer queue.
    func sendAsync(_ request: Request, cancel: CancellationFlag? = nil, accept: @escaping @Sendable (Int) -> Bool = { _ in false }) async throws -> Response {
        try await offload(on: transferQueue()) { try self.send(request, cancel: cancel, accept: accept) }
    }

    func bucketKey(_ key: String) -> String { rootPrefix + key }
}
