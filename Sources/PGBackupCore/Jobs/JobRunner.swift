import Foundation
import Logging

/// The one code path every job runs through, for commands and the daemon alike. Its policy,
/// documented in docs/alerts.md ("Job outcomes"):
/// - before the run, records of earlier runs of the same job whose process died are reported
///   as `interrupted` (the job's failure event) and removed; then this run's record is written;
/// - a run that returns raises the job's own event (`backup.succeeded`, `drill.failed` with its
///   checks, `wal.gap`…) and updates the daemon's metrics;
/// - a run that throws raises the job's failure event with outcome `failed`, or `cancelled`
///   (severity warning) when a stop caused it, and is rethrown (a cancellation as
///   ``JobCancelled``);
/// - the run's record is removed however the run ended, except by the death of the process.
public struct JobRunner: Sendable {
    public let configuration: Configuration
    public let repository: Repository
    let logger: Logger
    let alerts: AlertDispatcher
    let metrics: DaemonMetrics?

    /// `metrics` and `outbox` are the daemon's: its metrics endpoint and the queue that delivers
    /// alerts in the background. A command passes neither and waits for its alerts' delivery.
    public init(configuration: Configuration, repository: Repository, logger: Logger, metrics: DaemonMetrics? = nil, outbox: AlertService? = nil) {
        self.configuration = configuration
        self.repository = repository
        self.logger = logger
        self.metrics = metrics
        self.alerts = AlertDispatcher(configuration: configuration.alerts, logger: logger, metrics: metrics, outbox: outbox)
    }

    public func run<J: Job>(_ job: J) async throws -> J.Output {
        var logger = self.logger
        logger[metadataKey: "job"] = "\(job.kind.rawValue)"
        let context = JobContext(configuration: configuration, repository: repository, logger: logger)
        let journal = JobJournal(repository: repository, job: job.kind, logger: logger)
        var recordKey: String?
        do {
            if job.keepsRecord {
                try await reportInterruptedRuns(of: job.kind, journal: journal, context: context)
                recordKey = try await journal.begin(.current(job.kind))
            }
            let output = try await job.run(in: context)
            if let recordKey { await journal.end(recordKey) }
            if let metrics { await job.record(output, in: context, metrics: metrics) }
            if let event = job.event(for: output, in: context) { await alerts.send(event) }
            return output
        } catch {
            if let recordKey { await journal.end(recordKey) }
            let cancelled = JobCancelled.isCancellation(error)
            let event = AlertEvent.jobFailed(job.kind, stanza: context.stanza, backupId: context.subject.backupId, error: error,
                                             outcome: cancelled ? .cancelled : .failed)
            await uncancelled { [alerts] in _ = await alerts.send(event) }
            if cancelled && !(error is JobCancelled) { throw JobCancelled(.stop, job: job.kind, underlying: error) }
            throw error
        }
    }

    private func reportInterruptedRuns(of job: JobKind, journal: JobJournal, context: JobContext) async throws {
        for (key, record) in try await journal.interruptedRuns() {
            context.logger.error("an earlier run never finished: its process died", metadata: [
                "job.record": "\(key)", "job.pid": "\(record.pid)", "job.host": "\(record.host)",
                "job.started_at": "\(record.startedAt.formatted(.iso8601))",
            ])
            metrics?.jobFinished(job, JobRun(start: record.startedAt, end: Date(), outcome: .interrupted, error: record.interruption.description))
            await alerts.send(.jobFailed(job, stanza: context.stanza, backupId: nil, error: record.interruption, outcome: .interrupted,
                                         time: Date()))
            await journal.end(key)
        }
    }
}
