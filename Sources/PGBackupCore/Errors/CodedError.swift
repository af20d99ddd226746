/// What a code of a ``CodedError`` is: an enum, so ``ExitStatus`` can switch over every case.
public protocol ErrorCode: RawRepresentable<String>, Sendable, CaseIterable, CustomStringConvertible {
    /// Whether the error's description appends its underlying error (default: yes).
    static var describesUnderlying: Bool { get }
}

extension ErrorCode {
    public static var describesUnderlying: Bool { true }
    public var description: String { rawValue }
}

/// The error of one domain (``BackupError``, ``WALError``, ``RepositoryError``): what went wrong
/// (`code`), a sentence that names the object and the fix (`message`), and the cause.
public struct CodedError<C: ErrorCode>: Error, Sendable, CustomStringConvertible {
    public typealias Code = C
    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        guard Code.describesUnderlying, let underlying else { return message }
        return "\(message): \(underlying)"
    }
}
