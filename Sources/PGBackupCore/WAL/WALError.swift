/// Why a WAL file could not be archived, shipped or fetched, with what to do about it. The message
/// always names the file or object.
public typealias WALError = CodedError<WALErrorCode>

/// The codes of ``WALError``.
public enum WALErrorCode: String, ErrorCode {
    /// Not a name PostgreSQL archives (segment, `.history`, `.backup`, `.partial`).
    case invalidName
    /// The name is already spooled or archived with other content; nothing was overwritten.
    case conflict
    /// The spool holds `max_spool_mib` already: PostgreSQL keeps the WAL and retries.
    case spoolFull
    /// wal-fetch: the archive has no such file (recovery treats this as the end of WAL).
    case notFound
    /// An archived object is not a valid gzip stream (or fails its CRC), or its content does
    /// not match the SHA-256 in its name.
    case corrupt
    /// The archive holds more than one object for one WAL file name (different checksums in
    /// their names, or an old-style name beside a new one). Which is right needs a human:
    /// pgbackd never picks one.
    case ambiguous
    /// The stored object's size is not what was uploaded.
    case verifyFailed
    /// A local file operation failed (the WAL file, the spool, the target of wal-fetch).
    case io
}
