import CCurl
import CShims

/// A transfer that got no HTTP response, or libcurl that could not be set up. Its message is
/// libcurl's explanation; it never holds a request's headers or body.
public struct CurlError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        /// libcurl could not be initialised.
        case unavailable
        /// Connection refused or no route: nothing listens there (yet).
        case connect
        /// The host name did not resolve.
        case resolve
        /// The connect timeout, the whole-transfer timeout or the low-speed limit ran out.
        case timeout
        /// The connection broke while sending or receiving.
        case reset
        /// The TLS handshake or the certificate check failed.
        case tls
        /// Stopped through a ``CancellationFlag`` (or a body handler that refused the bytes).
        case cancelled
        case other
        public var description: String { rawValue }
    }

    public var code: Code
    /// libcurl's `CURLcode`, when a transfer failed.
    public var curlCode: UInt32?
    public var message: String

    public init(_ code: Code, curlCode: UInt32? = nil, message: String) {
        self.code = code
        self.curlCode = curlCode
        self.message = message
    }

    /// Classifies a failed transfer's `CURLcode`; `detail` is ``CurlTransfer/detail``.
    public init(curlCode: UInt32, detail: String) {
        let code: Code
        switch curlCode {
        case CURLE_COULDNT_CONNECT.rawValue: code = .connect
        case CURLE_COULDNT_RESOLVE_HOST.rawValue, CURLE_COULDNT_RESOLVE_PROXY.rawValue: code = .resolve
        case CURLE_OPERATION_TIMEDOUT.rawValue: code = .timeout
        case CURLE_SEND_ERROR.rawValue, CURLE_RECV_ERROR.rawValue, CURLE_GOT_NOTHING.rawValue,
            CURLE_PARTIAL_FILE.rawValue, CURLE_HTTP2.rawValue, CURLE_HTTP2_STREAM.rawValue,
            CURLE_SEND_FAIL_REWIND.rawValue:
            code = .reset
        case CURLE_SSL_CONNECT_ERROR.rawValue, CURLE_PEER_FAILED_VERIFICATION.rawValue,
            CURLE_SSL_CACERT_BADFILE.rawValue, CURLE_SSL_CERTPROBLEM.rawValue, CURLE_SSL_CIPHER.rawValue,
            CURLE_SSL_ISSUER_ERROR.rawValue, CURLE_SSL_CRL_BADFILE.rawValue:
            code = .tls
        case CURLE_ABORTED_BY_CALLBACK.rawValue, CURLE_WRITE_ERROR.rawValue: code = .cancelled
        default: code = .other
        }
        self.init(code, curlCode: curlCode, message: detail)
    }

    /// Worth another attempt: nothing listened, the name did not resolve, the time ran out, or
    /// the connection broke. A TLS failure or a cancellation is not.
    public var isTransient: Bool {
        [.connect, .resolve, .timeout, .reset].contains(code)
    }

    public var description: String { message.isEmpty ? "transfer failed (\(code))" : message }
}
