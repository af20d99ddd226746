import Foundation

/// What the WAL watcher knows right now, for `pgbackd status` and metrics: a copy, taken under
/// the watcher's lock, so readers never see half an update.
public struct WALWatcherStatus: Sendable, Equatable {
    /// How the watcher learns about new files.
    public enum Wakeups: String, Sendable {
        /// inotify wakes it at once; the rescan is the safety net.
        case inotify
        /// inotify is unavailable: only the periodic rescan finds new files.
        case rescanOnly = "rescan-only"
    }

    /// Ready files in the spool (temp files of running wal-pushes not counted).
    public var spooledFiles: Int = 0
    /// Their bytes.
    public var spoolBytes: Int64 = 0
    /// The spooled file that has waited longest (by mtime, i.e. since wal-push spooled it).
    public var oldestUnshipped: WALFileName?
    /// How long it has waited, in seconds, when the spool was last looked at; nil when empty.
    public var oldestUnshippedAge: TimeInterval?
    /// The newest segment (by WAL order) confirmed in the archive by this watcher.
    public var lastShipped: WALFileName?
    public var lastShippedAt: Date?
    /// The last shipping or scanning failure, kept after later successes (compare the times).
    public var lastError: String?
    public var lastErrorAt: Date?
    /// When the last pass over the spool finished.
    public var lastPassAt: Date?
    /// A `wal.lag` episode is open.
    public var lagging = false
    /// A `storage.unreachable` episode is open.
    public var storageUnreachable = false
    public var wakeups: Wakeups = .rescanOnly

    public init() {}
}

/// Turns what the watcher observes into alert events, once per episode: `wal.lag` when the
/// oldest unshipped file passes `max_lag_seconds` and `wal.lag.resolved` when it is back under,
/// `storage.unreachable` when shipping fails for want of the storage and `storage.reachable`
/// once it works again, and `wal.conflict` once per conflicting file while it stays spooled.
/// A value type with the clock passed in, so its tests need neither time nor storage.
struct WALAlertEpisodes: Sendable {
    let stanza: String
    let spoolDirectory: String
    let repositoryDescription: String
    let maxLagSeconds: Int

    private(set) var lagging = false
    private(set) var unreachableSince: Date?
    private(set) var alertedConflicts: Set<WALFileName> = []

    var unreachable: Bool { unreachableSince != nil }

    init(stanza: String, spoolDirectory: String, repositoryDescription: String, maxLagSeconds: Int) {
        self.stanza = stanza
        self.spoolDirectory = spoolDirectory
        self.repositoryDescription = repositoryDescription
        self.maxLagSeconds = maxLagSeconds
    }

    /// What one look at the spool found.
    struct SpoolView: Sendable {
        var files: [WALSpool.SpooledFile]
        /// The watcher's listing number (later listings have larger ones).
        var number = 0
        var oldest: WALSpool.SpooledFile? { files.min { ($0.modified, $0.file) < ($1.modified, $1.file) } }
        var bytes: Int64 { files.reduce(0) { $0 + $1.size } }
    }

    /// The lag check: an event when an episode starts or ends, nil otherwise.
    mutating func observeLag(_ spool: SpoolView, now: Date) -> AlertEvent? {
        let oldest = spool.oldest
        let age = oldest.map { now.timeIntervalSince($0.modified) } ?? 0
        let over = oldest != nil && age > TimeInterval(maxLagSeconds)
        switch (lagging, over) {
        case (false, true):
            lagging = true
            let mib = Double(spool.bytes) / 1_048_576
            return AlertEvent(
                event: .walLag, stanza: stanza,
                summary: "WAL archiving is behind: \(oldest!.file.name) has waited \(Int(age)) s in the spool \(spoolDirectory) (wal.max_lag_seconds = \(maxLagSeconds)); \(spool.files.count) file\(spool.files.count == 1 ? "" : "s"), \(String(format: "%.1f", mib)) MiB unshipped",
                time: now)
        case (true, false):
            lagging = false
            let state = oldest.map { "the oldest unshipped file, \($0.file.name), has waited \(Int(age)) s" } ?? "the spool is empty"
            return AlertEvent(
                event: .walLagResolved, stanza: stanza,
                summary: "WAL archiving caught up: \(state) (wal.max_lag_seconds = \(maxLagSeconds))",
                time: now)
        default:
            return nil
        }
    }

    /// What a pass (or a probe) showed about the storage.
    enum StorageOutcome: Sendable {
        /// At least one request was answered, and none failed for want of the storage.
        case reachable
        /// A request failed because the storage could not be reached.
        case unreachable(String)
        /// Nothing was asked of the storage (an empty spool, local failures only).
        case untested
    }

    /// Classifies a pass: any unreachable-class failure makes it `unreachable`; a shipped,
    /// already archived or conflicting file (all of which got answers) makes it `reachable`.
    static func storageOutcome(of result: WALShipper.PassResult) -> StorageOutcome {
        if let failure = result.failures.first(where: { WALShipper.isUnreachable($0.error) }) {
            return .unreachable("\(failure.error)")
        }
        if !result.shipped.isEmpty || !result.alreadyArchived.isEmpty || !result.conflicts.isEmpty { return .reachable }
        return .untested
    }

    mutating func observeStorage(_ outcome: StorageOutcome, spooledFiles: Int, now: Date) -> AlertEvent? {
        switch (unreachableSince, outcome) {
        case (nil, .unreachable(let error)):
            unreachableSince = now
            return AlertEvent(
                event: .storageUnreachable, stanza: stanza,
                summary: "the \(repositoryDescription) cannot be reached: WAL shipping stopped, \(spooledFiles) file\(spooledFiles == 1 ? "" : "s") wait in the spool \(spoolDirectory)",
                error: error, time: now)
        case (let since?, .reachable):
            unreachableSince = nil
            return AlertEvent(
                event: .storageReachable, stanza: stanza,
                summary: "the \(repositoryDescription) is reachable again after \(Int(now.timeIntervalSince(since))) s: WAL shipping resumed",
                time: now)
        default:
            return nil
        }
    }

    /// One `wal.conflict` per file while it stays in the spool; a file that leaves the spool
    /// (an operator moved it away) and comes back conflicting is a new episode.
    /// - Parameter spooled: what the spool holds now; nil when it could not be listed.
    mutating func observeConflicts(_ conflicts: [(file: WALFileName, error: WALError)], spooled: Set<WALFileName>?, now: Date) -> [AlertEvent] {
        if let spooled { alertedConflicts.formIntersection(spooled.union(conflicts.map(\.file))) }
        var events: [AlertEvent] = []
        for (file, error) in conflicts where alertedConflicts.insert(file).inserted {
            events.append(AlertEvent(
                event: .walConflict, stanza: stanza,
                summary: "WAL file \(file.name) conflicts with the archive: left in the spool \(spoolDirectory), not shipped",
                error: "\(error)", time: now))
        }
        return events
    }
}
