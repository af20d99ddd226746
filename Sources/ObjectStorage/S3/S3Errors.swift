import CCurl
import CurlHTTP
import CShims
import Foundation

/// A failed transfer, as far as retrying and reporting care: libcurl's own classification.
typealias S3TransportFailure = CurlError.Code

extension CurlError.Code {
    init(curlCode: UInt32) {
        self = CurlError(curlCode: curlCode, detail: "").code
    }
}

/// Which failures are worth another attempt.
enum S3RetryPolicy {
    /// 5xx, 429, and S3's own "try again" codes (which it may send with a 400 or a 200).
    static func isRetryable(status: Int, errorCode: String?) -> Bool {
        if status >= 500 || status == 429 { return true }
        switch errorCode {
        case "RequestTimeout"?, "SlowDown"?, "InternalError"?, "ServiceUnavailable"?: return true
        default: return false
        }
    }

    /// Timeouts and broken or refused connections (a server restarting refuses for a moment);
    /// not TLS failures, which do not heal by themselves.
    static func isRetryable(_ failure: S3TransportFailure) -> Bool {
        CurlError(failure, message: "").isTransient
    }

    /// Full jitter: uniformly random in `0 ... min(maxDelay, baseDelay × 2^(retry-1))`.
    static func delay(beforeRetry retry: Int, base: Duration, max maxDelay: Duration) -> Duration {
        let exponent = Double(Swift.min(Swift.max(retry - 1, 0), 30))
        let ceiling = Swift.min(maxDelay.seconds, base.seconds * pow(2, exponent))
        guard ceiling > 0 else { return .zero }
        return .milliseconds(Int64(Double.random(in: 0...ceiling) * 1000))
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Turns what S3 or libcurl said into a ``StorageError`` whose message names the problem and
/// the fix. Messages hold the bucket, endpoint, key and S3's error code; never a credential
/// secret, a signature or the Authorization header.
struct S3ErrorMapper: Sendable {
    var bucket: String
    var endpoint: String
    var accessKeyID: String

    func error(status: Int, body: S3XML.ErrorBody?, headers: [String: String], operation: String, key: String?, attempts: Int) -> StorageError {
        let code = body?.code
        let codeText = code ?? "HTTP \(status)"
        let object = key.map { " for \($0)" } ?? ""
        switch (status, code) {
        case (_, "SignatureDoesNotMatch"?), (_, "InvalidAccessKeyId"?), (_, "InvalidToken"?), (_, "ExpiredToken"?),
            (_, "InvalidSecurity"?), (_, "IncompleteSignature"?):
            return StorageError(.invalidCredentials, key: key, message: "S3 rejected the credentials for bucket \(bucket) at \(endpoint) (\(codeText), access key id \(accessKeyID)): check access_key_id and secret_access_key")
        case (_, "RequestTimeTooSkewed"?):
            return StorageError(.invalidCredentials, key: key, message: "S3 at \(endpoint) rejected the request time (RequestTimeTooSkewed): set this host's clock right (NTP)")
        case (_, "AuthorizationHeaderMalformed"?), (301, _), (_, "PermanentRedirect"?), (_, "IllegalLocationConstraintException"?):
            let region = body?.region ?? headers["x-amz-bucket-region"]
            let hint = region.map { "the bucket is in region \($0): set repository.s3.region to it" }
                ?? "fix repository.s3.region or repository.s3.endpoint"
            return StorageError(.invalidArgument, key: key, message: "S3 at \(endpoint) refused \(operation) on bucket \(bucket) for the wrong region or endpoint (\(codeText)): \(hint)")
        case (_, "NoSuchBucket"?):
            return StorageError(.bucketNotFound, key: key, message: "bucket \(bucket) does not exist at \(endpoint): create it or fix repository.s3.bucket")
        case (_, "NoSuchKey"?), (404, nil):
            return StorageError(.notFound, key: key, message: "no object\(object) in bucket \(bucket) at \(endpoint)")
        case (_, "NoSuchUpload"?):
            return StorageError(.notFound, key: key, message: "multipart upload\(object) no longer exists in bucket \(bucket) (NoSuchUpload): it was aborted or expired; start the upload again")
        case (403, nil):
            // A HEAD answer has no body to say whether the signature or the permission failed.
            return StorageError(.accessDenied, key: key, message: "S3 refused \(operation)\(object) on bucket \(bucket) at \(endpoint) (HTTP 403 without details): check access_key_id and secret_access_key, and that access key \(accessKeyID) may read the bucket")
        case (_, "AccessDenied"?), (_, "AllAccessDisabled"?), (_, "AccountProblem"?):
            return StorageError(.accessDenied, key: key, message: "S3 denied \(operation)\(object) on bucket \(bucket) at \(endpoint) (\(codeText)): grant access key \(accessKeyID) s3:GetObject, s3:PutObject, s3:DeleteObject, s3:ListBucket, s3:ListBucketMultipartUploads and s3:AbortMultipartUpload on the bucket and prefix")
        case (416, _), (_, "InvalidRange"?):
            return StorageError(.invalidArgument, key: key, message: "the requested range is outside object\(object) in bucket \(bucket) (InvalidRange)")
        case (412, _):
            return StorageError(.protocolError, key: key, message: "object\(object) in bucket \(bucket) changed while it was being read (PreconditionFailed): read it again")
        case (_, "EntityTooLarge"?), (_, "EntityTooSmall"?), (_, "InvalidPart"?), (_, "InvalidPartOrder"?), (_, "TooManyParts"?):
            return StorageError(.invalidArgument, key: key, message: "S3 refused \(operation)\(object) in bucket \(bucket) (\(codeText)\(Self.serverMessage(body))): the multipart layout is invalid")
        case (429, _), (500..., _), (_, "SlowDown"?), (_, "InternalError"?), (_, "ServiceUnavailable"?):
            return StorageError(.serverError, key: key, message: "S3 at \(endpoint) failed \(operation)\(object) with \(status) \(codeText) after \(attempts) attempt\(attempts == 1 ? "" : "s"): the server is overloaded or failing; retry later")
        case (_, "RequestTimeout"?):
            return StorageError(.timeout, key: key, message: "S3 at \(endpoint) timed out reading \(operation)\(object) after \(attempts) attempt\(attempts == 1 ? "" : "s") (RequestTimeout): check the network")
        default:
            return StorageError(.protocolError, key: key, message: "S3 at \(endpoint) answered \(operation)\(object) in bucket \(bucket) with \(status) \(codeText)\(Self.serverMessage(body))")
        }
    }

    func error(transport failure: S3TransportFailure, detail: String, operation: String, key: String?, attempts: Int) -> StorageError {
        let object = key.map { " for \($0)" } ?? ""
        let tries = "after \(attempts) attempt\(attempts == 1 ? "" : "s")"
        switch failure {
        case .connect:
            return StorageError(.unreachable, key: key, message: "cannot connect to S3 endpoint \(endpoint) \(tries) (\(detail)): check repository.s3.endpoint and that the server is running and reachable")
        case .resolve:
            return StorageError(.unreachable, key: key, message: "cannot resolve the host of S3 endpoint \(endpoint) \(tries) (\(detail)): check repository.s3.endpoint and DNS")
        case .timeout:
            return StorageError(.timeout, key: key, message: "S3 \(operation)\(object) at \(endpoint) timed out \(tries) (\(detail)): check the network or raise the timeouts")
        case .reset:
            return StorageError(.unreachable, key: key, message: "the connection to S3 endpoint \(endpoint) broke during \(operation)\(object) \(tries) (\(detail)): check the network and the server's logs")
        case .tls:
            return StorageError(.unreachable, key: key, message: "TLS with S3 endpoint \(endpoint) failed (\(detail)): set repository.s3.ca_file to the CA that signed its certificate, or fix the certificate")
        case .cancelled:
            return StorageError(.cancelled, key: key, message: "S3 \(operation)\(object) was cancelled")
        default:
            return StorageError(.protocolError, key: key, message: "S3 \(operation)\(object) at \(endpoint) failed (\(detail))")
        }
    }

    private static func serverMessage(_ body: S3XML.ErrorBody?) -> String {
        guard let message = body?.message, !message.isEmpty else { return "" }
        return ": " + String(message.prefix(200))
    }
}
