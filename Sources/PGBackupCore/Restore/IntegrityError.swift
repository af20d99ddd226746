/// A stored artifact that is not what its manifest says: missing, truncated, altered, or not
/// valid gzip. The message always names the object.
public struct IntegrityError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public static let missingObject = Code(name: "missingObject")
        public static let sizeMismatch = Code(name: "sizeMismatch")
        public static let checksumMismatch = Code(name: "checksumMismatch")
        public static let corruptCompression = Code(name: "corruptCompression")
        public var description: String { name }
    }
    public var code: Code
    /// The object key, relative to the stanza.
    public var key: String
    public var message: String

    public var description: String { message }
}
