/// Why compressed data could not be read (or, rarely, written).
///
/// `code` is what callers branch on; `context` says where in the stream it happened and
/// `message` carries zlib's own explanation, so a log line is enough to diagnose a bad artifact.
public struct CompressionError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The bytes are not a valid gzip/deflate stream (bad header, bad block, garbage after a member).
        case corrupt
        /// The stream decoded, but a member's CRC-32 or length trailer does not match the data.
        case checksumMismatch
        /// The input ended inside a gzip member, or held no member at all.
        case truncated
        /// zlib failed for a reason other than the data, e.g. `Z_MEM_ERROR`.
        case zlib(Int32)
    }

    public var code: Code
    /// Where: which member and how far into the compressed input.
    public var context: String
    public var message: String

    public init(_ code: Code, context: String, message: String) {
        self.code = code
        self.context = context
        self.message = message
    }

    public var description: String {
        "compression error (\(code)) in \(context): \(message)"
    }
}
