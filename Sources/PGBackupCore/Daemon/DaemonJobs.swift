import Foundation
import Logging

/// The seam the retention job calls: removes what the `[retention]` rules no longer keep and
/// returns a one-line summary. Retention (`pgbackd expire`) is built separately; the daemon is
/// wired to it through ``DaemonJobs/retention``.
public typealias RetentionRun = @Sendable (_ configuration: Configuration, _ repository: Repository, _ logger: Logger) async throws -> String

/// Retention is not part of this build: the scheduled job fails (and says so) until
/// ``DaemonJobs/retention`` is wired to the real implementation.
public struct RetentionUnavailable: Error, CustomStringConvertible {
    public var description: String { "retention not available in this build" }
}

/// The daemon's jobs: `backup` (``LogicalBackup``), `base_backup` (``BaseBackup``), `drill`
/// (``Drill`` of the newest logical backup) and `retention` (``retention``). Each raises the same
/// alerts as its command; a job cancelled by a stop raises none (it committed nothing).
public struct DaemonJobs: ScheduledJobRunner {
    let repository: Repository
    let logger: Logger
    /// Retention seam: nil until the `Retention` implementation is wired here.
    let retention: RetentionRun?

    public init(repository: Repository, logger: Logger, retention: RetentionRun? = nil) {
        self.repository = repository
        self.logger = logger
        self.retention = retention
    }

    public func run(_ kind: JobKind, configuration: Configuration) async throws -> JobResult {
        var logger = self.logger
        logger[metadataKey: "job"] = "\(kind.rawValue)"
        let alerts = AlertDispatcher(configuration: configuration.alerts, logger: logger)
        let stanza = configuration.repository.stanza
        switch kind {
        case .backup, .baseBackup:
            do {
                let manifest = kind == .backup
                    ? try await LogicalBackup(configuration: configuration, repository: repository, logger: logger).run()
                    : try await BaseBackup(configuration: configuration, repository: repository, logger: logger).run()
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
                await alerts.send(.drill(report, reportKey: repository.drillReportKey(backupId: report.backupId, drillId: report.drillId)))
                guard report.passed else {
                    throw DrillFailed(report: report)
                }
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
            guard let retention else {
                logger.error("retention not available in this build")
                throw RetentionUnavailable()
            }
            return JobResult(summary: try await retention(configuration, repository, logger))
        }
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
