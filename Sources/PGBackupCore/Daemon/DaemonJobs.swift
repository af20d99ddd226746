import Foundation
import Logging

/// The daemon's jobs: `backup` (``LogicalBackup``), `base_backup` (``BaseBackup``), `drill`
/// (``Drill`` of the newest logical backup), `retention` (``ExpireJob``) and `wal_check`
/// (``WALCheck``). Each raises the same
/// alerts as its command; a job cancelled by a stop raises none (it committed nothing).
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
        var logger = self.logger
        logger[metadataKey: "job"] = "\(kind.rawValue)"
        let alerts = AlertDispatcher(configuration: configuration.alerts, logger: logger, metrics: metrics, outbox: outbox)
        let stanza = configuration.repository.stanza
        switch kind {
        case .backup, .baseBackup:
            do {
                let manifest = kind == .backup
                    ? try await LogicalBackup(configuration: configuration, repository: repository, logger: logger).run()
                    : try await BaseBackup(configuration: configuration, repository: repository, logger: logger).run()
                metrics?.backupCommitted(manifest)
                await alerts.send(.backup(manifest))
                return JobResult(backupId: manifest.backupId, summary: "committed \(manifest.backupId), \(manifest.storedSize) bytes stored")
            } catch {
                if !(error is CancellationError) && !Task.isCancelled {
                    await alerts.send(.backupFailed(stanza: stanza, backupId: nil, error: error))
                }
                throw error
            }
        case .drill:
            var backupId: String?
            do {
                // Drills restore logical backups; the newest one is the one worth proving.
                guard let newest = try await repository.backups().last(where: { $0.kind == .logical }) else {
                    throw RepositoryError(.backupNotFound, message: "stanza '\(stanza)' holds no logical backup to drill yet")
                }
                backupId = newest.backupId
                let report = try await Drill(configuration: configuration, repository: repository, logger: logger).run(.init(backup: newest.backupId))
                metrics?.drillRestored(report)
                await alerts.send(.drill(report, reportKey: repository.drillReportKey(backupId: report.backupId, drillId: report.drillId)))
                guard report.passed else {
                    throw DrillFailed(report: report)
                }
                metrics?.verified(backupFinishedAt: newest.finishedAt, drillFinishedAt: report.finishedAt)
                return JobResult(backupId: report.backupId, drillId: report.drillId, summary: "drill \(report.drillId) of \(report.backupId) passed")
            } catch let error as DrillFailed {
                throw error
            } catch {
                if !(error is CancellationError) && !Task.isCancelled {
                    await alerts.send(.drillFailed(stanza: stanza, backupId: backupId, error: error))
                }
                throw error
            }
        case .retention:
            let result = try await ExpireJob(rules: configuration.retention, repository: repository, logger: logger).run(now: Date())
            return JobResult(summary: "expired \(result.expired.count) backup(s) and \(result.wal.expired.count) WAL file(s); \(result.deletedObjects) object(s) deleted")
        case .walCheck:
            let report = try await WALCheck(repository: repository).run()
            guard report.isComplete else {
                await alerts.send(.walGap(report, stanza: stanza))
                throw WALCheckFailed(problems: report.problems)
            }
            let segments = report.timelines.reduce(0) { $0 + $1.segments }
            return JobResult(summary: "WAL archive complete: \(segments) segment(s) on \(report.timelines.count) timeline(s), \(report.backups.filter(\.recoverableToLatest).count) base backup(s) recoverable to the newest WAL")
        }
    }
}

/// A wal-check that found gaps, missing history files or files archived twice.
public struct WALCheckFailed: Error, CustomStringConvertible {
    public var problems: [String]
    public var description: String {
        "the WAL archive has \(problems.count) problem(s): " + problems.prefix(3).joined(separator: "; ") + (problems.count > 3 ? "; …" : "")
    }
}

/// A drill that ran and found a problem.
public struct DrillFailed: Error, CustomStringConvertible {
    public var report: DrillReport
    public var description: String {
        "drill \(report.drillId) of backup \(report.backupId) failed \(report.failures.count) check(s): "
            + report.failures.prefix(3).map { ($0.database.map { "\($0): " } ?? "") + $0.check.name }.joined(separator: ", ")
    }
}
