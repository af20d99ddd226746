import Foundation

/// The name of an event, e.g. `drill.failed`. Only the names in ``known`` exist; hooks name
/// them in `events = [...]` (or `"*"` for all).
public struct AlertEventName: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let backupSucceeded = AlertEventName(rawValue: "backup.succeeded")
    public static let backupFailed = AlertEventName(rawValue: "backup.failed")
    public static let drillSucceeded = AlertEventName(rawValue: "drill.succeeded")
    public static let drillFailed = AlertEventName(rawValue: "drill.failed")
    /// `pgbackd expire` or the daemon's retention job failed, was cancelled or interrupted.
    public static let retentionFailed = AlertEventName(rawValue: "retention.failed")
    /// A wal-check could not run (storage down…); a check that ran and found gaps is `wal.gap`.
    public static let walCheckFailed = AlertEventName(rawValue: "wal_check.failed")
    public static let walLag = AlertEventName(rawValue: "wal.lag")
    /// The end of a `wal.lag` episode: the oldest unshipped file is within the limit again.
    public static let walLagResolved = AlertEventName(rawValue: "wal.lag.resolved")
    public static let walGap = AlertEventName(rawValue: "wal.gap")
    public static let walConflict = AlertEventName(rawValue: "wal.conflict")
    public static let storageUnreachable = AlertEventName(rawValue: "storage.unreachable")
    /// The end of a `storage.unreachable` episode: shipping works again.
    public static let storageReachable = AlertEventName(rawValue: "storage.reachable")
    public static let spoolFull = AlertEventName(rawValue: "spool.full")
    /// No backup (logical or base) succeeded within `daemon.max_backup_age`.
    public static let backupStale = AlertEventName(rawValue: "backup.stale")
    /// No drill passed within `daemon.max_unverified_age`: the backups are unproven.
    public static let drillStale = AlertEventName(rawValue: "drill.stale")
    public static let daemonStarted = AlertEventName(rawValue: "daemon.started")
    public static let daemonStopping = AlertEventName(rawValue: "daemon.stopping")

    /// Every event pgbackd raises, in the order docs/alerts.md lists them.
    public static let known: [AlertEventName] = [
        .backupSucceeded, .backupFailed, .drillSucceeded, .drillFailed, .retentionFailed, .walCheckFailed, .walLag, .walLagResolved, .walGap, .walConflict,
        .storageUnreachable, .storageReachable, .spoolFull, .backupStale, .drillStale, .daemonStarted, .daemonStopping,
    ]

    /// The severity an event has unless its sender says otherwise.
    public var defaultSeverity: AlertSeverity {
        switch self {
        case .backupFailed, .drillFailed, .walGap, .walConflict, .spoolFull, .backupStale: .critical
        case .retentionFailed, .walCheckFailed, .walLag, .storageUnreachable, .daemonStopping, .drillStale: .warning
        default: .info
        }
    }
}

public enum AlertSeverity: String, Codable, Sendable, CaseIterable {
    case info
    case warning
    case critical
}

/// One event, as hooks receive it: the JSON document on a command hook's stdin and in a
/// webhook's POST body. Its schema is documented in docs/alerts.md and only grows: fields are
/// added (with a new ``currentSchemaVersion``), never renamed or removed. Every field is always
/// present; the ones that do not apply are `null` (or `[]` for `failed_checks`).
public struct AlertEvent: Codable, Sendable, Equatable {
    /// 2 added `verdict`; 3 added `outcome`.
    public static let currentSchemaVersion = 3
    /// A failed check copies at most this many evidence rows into the event; the drill report
    /// (``reportKey``) has them all.
    public static let maxEvidenceRows = 20

