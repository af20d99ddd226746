import Foundation

/// `pgbackd drill` and the daemon's `drill` job: restore a backup into scratch databases (or a
/// throw-away cluster) and check the data. The report is the output; its verdict is the outcome.
public struct DrillJob: Job {
    public enum Target: Sendable, Equatable {
        /// A backup id, or `latest` (the newest backup of any kind).
        case backup(String)
        /// The newest logical backup: the daemon's choice, the backup worth proving each day.
        case newestLogical
    }

    public var target: Target
    public var databases: [String]
    public var keep: Bool
    public var scratchMajor: Int?

    public init(_ target: Target, databases: [String] = [], keep: Bool = false, scratchMajor: Int? = nil) {
        self.target = target
        self.databases = databases
        self.keep = keep
        self.scratchMajor = scratchMajor
    }

    public var kind: JobKind { .drill }

    public func run(in context: JobContext) async throws -> DrillReport {
        let backup: String
        switch target {
        case .backup(let id):
            backup = id
        case .newestLogical:
            guard let newest = try await context.repository.backups().last(where: { $0.kind == .logical }) else {
                throw RepositoryError(.backupNotFound, message: "stanza '\(context.stanza)' holds no logical backup to drill yet")
            }
            backup = newest.backupId
        }
        if backup != "latest" { context.subject.set(backupId: backup) }
        let request = Drill.Request(backup: backup, databases: databases, keep: keep, scratchMajor: scratchMajor)
        return try await Drill(configuration: context.configuration, repository: context.repository, logger: context.logger).run(request)
    }

    public func outcome(of report: DrillReport) -> JobOutcome {
        switch report.verdict ?? report.computedVerdict {
        case .passed: .succeeded
        case .failed: .checkFailed
        case .unverifiable: .unverifiable
        }
    }

    public func event(for report: DrillReport, in context: JobContext) -> AlertEvent? {
        .drill(report, reportKey: context.repository.drillReportKey(backupId: report.backupId, drillId: report.drillId))
    }

    public func record(_ report: DrillReport, in context: JobContext, metrics: DaemonMetrics) async {
        metrics.drillRestored(report)
        guard report.passed, let backup = try? await context.repository.manifest(report.backupId) else { return }
        metrics.verified(backupFinishedAt: backup.finishedAt, drillFinishedAt: report.finishedAt)
    }

    /// The report as an error, for callers that treat a check failure as a failed run.
    public static func checkFailure(_ report: DrillReport) -> JobCheckFailed? {
        let verdict = report.verdict ?? report.computedVerdict
        guard verdict != .passed else { return nil }
        return JobCheckFailed(verdict == .unverifiable ? .drillUnverifiable : .drillFailed, description:
            "drill \(report.drillId) of backup \(report.backupId) failed \(report.failures.count) check(s): "
            + report.failures.prefix(3).map { ($0.database.map { "\($0): " } ?? "") + $0.check.name }.joined(separator: ", "))
    }
}
