import Foundation
import Testing

import CurlHTTP
@testable import ObjectStorage

@Suite struct S3ErrorTests {
    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

    let mapper = S3ErrorMapper(bucket: "pg-backups", endpoint: "https://s3.example.com", accessKeyID: "AKIDEXAMPLE")

    @Test(arguments: [500, 502, 503, 504, 429])
    func retriesServerErrorsAndThrottling(status: Int) {
        #expect(S3RetryPolicy.isRetryable(status: status, errorCode: nil))
    }

    @Test(arguments: [400, 401, 403, 404, 405, 409, 411, 412, 416])
    func doesNotRetryClientErrors(status: Int) {
        #expect(!S3RetryPolicy.isRetryable(status: status, errorCode: nil))
        #expect(!S3RetryPolicy.isRetryable(status: status, errorCode: "SignatureDoesNotMatch"))
    }

    @Test func retriesS3sTryAgainCodes() {
        #expect(S3RetryPolicy.isRetryable(status: 400, errorCode: "RequestTimeout"))
        #expect(S3RetryPolicy.isRetryable(status: 200, errorCode: "InternalError"))
        #expect(S3RetryPolicy.isRetryable(status: 503, errorCode: "SlowDown"))
        #expect(!S3RetryPolicy.isRetryable(status: 403, errorCode: "RequestTimeTooSkewed"))
    }

