import Encryption
import Foundation
import Logging
import Prometheus

/// What `pgbackd run` exposes on `[metrics] listen`, in Prometheus text format.
///
/// Events (a job finished, a backup committed, a drill passed, an alert went out) update the
/// registry as they happen; values that are cheaper to read than to track (schedule, spool) are
/// read when a scrape comes in (``refresh(scheduler:spool:now:)``). Timestamps are Unix seconds,
/// the convention of node_exporter's `*_timestamp_seconds`, so alert rules can say
/// `time() - pgbackd_job_last_success_timestamp_seconds{job="backup"} > 26*3600`.
public final class DaemonMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    public init(version: String = PGBackd.version) {
        gauge("pgbackd_build_info", [("version", version)], "Always 1; the pgbackd version as a label.").set(1.0)
        gauge("pgbackd_start_timestamp_seconds", [], "When this daemon started.").set(Date().timeIntervalSince1970)
        // Every series exists from the start (with 0), so rules see "never" rather than "no data".
        for kind in JobKind.allCases {
            for outcome in JobOutcome.allCases {
                _ = runs(kind, outcome)
            }
            _ = lastSuccess(kind)
            _ = lastFailure(kind)
        }
        for what in StaleSubject.allCases {
            stale(what).set(0.0)
        }
    }

    // MARK: Events

    /// A scheduled run ended (or, `interrupted`, was found to have died).
    public func jobFinished(_ kind: JobKind, _ run: JobRun) {
        runs(kind, run.outcome).increment()
        switch run.outcome {
        case .succeeded: lastSuccess(kind).set(run.end.timeIntervalSince1970)
        case .failed, .checkFailed, .unverifiable, .interrupted: lastFailure(kind).set(run.end.timeIntervalSince1970)
        case .cancelled: break
        }
        gauge("pgbackd_job_last_duration_seconds", [("job", kind.rawValue)], "How long the job's last run took, whatever its outcome.").set(run.end.timeIntervalSince(run.start))
    }

    /// The daemon's state at start (recorded or rebuilt from the repository), so a restart does
    /// not reset the timestamps alert rules watch.
    public func restore(from state: DaemonState) {
        for kind in JobKind.allCases {
            let history = state.history(kind)
            if let success = history.lastSuccess { lastSuccess(kind).set(success.end.timeIntervalSince1970) }
            if let failure = history.lastFailure { lastFailure(kind).set(failure.end.timeIntervalSince1970) }
        }
    }

    /// A backup committed (its manifest written).
    public func backupCommitted(_ manifest: Manifest) {
        let labels = [("kind", manifest.kind.rawValue)]
        gauge("pgbackd_backup_last_duration_seconds", labels, "Start to commit of the newest backup of this kind.")
            .set(manifest.finishedAt.timeIntervalSince(manifest.startedAt))
        gauge("pgbackd_backup_last_stored_bytes", labels, "Bytes the newest backup of this kind takes in the repository.")
            .set(manifest.storedSize)
        gauge("pgbackd_backup_last_raw_bytes", labels, "Bytes of the newest backup of this kind before compression.")
            .set(manifest.rawSize)
        gauge("pgbackd_backup_last_timestamp_seconds", labels, "When the newest backup of this kind committed.")
            .set(manifest.finishedAt.timeIntervalSince1970)
    }

    /// A drill finished: how long its restores took, in all and per database, this host's
    /// recovery time for that backup.
    public func drillRestored(_ report: DrillReport) {
        guard let total = report.restoreSeconds else { return }
        gauge("pgbackd_drill_restore_seconds", [], "How long the newest drill's restores took, all databases together: the recovery time (RTO) its backup gives on this host.")
            .set(total)
        if let servers = report.servers {
            gauge("pgbackd_drill_server_major", [("server", "source")], "Majors of the newest drill: the backed-up server (source) and the drill server (scratch); they differ in an upgrade drill.")
                .set(Double(servers.source / 10_000))
            gauge("pgbackd_drill_server_major", [("server", "scratch")], "Majors of the newest drill: the backed-up server (source) and the drill server (scratch); they differ in an upgrade drill.")
                .set(Double(servers.scratch / 10_000))
        }
        for database in report.databases {
            gauge("pgbackd_drill_database_restore_seconds", [("database", database.name)], "How long the newest drill's restore of each database took.")
                .set(database.restoreSeconds)
        }
    }

    /// A drill passed: the data as of that backup's end is proven restorable.
    public func verified(backupFinishedAt: Date, drillFinishedAt: Date) {
        gauge("pgbackd_verified_backup_timestamp_seconds", [], "End of the newest backup a drill restored and checked: data up to here is proven restorable.")
            .set(backupFinishedAt.timeIntervalSince1970)
        gauge("pgbackd_last_passed_drill_timestamp_seconds", [], "When the newest passing drill finished.")
            .set(drillFinishedAt.timeIntervalSince1970)
    }

    /// An alert was raised and handed to `hooks` hooks, of which `failed` could not deliver it.
    public func alertSent(_ event: AlertEventName, hooks: Int, failed: Int) {
        counter("pgbackd_alerts_total", [("event", event.rawValue)], "Alerts raised, by event, whether or not a hook wanted them.").increment()
        guard hooks > 0 else { return }
        counter("pgbackd_alert_deliveries_total", [("event", event.rawValue), ("result", "delivered")], "Deliveries to hooks, by event and result.").increment(by: Int64(hooks - failed))
        counter("pgbackd_alert_deliveries_total", [("event", event.rawValue), ("result", "failed")], "Deliveries to hooks, by event and result.").increment(by: Int64(failed))
    }

    /// Whether `subject` is stale now (1) or not (0).
    public func setStale(_ subject: StaleSubject, _ isStale: Bool) {
        stale(subject).set(isStale ? 1.0 : 0.0)
    }

    // MARK: Read at scrape time

    /// The scheduler's running jobs and next runs, and the spool as it is now.
    public func refresh(scheduler: Scheduler?, spool: [WALSpool.SpooledFile]?, now: Date = Date()) {
        if let scheduler {
            let status = scheduler.status
            for kind in JobKind.allCases {
                gauge("pgbackd_job_running", [("job", kind.rawValue)], "1 while the job runs (or waits for the database).")
                    .set(status.running[kind] == nil ? 0.0 : 1.0)
                gauge("pgbackd_job_next_run_timestamp_seconds", [("job", kind.rawValue)], "When the job runs next; 0 when it is not scheduled.")
                    .set(status.next[kind]?.timeIntervalSince1970 ?? 0)
            }
        }
        if let spool {
            let oldest = spool.map(\.modified).min()
            gauge("pgbackd_wal_spool_files", [], "WAL files spooled by wal-push and not yet shipped.").set(Int64(spool.count))
            gauge("pgbackd_wal_spool_bytes", [], "Bytes of WAL spooled and not yet shipped.").set(spool.reduce(0) { $0 + $1.size })
            gauge("pgbackd_wal_lag_seconds", [], "Age of the oldest unshipped WAL file; 0 when the spool is empty.")
                .set(oldest.map { max(now.timeIntervalSince($0), 0) } ?? 0)
        }
    }

    /// The exposition, `text/plain; version=0.0.4`.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }

    // MARK: Series

    private func gauge(_ name: String, _ labels: [(String, String)], _ help: String) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    private func counter(_ name: String, _ labels: [(String, String)], _ help: String) -> Counter {
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    private func runs(_ kind: JobKind, _ outcome: JobRun.Outcome) -> Counter {
        counter("pgbackd_job_runs_total", [("job", kind.rawValue), ("outcome", outcome.rawValue)], "Scheduled runs since the daemon started, by job and outcome.")
    }

    private func lastSuccess(_ kind: JobKind) -> Gauge {
        gauge("pgbackd_job_last_success_timestamp_seconds", [("job", kind.rawValue)], "When the job last succeeded; 0 if never.")
    }

    private func lastFailure(_ kind: JobKind) -> Gauge {
        gauge("pgbackd_job_last_failure_timestamp_seconds", [("job", kind.rawValue)], "When the job last failed; 0 if never.")
    }

    private func stale(_ subject: StaleSubject) -> Gauge {
        gauge("pgbackd_stale", [("what", subject.rawValue)], "1 while no backup succeeded within daemon.max_backup_age (what=backup) or no drill passed within daemon.max_unverified_age (what=drill).")
    }
}

