/// A configuration problem, found before any work starts. Its description is one line naming the
/// file, the key, what was found and what is expected. The CLI exits with 78 (EX_CONFIG) for it.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public static let unreadable = Code(name: "unreadable")
        public static let syntax = Code(name: "syntax")
        public static let unknownKey = Code(name: "unknownKey")
        public static let wrongType = Code(name: "wrongType")
        public static let invalidValue = Code(name: "invalidValue")
        public static let missingKey = Code(name: "missingKey")
        public static let secret = Code(name: "secret")
        public var description: String { name }
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