    /// libcurl result codes (curl.h): 7 couldn't connect, 6 resolve, 28 timeout, 52 got nothing,
    /// 55/56 send/receive error (reset), 18 partial file, 35/60/77 TLS, 42 aborted, 23 write error.
    @Test func transportClassification() {
        #expect(S3TransportFailure(curlCode: 7) == .connect)
        #expect(S3TransportFailure(curlCode: 6) == .resolve)
        #expect(S3TransportFailure(curlCode: 28) == .timeout)
        for code: UInt32 in [18, 52, 55, 56] { #expect(S3TransportFailure(curlCode: code) == .reset) }
        for code: UInt32 in [35, 60, 77] { #expect(S3TransportFailure(curlCode: code) == .tls) }
        #expect(S3TransportFailure(curlCode: 42) == .cancelled)
        #expect(S3TransportFailure(curlCode: 23) == .cancelled)
        #expect(S3TransportFailure(curlCode: 3) == .other)

        for failure: S3TransportFailure in [.connect, .resolve, .timeout, .reset] { #expect(S3RetryPolicy.isRetryable(failure)) }
        for failure: S3TransportFailure in [.tls, .cancelled, .other] { #expect(!S3RetryPolicy.isRetryable(failure)) }
    }

    @Test func backoffIsFullJitterAndCapped() {
        for retry in 1...12 {
            for _ in 0..<50 {
                let delay = S3RetryPolicy.delay(beforeRetry: retry, base: .milliseconds(200), max: .seconds(20))
                let ceiling = min(20.0, 0.2 * pow(2, Double(retry - 1)))
                #expect(delay >= .zero && delay.seconds <= ceiling + 0.001)
            }
        }
        // Jitter: not always the same value.
        let samples = Set((0..<50).map { _ in S3RetryPolicy.delay(beforeRetry: 5, base: .milliseconds(200), max: .seconds(20)) })
        #expect(samples.count > 1)
    }

    @Test func signatureMismatchIsInvalidCredentials() {
        let error = mapper.error(status: 403, body: .init(code: "SignatureDoesNotMatch"), headers: [:], operation: "PutObject", key: "a/b", attempts: 1)
        #expect(error.code == .invalidCredentials)
        #expect(error.message == "S3 rejected the credentials for bucket pg-backups at https://s3.example.com (SignatureDoesNotMatch, access key id AKIDEXAMPLE): check access_key_id and secret_access_key")
        let unknownKey = mapper.error(status: 403, body: .init(code: "InvalidAccessKeyId"), headers: [:], operation: "PutObject", key: nil, attempts: 1)
        #expect(unknownKey.code == .invalidCredentials)
    }

    @Test func noSuchBucket() {
        let error = mapper.error(status: 404, body: .init(code: "NoSuchBucket"), headers: [:], operation: "ListObjectsV2", key: nil, attempts: 1)
        #expect(error.code == .bucketNotFound)
        #expect(error.message == "bucket pg-backups does not exist at https://s3.example.com: create it or fix repository.s3.bucket")
    }

    @Test func otherMappings() {
        func code(_ status: Int, _ s3Code: String?) -> StorageError.Code {
            mapper.error(status: status, body: s3Code.map { .init(code: $0) }, headers: [:], operation: "GetObject", key: "k", attempts: 3).code
        }
        #expect(code(404, "NoSuchKey") == .notFound)
        #expect(code(404, nil) == .notFound)
        #expect(code(403, "AccessDenied") == .accessDenied)
        #expect(code(403, nil) == .accessDenied)
        #expect(code(416, "InvalidRange") == .invalidArgument)
        #expect(code(400, "AuthorizationHeaderMalformed") == .invalidArgument)
        #expect(code(301, "PermanentRedirect") == .invalidArgument)
        #expect(code(503, "SlowDown") == .serverError)
        #expect(code(500, nil) == .serverError)
        #expect(code(400, "RequestTimeout") == .timeout)
        #expect(code(400, "MalformedXML") == .protocolError)
        let region = mapper.error(status: 400, body: .init(code: "AuthorizationHeaderMalformed", region: "eu-central-1"), headers: [:], operation: "GetObject", key: nil, attempts: 1)
        #expect(region.message.contains("set repository.s3.region to it") && region.message.contains("eu-central-1"))
    }

    @Test func connectionRefusedNamesTheEndpoint() {
        let error = mapper.error(transport: .connect, detail: "Failed to connect to s3.example.com port 443: Connection refused", operation: "HeadObject", key: "k", attempts: 6)
        #expect(error.code == .unreachable)
        #expect(error.message.hasPrefix("cannot connect to S3 endpoint https://s3.example.com after 6 attempts"))
        #expect(mapper.error(transport: .timeout, detail: "", operation: "GetObject", key: nil, attempts: 1).code == .timeout)
        #expect(mapper.error(transport: .tls, detail: "", operation: "GetObject", key: nil, attempts: 1).message.contains("repository.s3.ca_file"))
        #expect(mapper.error(transport: .cancelled, detail: "", operation: "GetObject", key: nil, attempts: 1).code == .cancelled)
    }

    // MARK: the secret stays secret

    func configuration() -> S3Configuration {
        S3Configuration(
            endpoint: URL(string: "https://s3.example.com")!, bucket: "pg-backups", region: "us-east-1",
            accessKeyID: "AKIDEXAMPLE", secretAccessKey: Self.secret, prefix: "main"
        )
    }

    @Test func descriptionsRedactTheSecret() {
        let configuration = configuration()
        var dumped = ""
        dump(configuration, to: &dumped)
        for text in ["\(configuration)", String(describing: configuration), String(reflecting: configuration), dumped] {
            #expect(!text.contains(Self.secret))
            #expect(!text.contains("K7MDENG"))
            #expect(text.contains("<redacted>"))
            #expect(text.contains("AKIDEXAMPLE"))
        }
        var described = ""
        print(configuration, to: &described)
        #expect(!described.contains(Self.secret))
    }

    @Test func errorMessagesNeverHoldTheSecret() throws {
        let codes = ["SignatureDoesNotMatch", "InvalidAccessKeyId", "NoSuchBucket", "NoSuchKey", "AccessDenied", "InternalError",
                     "AuthorizationHeaderMalformed", "RequestTimeTooSkewed", "MalformedXML"]
        var errors: [StorageError] = []
        for code in codes {
            for status in [200, 301, 400, 403, 404, 416, 500] {
                errors.append(mapper.error(status: status, body: .init(code: code, message: "m"), headers: [:], operation: "Op", key: "k", attempts: 2))
            }
        }
        for failure: S3TransportFailure in [.connect, .resolve, .timeout, .reset, .tls, .cancelled, .other] {
            errors.append(mapper.error(transport: failure, detail: "detail", operation: "Op", key: "k", attempts: 2))
        }
        for error in errors {
            #expect(!"\(error)".contains(Self.secret))
            #expect(!"\(error)".contains("AWS4-HMAC-SHA256"))
            #expect(!"\(error)".contains("Signature="))
        }
        // Configuration errors too.
        var bad = configuration()
        bad.parallelParts = 0
        let error = #expect(throws: StorageError.self) { try S3Storage(configuration: bad) }
        #expect(error.map { "\($0)" }?.contains(Self.secret) == false)
    }

    @Test func signedHeadersHoldTheSignatureButNotTheSecret() throws {
        let client = try S3Client(configuration: configuration())
        let options = client.transferOptions(for: .init(operation: "GetObject", method: "GET", bucketKey: "main/k"), payloadHash: SigV4Signer.emptyPayloadHash)
        #expect(options.headers.contains { $0.hasPrefix("Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") })
        #expect(!options.headers.joined().contains(Self.secret))
        #expect(options.url == "https://s3.example.com/pg-backups/main/k")
    }
}
