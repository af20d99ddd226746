import Foundation
import ObjectStorage
@testable import PGBackupCore
import Testing

/// Issue #5: the metrics endpoint of the real `pgbackd run`, scraped and parsed by the official
/// Prometheus Python client's parser (Support/scrape-metrics.py), and the staleness alerts.
@Suite(.serialized) struct DaemonMetricsTests {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct Scrape {
        var status: Int
        var contentType: String?
        var samples: [Sample]

        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { $0.name == name && $0.labels == labels }?.value
        }
    }

    static let scraper = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/scrape-metrics.py").path

    func scrape(_ url: String) async throws -> Scrape {
        let result = try await offPool { try blockingShell("python3", [Self.scraper, url]) }
        try #require(result.status == 0, "scrape-metrics.py failed (\(result.status)): \(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let samples = ((object["samples"] as? [[String: Any]]) ?? []).map {
            Sample(name: $0["name"] as? String ?? "", labels: $0["labels"] as? [String: String] ?? [:], value: $0["value"] as? Double ?? .nan)
        }
        return Scrape(status: object["status"] as? Int ?? 0, contentType: object["content_type"] as? String, samples: samples)
    }

    func launch(config: String, log: String) throws -> Process {
        try launchDaemon(config: config, log: log, removing: ["NOTIFY_SOCKET", "WATCHDOG_USEC"])
    }

    /// The port the daemon logged for `listen = "127.0.0.1:0"`.
    func listeningPort(_ log: String) -> Int? {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard let match = text.firstMatch(of: /metrics\.listen=127\.0\.0\.1:(\d+)/) else { return nil }
        return Int(match.1)
    }

    func events(_ file: String) -> [AlertEvent] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? AlertEvent.decode(Array($0.utf8)) }
    }

    func stopDaemon(_ daemon: Process) async throws {
        kill(daemon.processIdentifier, SIGTERM)
        #expect(try await eventually(attempts: 300) { !daemon.isRunning })
        // The endpoint's server ends with a CancellationError at a stop; that is no failure.
        #expect(daemon.terminationStatus == 0)
    }

    func config(_ postgres: TestServices.Postgres, repository: String, database: String, directory: String, schedule: String, daemon: String) -> String {
        BackupHarness.fileTOML(postgres, repository: repository, databases: [database], extra: """
            [schedule]
            \(schedule)
            [daemon]
            state_dir = "\(directory)/state"
            stop_timeout_seconds = 3
            wal_watcher = false
            \(daemon)
            [wal]
            spool_dir = "\(directory)/spool"
            [metrics]
            listen = "127.0.0.1:0"
            [[alerts.command]]
            events = ["*"]
            run = ["/bin/sh", "-c", "cat >> '\(directory)/events.jsonl'"]
            """)
    }

    @Test(.enabled(if: TestServices.postgresEnabled), .timeLimit(.minutes(3)))
    func theEndpointServesPrometheusTextWithTheDaemonsOutcomes() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 200)
            cleanup.dropDatabase(fixture.name)
            let directory = try temporaryDirectory("metrics")
            cleanup.remove(directory)
            let repository = "\(directory)/repo"
            // A spooled WAL file the (disabled) watcher leaves alone, 100 s old: lag and bytes to see.
            let spool = "\(directory)/spool"
            try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
            let segment = "\(spool)/000000010000000000000007"
            try Data(repeating: 7, count: 12345).write(to: URL(fileURLWithPath: segment))
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-100)], ofItemAtPath: segment)
            // An archive with a gap (segment 2 of 1...3 missing): the wal_check job fails and says so.
            let walDirectory = "\(repository)/test/wal/00000001"
            try FileManager.default.createDirectory(atPath: walDirectory, withIntermediateDirectories: true)
            for number in [1, 3] {
                let name = "00000001000000000000000\(number)-" + String(repeating: "\(number)", count: 64) + ".gz"
                _ = FileManager.default.createFile(atPath: "\(walDirectory)/\(name)", contents: Data([0x1f, 0x8b]))
            }
            let configPath = "\(directory)/pgbackd.toml"
            try config(postgres, repository: repository, database: fixture.name, directory: directory, schedule: """
                backup = "@every 3s"
                drill = "@every 5s"
                wal_check = "@every 4s"
                """, daemon: "").write(toFile: configPath, atomically: true, encoding: .utf8)
            let log = "\(directory)/daemon.log"
            let daemon = try launch(config: configPath, log: log)
            defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }
            let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

            let port = try #require(try await eventually(attempts: 300) { listeningPort(log) != nil } ? listeningPort(log) : nil,
                                    "no metrics endpoint; log: \(logText())")
            let url = "http://127.0.0.1:\(port)/metrics"
            var scrape = try await scrape(url)
            #expect(scrape.status == 200)
            #expect(scrape.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(scrape.value("pgbackd_build_info", ["version": PGBackd.version]) == 1)
            // Every job's series exist from the start, at 0.
            #expect(scrape.value("pgbackd_job_runs_total", ["job": "retention", "outcome": "failed"]) == 0)
            #expect(scrape.value("pgbackd_job_last_success_timestamp_seconds", ["job": "base_backup"]) == 0)
            #expect(scrape.value("pgbackd_stale", ["what": "backup"]) == 0)
            #expect(scrape.value("pgbackd_wal_spool_files") == 1)
            #expect(scrape.value("pgbackd_wal_spool_bytes") == 12345)
            #expect((scrape.value("pgbackd_wal_lag_seconds") ?? 0) >= 99, "\(String(describing: scrape.value("pgbackd_wal_lag_seconds")))")

            // Once a backup and a drill passed, their outcomes are there.
            let passed = try await eventually(attempts: 600) {
                let scrape = try await self.scrape(url)
                return (scrape.value("pgbackd_job_runs_total", ["job": "drill", "outcome": "succeeded"]) ?? 0) >= 1
            }
            #expect(passed, "no drill passed; log: \(logText())")
            scrape = try await self.scrape(url)
            try await stopDaemon(daemon)
            // Stopping the endpoint's server is no error (FlyingFox reports it as one).
            #expect(!logText().contains("server error"), "\(logText())")

            // The figures are the repository's: the newest backup's size, duration and commit time.
            let backups = try await RepositoryObjects(config: configPath).repository.backups()
            let committedAt = try #require(scrape.value("pgbackd_backup_last_timestamp_seconds", ["kind": "logical"]))
            let newest = try #require(backups.first { abs($0.finishedAt.timeIntervalSince1970 - committedAt) < 0.001 },
                                      "no backup committed at \(committedAt): \(backups.map(\.finishedAt))")
            #expect(scrape.value("pgbackd_backup_last_stored_bytes", ["kind": "logical"]) == Double(newest.storedSize))
            #expect(scrape.value("pgbackd_backup_last_raw_bytes", ["kind": "logical"]) == Double(newest.rawSize))
            let duration = try #require(scrape.value("pgbackd_backup_last_duration_seconds", ["kind": "logical"]))
            #expect(abs(duration - newest.finishedAt.timeIntervalSince(newest.startedAt)) < 0.001)
            let lastSuccess = try #require(scrape.value("pgbackd_job_last_success_timestamp_seconds", ["job": "backup"]))
            #expect(lastSuccess >= committedAt)
            // Verified-restorable: the end of a backup a drill passed on.
            let verified = try #require(scrape.value("pgbackd_verified_backup_timestamp_seconds"))
            let drills = try await RepositoryObjects(config: configPath).repository.drillReports()
            let drilled = Set(drills.map(\.backupId))
            #expect(backups.contains { drilled.contains($0.backupId) && abs($0.finishedAt.timeIntervalSince1970 - verified) < 0.001 })
            // Alerts: counted per event, and delivered to the hook.
            let succeededAlerts = try #require(scrape.value("pgbackd_alerts_total", ["event": "backup.succeeded"]))
            #expect(succeededAlerts >= 1)
            #expect(scrape.value("pgbackd_alert_deliveries_total", ["event": "backup.succeeded", "result": "delivered"]) == succeededAlerts)
            #expect(scrape.value("pgbackd_alert_deliveries_total", ["event": "backup.succeeded", "result": "failed"]) == 0)
            let seen = Set(events("\(directory)/events.jsonl").map(\.event))
            #expect(seen.isSuperset(of: [.daemonStarted, .backupSucceeded, .drillSucceeded, .walGap, .daemonStopping]), "\(seen)")
            // The scheduled wal-check found the gap: a run whose check failed (issue #14: not a run
            // that could not run), and the alert names the segment.
            #expect((scrape.value("pgbackd_job_runs_total", ["job": "wal_check", "outcome": "check_failed"]) ?? 0) >= 1)
            #expect(scrape.value("pgbackd_job_runs_total", ["job": "wal_check", "outcome": "failed"]) == 0)
            #expect(scrape.value("pgbackd_job_runs_total", ["job": "wal_check", "outcome": "succeeded"]) == 0)
            let gap = try #require(events("\(directory)/events.jsonl").first { $0.event == .walGap })
            #expect(gap.summary.contains("000000010000000000000002 is missing"), "\(gap.summary)")
        }
    }

    @Test(.enabled(if: TestServices.postgresEnabled), .timeLimit(.minutes(3)))
    func staleBackupsAndDrillsRaiseAlertsAndHandTakenBackupsCount() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 50)
            cleanup.dropDatabase(fixture.name)
            let directory = try temporaryDirectory("stale")
            cleanup.remove(directory)
            let configPath = "\(directory)/pgbackd.toml"
            // Nothing scheduled but retention: only hand-taken backups, and the ages run out fast.
            try config(postgres, repository: "\(directory)/repo", database: fixture.name, directory: directory, schedule: """
                retention = "@every 60s"
                """, daemon: """
                max_backup_age = "4s"
                max_unverified_age = "4s"
                """).write(toFile: configPath, atomically: true, encoding: .utf8)
            let log = "\(directory)/daemon.log"
            let daemon = try launch(config: configPath, log: log)
            defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }
            let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
            let eventsFile = "\(directory)/events.jsonl"

            // No backup since the daemon started 4 s ago: both alerts, once each.
            #expect(try await eventually(attempts: 150) {
                Set(events(eventsFile).map(\.event)).isSuperset(of: [.backupStale, .drillStale])
            }, "no stale alerts; log: \(logText())")
            let first = try #require(events(eventsFile).first { $0.event == .backupStale })
            #expect(first.backupId == nil)
            #expect(first.severity == .critical)
            #expect(first.summary.contains("max_backup_age"), "\(first.summary)")
            let port = try #require(listeningPort(log))
            let staleNow = try await scrape("http://127.0.0.1:\(port)/metrics")
            #expect(staleNow.value("pgbackd_stale", ["what": "backup"]) == 1)
            #expect((staleNow.value("pgbackd_alerts_total", ["event": "backup.stale"]) ?? 0) >= 1)

            // A backup taken by hand, not by the daemon: the monitor finds it in the repository,
            // so the next episode (4 s after it) names it.
            let manual = try await offPool { try blockingShell(pgbackdExecutable, ["backup", "--config", configPath]) }
            #expect(manual.status == 0, "\(manual.stderr)")
            let manualId = try #require(try await RepositoryObjects(config: configPath).repository.backups().last?.backupId)
            #expect(try await eventually(attempts: 200) {
                events(eventsFile).contains { $0.event == .backupStale && $0.backupId == manualId }
            }, "no backup.stale naming \(manualId); events: \(events(eventsFile).map { "\($0.event) \($0.backupId ?? "-")" }); log: \(logText())")
            try await stopDaemon(daemon)
        }
    }
}