    public var schemaVersion: Int
    public var event: AlertEventName
    public var severity: AlertSeverity
    public var stanza: String
    public var backupId: String?
    public var drillId: String?
    /// The host pgbackd runs on.
    public var host: String
    /// When it happened, to the second (ISO 8601, UTC, in JSON).
    public var time: Date
    /// One line for a pager or a chat message.
    public var summary: String
    /// The checks a drill failed, with their evidence; empty otherwise.
    public var failedChecks: [FailedCheck]
    /// What stopped a job that could not finish (storage down, pg_dump failed…); nil otherwise.
    public var error: String?
    /// The repository key of the drill report, e.g. `main/drills/<backup-id>/<drill-id>.json`.
    public var reportKey: String?
    /// A drill that ran: `passed`, `failed` (a check found a problem with the backup) or
    /// `unverifiable` (the drill host could not check it, e.g. an extension it lacks). nil otherwise.
    public var verdict: DrillReport.Verdict?
    /// How the job run the event is about ended (``JobOutcome``): `succeeded`, `check_failed` (the
    /// data failed a check), `unverifiable`, `failed` (the job could not run), `cancelled` (a
    /// stop), `interrupted` (its process died; reported by the next run). nil for events about
    /// no single run (`wal.lag`, `storage.*`, `*.stale`, `daemon.*`).
    public var outcome: JobOutcome?

    public struct FailedCheck: Codable, Sendable, Equatable {
        /// The database the check ran in; nil for checks of the backup as a whole (`artifacts`).
        public var database: String?
        /// `referential`, `content-size`, `row-counts`, `objects`, `sql:<name>`, `artifacts`, `restore`.
        public var check: String
        public var summary: String
        /// The rows that show the failure (primary keys, sizes, dangling values…).
        public var evidence: [[String: String]]

        public init(database: String?, check: String, summary: String, evidence: [[String: String]] = []) {
            self.database = database
            self.check = check
            self.summary = summary
            self.evidence = evidence
        }

        enum CodingKeys: String, CodingKey {
            case database, check, summary, evidence
        }

