import Foundation
import Logging

/// The daemon's jobs, each the same ``Job`` its command runs, through the same ``JobRunner``:
/// `backup` and `base_backup` (``BackupJob``), `drill` (``DrillJob`` of the newest logical
/// backup), `retention` (``RetentionJob``) and `wal_check` (``WALCheckJob``). A run whose data
/// failed a check is thrown as ``JobCheckFailed``, so the scheduler records it as such.
public struct DaemonJobs: ScheduledJobRunner {
    let repository: Repository
    let metrics: DaemonMetrics?
    let outbox: AlertService?
    let logger: Logger

    public init(repository: Repository, metrics: DaemonMetrics? = nil, outbox: AlertService? = nil, logger: Logger) {
        self.repository = repository
        self.metrics = metrics
        self.outbox = outbox
        self.logger = logger
    }

    public func run(_ kind: JobKind, configuration: Configuration) async throws -> JobResult {
        let runner = JobRunner(configuration: configuration, repository: repository, logger: logger, metrics: metrics, outbox: outbox)
        switch kind {
        case .backup, .baseBackup:
            let manifest = try await runner.run(BackupJob(kind == .backup ? .logical(databases: []) : .base))
            return JobResult(backupId: manifest.backupId, summary: "committed \(manifest.backupId), \(manifest.storedSize) bytes stored")
        case .drill:
            let report = try await runner.run(DrillJob(.newestLogical))
            if let failure = DrillJob.checkFailure(report) { throw failure }
            return JobResult(backupId: report.backupId, drillId: report.drillId, summary: "drill \(report.drillId) of \(report.backupId) passed")
        case .retention:
            let result = try await runner.run(RetentionJob())
            return JobResult(summary: "expired \(result.expired.count) backup(s) and \(result.wal.expired.count) WAL file(s); \(result.deletedObjects) object(s) deleted")
        case .walCheck:
            let report = try await runner.run(WALCheckJob())
            if let failure = WALCheckJob.checkFailure(report) { throw failure }
            let segments = report.timelines.reduce(0) { $0 + $1.segments }
            return JobResult(summary: "WAL archive complete: \(segments) segment(s) on \(report.timelines.count) timeline(s), \(report.backups.filter(\.recoverableToLatest).count) base backup(s) recoverable to the newest WAL")
        }
    }
}
