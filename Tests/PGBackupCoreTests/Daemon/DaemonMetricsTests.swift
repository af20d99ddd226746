import Foundation
@testable import PGBackupCore
import Testing

struct StalenessEpisodeTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    let hour = Duration.seconds(3600)

    @Test func raisesOnceWhenStaleThenRemindsEveryMaxAgeAndEndsWhenFresh() {
        var episode = StalenessEpisode()
        var raised: Bool
        // Fresh: within the age.
        raised = episode.evaluate(lastGood: start, maxAge: hour, now: start.addingTimeInterval(3600))
        #expect(!raised)
        #expect(!episode.isStale)
        // Stale: raised once…
        raised = episode.evaluate(lastGood: start, maxAge: hour, now: start.addingTimeInterval(3601))
        #expect(raised)
        #expect(episode.isStale)
        raised = episode.evaluate(lastGood: start, maxAge: hour, now: start.addingTimeInterval(3660))
        #expect(!raised)
        raised = episode.evaluate(lastGood: start, maxAge: hour, now: start.addingTimeInterval(7200))
        #expect(!raised)
        // …then once more every max age while it lasts.
        raised = episode.evaluate(lastGood: start, maxAge: hour, now: start.addingTimeInterval(7201))
        #expect(raised)
        raised = episode.evaluate(lastGood: start, maxAge: hour, now: start.addingTimeInterval(7300))
        #expect(!raised)
        // A success ends the episode; the next one raises at once.
        let success = start.addingTimeInterval(7400)
        raised = episode.evaluate(lastGood: success, maxAge: hour, now: success.addingTimeInterval(10))
        #expect(!raised)
        #expect(!episode.isStale)
        raised = episode.evaluate(lastGood: success, maxAge: hour, now: success.addingTimeInterval(3601))
        #expect(raised)
    }

    @Test func agesReadForPeople() {
        #expect(HealthMonitor.describe(seconds: 4) == "4s")
        #expect(HealthMonitor.describe(seconds: 26 * 3600 + 5 * 60) == "1d 2h 5m")
        #expect(HealthMonitor.describe(seconds: 8 * 86_400) == "8d")
    }
}

struct DaemonMetricsTests {
    /// `name{labels} value` lines of the exposition, as a dictionary.
    func samples(_ metrics: DaemonMetrics) -> [String: Double] {
        var result: [String: Double] = [:]
        for line in String(decoding: metrics.exposition(), as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            result[String(line[..<space])] = value
        }
        return result
    }

    @Test func jobOutcomesSetTimestampsAndCounters() {
        let metrics = DaemonMetrics(version: "9.9.9")
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        metrics.jobFinished(.backup, JobRun(start: start, end: start.addingTimeInterval(42), outcome: .succeeded))
        metrics.jobFinished(.backup, JobRun(start: start, end: start.addingTimeInterval(50), outcome: .failed, error: "boom"))
        metrics.jobFinished(.drill, JobRun(start: start, end: start.addingTimeInterval(60), outcome: .cancelled))
        let values = samples(metrics)
        #expect(values[#"pgbackd_build_info{version="9.9.9"}"#] == 1)
        #expect(values[#"pgbackd_job_last_success_timestamp_seconds{job="backup"}"#] == 1_800_000_042)
        #expect(values[#"pgbackd_job_last_failure_timestamp_seconds{job="backup"}"#] == 1_800_000_050)
        #expect(values[#"pgbackd_job_runs_total{job="backup",outcome="succeeded"}"#] == 1)
        #expect(values[#"pgbackd_job_runs_total{job="backup",outcome="failed"}"#] == 1)
        #expect(values[#"pgbackd_job_runs_total{job="drill",outcome="cancelled"}"#] == 1)
        // A cancelled run is neither a success nor a failure.
        #expect(values[#"pgbackd_job_last_success_timestamp_seconds{job="drill"}"#] == 0)
        #expect(values[#"pgbackd_job_last_failure_timestamp_seconds{job="drill"}"#] == 0)
        #expect(values[#"pgbackd_job_last_duration_seconds{job="drill"}"#] == 60)
    }

    /// The recovery time a drill measured, in all and per database.
    @Test func drillsGiveTheirRestoreTime() {
        let metrics = DaemonMetrics()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let databases = [("daylog", 41.5), ("auth", 3.5)].map {
            DrillReport.DatabaseDrill(name: $0.0, scratchDatabase: "s", kept: false, restoreSeconds: $0.1, checkSeconds: 1, checks: [])
        }
        metrics.drillRestored(DrillReport(drillId: "d", backupId: "b", stanza: "main", host: "h", startedAt: now, finishedAt: now,
                                          passed: true, checks: [], databases: databases, restoreSeconds: 45))
        let values = samples(metrics)
        #expect(values["pgbackd_drill_restore_seconds"] == 45)
        #expect(values[#"pgbackd_drill_database_restore_seconds{database="daylog"}"#] == 41.5)
        #expect(values[#"pgbackd_drill_database_restore_seconds{database="auth"}"#] == 3.5)
    }

    @Test func alertsCountRaisedEventsAndDeliveries() {
        let metrics = DaemonMetrics()
        metrics.alertSent(.backupFailed, hooks: 3, failed: 1)
        metrics.alertSent(.backupFailed, hooks: 0, failed: 0)
        let values = samples(metrics)
        #expect(values[#"pgbackd_alerts_total{event="backup.failed"}"#] == 2)
        #expect(values[#"pgbackd_alert_deliveries_total{event="backup.failed",result="delivered"}"#] == 2)
        #expect(values[#"pgbackd_alert_deliveries_total{event="backup.failed",result="failed"}"#] == 1)
    }

    @Test func theSpoolGivesLagAndBytes() {
        let metrics = DaemonMetrics()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let files = [
            WALSpool.SpooledFile(file: WALFileName("000000010000000000000002")!, size: 100, modified: now.addingTimeInterval(-30)),
            WALSpool.SpooledFile(file: WALFileName("000000010000000000000003")!, size: 50, modified: now.addingTimeInterval(-5)),
        ]
        metrics.refresh(scheduler: nil, spool: files, now: now)
        var values = samples(metrics)
        #expect(values["pgbackd_wal_spool_files"] == 2)
        #expect(values["pgbackd_wal_spool_bytes"] == 150)
        #expect(values["pgbackd_wal_lag_seconds"] == 30)
        metrics.refresh(scheduler: nil, spool: [], now: now)
        values = samples(metrics)
        #expect(values["pgbackd_wal_lag_seconds"] == 0)
    }
}
