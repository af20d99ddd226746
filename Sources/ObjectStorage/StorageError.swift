/// A storage failure: what went wrong (``Code``), on which key, and the underlying cause.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Sendable {
            case notFound, alreadyExists, accessDenied, invalidCredentials, bucketNotFound
            case unreachable, timeout, serverError, protocolError, invalidArgument, io, cancelled
        }
        let base: Base
        /// No object under the key (or the ranged part of it).
        public static let notFound = Code(base: .notFound)
        public static let alreadyExists = Code(base: .alreadyExists)
        /// The credentials are valid but may not do this.
        public static let accessDenied = Code(base: .accessDenied)
        /// The server rejected the signature or the key id.
        public static let invalidCredentials = Code(base: .invalidCredentials)
        public static let bucketNotFound = Code(base: .bucketNotFound)
        /// Could not connect (refused, DNS, TLS handshake).
        public static let unreachable = Code(base: .unreachable)
        public static let timeout = Code(base: .timeout)
        /// 5xx after all retries.
        public static let serverError = Code(base: .serverError)
        /// The server answered something we do not understand.
        public static let protocolError = Code(base: .protocolError)
        public static let invalidArgument = Code(base: .invalidArgument)
        /// Local file-system failure.
        public static let io = Code(base: .io)
        public static let cancelled = Code(base: .cancelled)
        public var description: String { base.rawValue }
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
