/// A storage failure: what went wrong (``Code``), on which key, and the underlying cause.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        /// No object under the key (or the ranged part of it).
        case notFound
        case alreadyExists
        /// The credentials are valid but may not do this.
        case accessDenied
        /// The server rejected the signature or the key id.
        case invalidCredentials
        case bucketNotFound
        /// Could not connect (refused, DNS, TLS handshake).
        case unreachable
        case timeout
        /// 5xx after all retries.
        case serverError
        /// The server answered something we do not understand.
        case protocolError
        case invalidArgument
        /// Local file-system failure.
        case io
        case cancelled
        public var description: String { rawValue }
    }

    public var code: Code
    /// The object key the operation was about, if any.
    public var key: String?
    /// A human sentence: what happened and, where known, how to fix it. Never holds secrets.
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, key: String? = nil, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.key = key
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        var text = message
        if let key, !message.contains(key) { text += " (object \(key))" }
        if let underlying { text += ": \(underlying)" }
        return text
    }
}
