/// Why a WAL file could not be archived, shipped or fetched, with what to do about it. The message
/// always names the file or object.
public struct WALError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// Not a name PostgreSQL archives (segment, `.history`, `.backup`, `.partial`).
        public static let invalidName = Code(name: "invalidName")
        /// The name is already spooled or archived with other content; nothing was overwritten.
        public static let conflict = Code(name: "conflict")
        /// The spool holds `max_spool_mib` already: PostgreSQL keeps the WAL and retries.
        public static let spoolFull = Code(name: "spoolFull")
        /// wal-fetch: the archive has no such file (recovery treats this as the end of WAL).
        public static let notFound = Code(name: "notFound")
        /// An archived object is not a valid gzip stream (or fails its CRC), or its content does
        /// not match the SHA-256 in its name.
        public static let corrupt = Code(name: "corrupt")
        /// The archive holds more than one object for one WAL file name (different checksums in
        /// their names, or an old-style name beside a new one). Which is right needs a human:
        /// pgbackd never picks one.
        public static let ambiguous = Code(name: "ambiguous")
        /// The stored object's size is not what was uploaded.
        public static let verifyFailed = Code(name: "verifyFailed")
        /// A local file operation failed (the WAL file, the spool, the target of wal-fetch).
        public static let io = Code(name: "io")
        public var description: String { name }
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        guard let underlying else { return message }
        return "\(message): \(underlying)"
    }
}
