/// A stored artifact that is not what its manifest says: missing, truncated, altered, or not
/// valid gzip. The message always names the object.
public struct IntegrityError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        case missingObject
        case sizeMismatch
        case checksumMismatch
        case corruptCompression
        /// An encrypted object fails authentication, is cut short, or names another object or key.
        case undecryptable
        public var description: String { rawValue }
    }
    public var code: Code
    /// The object key, relative to the stanza.
    public var key: String
    public var message: String

    public var description: String { message }
}
