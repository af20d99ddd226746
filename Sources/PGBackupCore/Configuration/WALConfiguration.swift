import Foundation

/// `[wal]`: WAL archiving (`wal-push`, `wal-fetch`, the watcher).
public struct WALConfiguration: Sendable {
    public enum Mode: String, Sendable {
        /// wal-push copies into the spool and returns; the watcher uploads. Never waits on storage.
        case spool
        /// wal-push uploads itself and exits 0 only once the object is stored and verified.
        case sync
    }
    /// Default `spool`.
    public var mode: Mode
    /// Default `/var/lib/pgbackd/spool`. Must be writable by the PostgreSQL server's OS user.
    public var spoolDirectory: String
    /// wal-push refuses (and PostgreSQL keeps the WAL in pg_wal) when the spool holds this much. Default 10240.
    public var maxSpoolMiB: Int
    /// `wal.lag` fires when the oldest unshipped file is older than this. Default 300.
    public var maxLagSeconds: Int
    /// Uploads the watcher keeps in flight. Default 4.
    public var parallelUploads: Int
    /// The watcher's safety-net rescan of the spool, in seconds; inotify wakes it at once in
    /// between. Default 5.
    public var rescanSeconds: Int
    /// Segments wal-fetch downloads ahead of the one PostgreSQL asks for, so the next calls are
    /// served from local disk. 0 turns prefetching off. Default 4.
    public var prefetch: Int

    public static let defaultSpoolDirectory = "/var/lib/pgbackd/spool"

    public var maxSpoolBytes: Int64 { Int64(maxSpoolMiB) << 20 }

    public init(mode: Mode = .spool, spoolDirectory: String = Self.defaultSpoolDirectory, maxSpoolMiB: Int = 10240,
                maxLagSeconds: Int = 300, parallelUploads: Int = 4, rescanSeconds: Int = 5, prefetch: Int = 4) {
        self.mode = mode
        self.spoolDirectory = spoolDirectory
        self.maxSpoolMiB = maxSpoolMiB
        self.maxLagSeconds = maxLagSeconds
        self.parallelUploads = parallelUploads
        self.rescanSeconds = rescanSeconds
        self.prefetch = prefetch
    }

    init(_ reader: TOMLReader?) throws {
        self.init()
        guard let reader else { return }
        mode = Mode(rawValue: try reader.oneOf("mode", ["spool", "sync"], default: "spool"))!
        spoolDirectory = try reader.string("spool_dir", default: Self.defaultSpoolDirectory)
        maxSpoolMiB = try reader.int("max_spool_mib", in: 1...16_777_216, default: 10240)
        maxLagSeconds = try reader.int("max_lag_seconds", in: 1...604_800, default: 300)
        parallelUploads = try reader.int("parallel_uploads", in: 1...64, default: 4)
        rescanSeconds = try reader.int("rescan_seconds", in: 1...3600, default: 5)
        prefetch = try reader.int("prefetch", in: 0...64, default: 4)
        guard spoolDirectory.hasPrefix("/") else {
            throw reader.error(.invalidValue, "spool_dir", "expected an absolute directory path, got \"\(spoolDirectory)\"")
        }
        try reader.rejectUnknownKeys()
    }
}
