/// A configuration problem, found before any work starts. Its description is one line naming the
/// file, the key, what was found and what is expected. The CLI exits with 78 (EX_CONFIG) for it.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        case unreadable
        case syntax
        case unknownKey
        case wrongType
        case invalidValue
        case missingKey
        case secret
        public var description: String { rawValue }
    }

    public var code: Code
    /// The configuration file, when the problem is in one.
    public var file: String?
    /// The dotted key, e.g. `repository.s3.part_size_mib`.
    public var key: String?
    public var message: String

    public init(_ code: Code, file: String?, key: String?, message: String) {
        self.code = code
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String {
        [file, key].compactMap { $0 }.joined(separator: ": ") + (file == nil && key == nil ? "" : ": ") + message
    }
}