extension DaemonMetrics {
    /// Values a restart would otherwise lose: the recorded runs, the newest backup of each kind
    /// and the newest passing drill. The repository is read once; if it cannot be, the
    /// series start empty and fill as jobs run.
    public func prime(state: DaemonState, repository: Repository, logger: Logger) async {
        restore(from: state)
        let fingerprint = repository.encryptionKeys.first?.fingerprint ?? ""
        gauge("pgbackd_repository_encrypted", [("key_fingerprint", fingerprint)],
              "1 when the repository is encrypted (labelled with the repository key's fingerprint, never the key), else 0.")
            .set(fingerprint.isEmpty ? 0.0 : 1.0)
        do {
            let backups = try await repository.backups()
            for kind in [BackupKind.logical, .base] {
                if let newest = backups.last(where: { $0.kind == kind }) { backupCommitted(newest) }
            }
            let reports = try await repository.drillReports()
            if let drill = try await repository.newestPassedDrill(in: reports),
               let backup = backups.first(where: { $0.backupId == drill.backupId }) {
                verified(backupFinishedAt: backup.finishedAt, drillFinishedAt: drill.finishedAt)
            }
            if let newest = reports.last, let report = try? await repository.drillReport(newest) { drillRestored(report) }
        } catch {
            logger.warning("metrics: cannot read the repository's backups at start; their series fill as jobs run",
                           metadata: ["metrics.error": "\(error)"])
        }
    }
}