        /// `database` is written as `null` for a backup-wide check, never left out.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(database, forKey: .database)
            try container.encode(check, forKey: .check)
            try container.encode(summary, forKey: .summary)
            try container.encode(evidence, forKey: .evidence)
        }
    }

    /// An event of any kind; ``severity`` defaults to the event's own
    /// (``AlertEventName/defaultSeverity``). `time` is cut to whole seconds, as JSON carries it.
    public init(
        event: AlertEventName,
        severity: AlertSeverity? = nil,
        stanza: String,
        summary: String,
        backupId: String? = nil,
        drillId: String? = nil,
        failedChecks: [FailedCheck] = [],
        error: String? = nil,
        reportKey: String? = nil,
        verdict: DrillReport.Verdict? = nil,
        outcome: JobOutcome? = nil,
        host: String = ProcessInfo.processInfo.hostName,
        time: Date = Date()
    ) {
        self.schemaVersion = Self.currentSchemaVersion
        self.event = event
        self.severity = severity ?? event.defaultSeverity
        self.stanza = stanza
        self.backupId = backupId
        self.drillId = drillId
        self.host = host
        self.time = Date(timeIntervalSince1970: time.timeIntervalSince1970.rounded(.down))
        self.summary = summary
        self.failedChecks = failedChecks
        self.error = error
        self.reportKey = reportKey
        self.verdict = verdict
        self.outcome = outcome
    }

    // MARK: from job outcomes

    /// `drill.succeeded` or `drill.failed` for a drill that ran its checks. `reportKey` is where
    /// the report was stored (``Repository/drillReportKey(backupId:drillId:)``), nil if it was not.
    public static func drill(_ report: DrillReport, reportKey: String?) -> AlertEvent {
        let total = report.checks.count + report.databases.reduce(0) { $0 + $1.checks.count }
        let failures = report.failures
        let failed = failures.map { failure in
            FailedCheck(database: failure.database, check: failure.check.name, summary: failure.check.summary,
                        evidence: Array(failure.check.evidence.prefix(maxEvidenceRows)))
        }
        let summary: String
        let verdict = report.verdict ?? report.computedVerdict
        if report.passed {
            summary = "drill \(report.drillId) of backup \(report.backupId) passed: all \(total) checks passed"
        } else if verdict == .unverifiable {
            summary = "drill \(report.drillId) could not verify backup \(report.backupId) on this host: \(failed.map(\.summary).joined(separator: "; "))"
        } else {
            let names = failed.prefix(5).map { check in check.database.map { "\(check.check) on \($0)" } ?? check.check }
            let more = failed.count > 5 ? ", …" : ""
            summary = "drill \(report.drillId) of backup \(report.backupId) FAILED: \(failed.count) of \(total) checks failed (\(names.joined(separator: ", "))\(more))"
        }
        return AlertEvent(
            event: report.passed ? .drillSucceeded : .drillFailed, severity: verdict == .unverifiable ? .warning : nil,
            stanza: report.stanza, summary: summary,
            backupId: report.backupId, drillId: report.drillId, failedChecks: failed, reportKey: reportKey, verdict: verdict,
            outcome: report.passed ? .succeeded : (verdict == .unverifiable ? .unverifiable : .checkFailed),
            host: report.host, time: report.finishedAt
        )
    }

    /// `drill.failed` for a drill that could not run its checks (no such backup, storage down,
    /// the restore could not start…). `backupId` is nil when it was never resolved.
    public static func drillFailed(
        stanza: String, backupId: String?, error: any Error, outcome: JobOutcome = .failed,
        host: String = ProcessInfo.processInfo.hostName, time: Date = Date()
    ) -> AlertEvent {
        jobFailed(.drill, stanza: stanza, backupId: backupId, error: error, outcome: outcome, host: host, time: time)
    }

    /// The failure event of a job run that did not finish (``JobRunner``'s policy):
    /// `backup.failed` (logical and base), `drill.failed`, `retention.failed` or
    /// `wal_check.failed`, with `outcome` `failed`, `cancelled` (severity warning: a stop was
    /// asked) or `interrupted` (its process died).
    public static func jobFailed(
        _ job: JobKind, stanza: String, backupId: String?, error: any Error, outcome: JobOutcome,
        host: String = ProcessInfo.processInfo.hostName, time: Date = Date()
    ) -> AlertEvent {
        let message = String(describing: error)
        let event: AlertEventName
        let subject: String
        switch job {
        case .backup, .baseBackup:
            event = .backupFailed
            subject = backupId.map { "backup \($0)" } ?? (job == .baseBackup ? "base backup" : "backup")
        case .drill:
            event = .drillFailed
            subject = backupId.map { "drill of backup \($0)" } ?? "drill"
        case .retention:
            event = .retentionFailed
            subject = "expire"
        case .walCheck:
            event = .walCheckFailed
            subject = "wal-check"
        }
        let verb = switch outcome {
        case .cancelled: "was CANCELLED"
        case .interrupted: "was INTERRUPTED"
        default: job == .drill || job == .walCheck ? "could not run" : "FAILED"
        }
        return AlertEvent(
            event: event, severity: outcome == .cancelled ? .warning : nil, stanza: stanza,
            summary: "\(subject) \(verb): \(firstLine(message))",
            backupId: backupId, error: message, outcome: outcome, host: host, time: time
        )
    }

    /// `wal.gap` for a wal-check that found problems (``WALCheck/Report/problems``).
    public static func walGap(_ report: WALCheck.Report, stanza: String, host: String = ProcessInfo.processInfo.hostName, time: Date = Date()) -> AlertEvent {
        let problems = report.problems
        let more = problems.count > 3 ? "; …" : ""
        return AlertEvent(
            event: .walGap, stanza: stanza,
            summary: "WAL archive of stanza '\(stanza)' has \(problems.count) problem\(problems.count == 1 ? "" : "s"): \(problems.prefix(3).joined(separator: "; "))\(more)",
            error: problems.joined(separator: "\n"), outcome: .checkFailed, host: host, time: time
        )
    }

    /// `backup.succeeded` for a committed backup.
    public static func backup(_ manifest: Manifest, host: String = ProcessInfo.processInfo.hostName) -> AlertEvent {
        let databases = manifest.databases.count
        let seconds = Int(manifest.finishedAt.timeIntervalSince(manifest.startedAt).rounded())
        let stored = ByteCountFormatter.string(fromByteCount: manifest.storedSize, countStyle: .binary)
        let summary = "backup \(manifest.backupId) succeeded: \(manifest.kind.rawValue), \(databases) database\(databases == 1 ? "" : "s"), \(stored) stored, \(seconds) s"
        return AlertEvent(
            event: .backupSucceeded, stanza: manifest.stanza, summary: summary, backupId: manifest.backupId,
            outcome: .succeeded, host: host, time: manifest.finishedAt
        )
    }

    /// `backup.failed`: the backup did not commit. `backupId` is nil when it failed before one
    /// was chosen.
    public static func backupFailed(
        stanza: String, backupId: String?, error: any Error, outcome: JobOutcome = .failed,
        host: String = ProcessInfo.processInfo.hostName, time: Date = Date()
    ) -> AlertEvent {
        jobFailed(.backup, stanza: stanza, backupId: backupId, error: error, outcome: outcome, host: host, time: time)
    }

    private static func firstLine(_ text: String) -> String {
        let line = text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
        return line.count > 300 ? String(line.prefix(300)) + "…" : line
    }

    // MARK: JSON

    /// The document hooks receive: UTF-8 JSON, keys sorted, one line.
    public func json() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    public static func decode(_ bytes: [UInt8]) throws -> AlertEvent {
        try JSONDecoder().decode(AlertEvent.self, from: Data(bytes))
    }

    // The keys are spelled out and every one is always written, so the schema does not depend
    // on an encoder's settings, and a consumer never has to tell a missing key from a null.
    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case event, severity, stanza
        case backupId = "backup_id"
        case drillId = "drill_id"
        case host, time, summary
        case failedChecks = "failed_checks"
        case error
        case reportKey = "report_key"
        case verdict, outcome
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schemaVersion, forKey: .schemaVersion)
        try container.encode(event, forKey: .event)
        try container.encode(severity, forKey: .severity)
        try container.encode(stanza, forKey: .stanza)
        try container.encode(backupId, forKey: .backupId)
        try container.encode(drillId, forKey: .drillId)
        try container.encode(host, forKey: .host)
        try container.encode(time.formatted(.iso8601), forKey: .time)
        try container.encode(summary, forKey: .summary)
        try container.encode(failedChecks, forKey: .failedChecks)
        try container.encode(error, forKey: .error)
        try container.encode(reportKey, forKey: .reportKey)
        try container.encode(verdict, forKey: .verdict)
        try container.encode(outcome, forKey: .outcome)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try container.decode(Int.self, forKey: .schemaVersion)
        event = try container.decode(AlertEventName.self, forKey: .event)
        severity = try container.decode(AlertSeverity.self, forKey: .severity)
        stanza = try container.decode(String.self, forKey: .stanza)
        backupId = try container.decodeIfPresent(String.self, forKey: .backupId)
        drillId = try container.decodeIfPresent(String.self, forKey: .drillId)
        host = try container.decode(String.self, forKey: .host)
        let timeText = try container.decode(String.self, forKey: .time)
        guard let parsed = (try? Date.ISO8601FormatStyle().parse(timeText))
            ?? (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(timeText)) else {
            throw DecodingError.dataCorruptedError(forKey: .time, in: container, debugDescription: "not an ISO 8601 time: \(timeText)")
        }
        time = parsed
        summary = try container.decode(String.self, forKey: .summary)
        failedChecks = try container.decodeIfPresent([FailedCheck].self, forKey: .failedChecks) ?? []
        error = try container.decodeIfPresent(String.self, forKey: .error)
        reportKey = try container.decodeIfPresent(String.self, forKey: .reportKey)
        verdict = try container.decodeIfPresent(DrillReport.Verdict.self, forKey: .verdict)
        outcome = try container.decodeIfPresent(JobOutcome.self, forKey: .outcome)
    }
}
