import Compression
import Foundation
import Logging
import PGBackdSupport
import Testing

/// Issue #4 acceptance 1: a real cluster archiving through `pgbackd wal-push`, a pgbench load, a
/// base backup, more load, a recorded time T with its row counts, more load; point-in-time
/// restore to T gives exactly those counts.
@Suite(.serialized) struct PointInTimeRecoveryTests {
    @Test(.enabled(if: TestServices.postgresEnabled))
    func restoresExactlyTheCountsAtT() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup { cleanup in
            let repository = try temporaryDirectory("pitr-repo")
            cleanup.remove(repository)
            // Level 6, where base backups compress with zlib (docs/decisions.md): checked below.
            try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                type = "file"
                path = "\(repository)"
                stanza = "pitr"
                """, extraConfiguration: "[compression]\nlevel = 8") { cluster, pitr in
                // -n on the load runs: no TRUNCATE of pgbench_history, whose replayed lock would
                // block readers of a cluster paused just before that commit.
                try await offPool { try pitr.pgbench(["-i", "-s", "4", "--quiet", "--foreign-keys"]) }
                try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "300"]) }

                let backup = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--type", "base", "--json", "--config", pitr.config]) }
                #expect(backup.status == 0, "base backup: \(backup.stderr)")
                let summary = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
                let backupId = try #require(summary?["backup_id"] as? String, "\(backup.stdout)")
                #expect(backupId.hasSuffix("-base"))
                let wal = try #require(summary?["wal"] as? [String: Any], "the manifest records the WAL range")
                #expect(wal["start_lsn"] != nil && wal["stop_segment"] != nil)
                try await Self.expectLibdeflateMembers(config: pitr.config, stanza: "pitr", backupId: backupId)

                try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "300"]) }
                // T, then the counts at T: nothing commits in between (pgbench has finished).
                let targetTime = try cluster.sql("select now()")
                let countsAtT = try pitr.counts(cluster.sql)
                try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "300"]) }
                let countsAfter = try pitr.counts(cluster.sql)
                #expect(countsAfter != countsAtT, "the load after T changed nothing: the test would prove nothing")
                try await pitr.archiveEverything(cluster)

                // The repository is read by restore_command, which runs as the server's user.
                try cluster.giveToOwner(repository)
                let restored = try await pitr.restoreAndStart(["--time", targetTime])
                defer { restored.stop() }
                #expect(try pitr.counts(restored.sql) == countsAtT, "PITR to \(targetTime) did not give the counts recorded at T")
                #expect(try restored.sql("select pg_is_in_recovery()") == "t", "without --promote recovery pauses at the target")

                // A drill of the base backup: restored into a throw-away cluster, recovered, checked.
                let drill = try await offPool { try blockingShell(pitr.pgbackd, ["drill", backupId, "--json", "--config", pitr.config]) }
                #expect(drill.status == 0, "base drill: \(drill.stdout.suffix(3000)) \(drill.stderr.suffix(2000))")
                let report = try JSONSerialization.jsonObject(with: Data(drill.stdout.utf8)) as? [String: Any]
                #expect(report?["passed"] as? Bool == true)
                let backupChecks = (report?["checks"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                #expect(backupChecks == ["artifacts", "verifybackup", "recovery", "wal", "checksums", "amcheck"], "\(backupChecks)")
                let databases = report?["databases"] as? [[String: Any]] ?? []
                let postgresChecks = databases.first { $0["name"] as? String == "postgres" }?["checks"] as? [[String: Any]] ?? []
                let referential = postgresChecks.first { $0["name"] as? String == "referential" }
                #expect(referential?["passed"] as? Bool == true)
                #expect((referential?["figures"] as? [String: Any])?["foreign_keys"] as? Int == 5, "pgbench --foreign-keys makes 5: \(String(describing: referential))")
            }
        }
    }
}

extension PointInTimeRecoveryTests {
    /// The stored tar is what the default engine writes, one libdeflate gzip member per 4 MiB
    /// block, and the manifest says so (level 8: the level the benchmark runs against
    /// pgBackRest's gz 6). Fails if base backups went back to zlib by default (one member) or
    /// libdeflate's blocks to 1 MiB (four times as many members).
    /// The objects are read through ``RepositoryObjects``: decrypted on an encrypted repository.
    static func expectLibdeflateMembers(config: String, stanza: String, backupId: String) async throws {
        let objects = try await RepositoryObjects(config: config)
        let directory = "\(stanza)/backups/\(backupId)"
        let manifest = try JSONSerialization.jsonObject(with: Data(try await objects.read("\(directory)/manifest.json"))) as? [String: Any]
        let compression = manifest?["compression"] as? [String: Any]
        #expect(compression?["engine"] as? String == "libdeflate", "\(String(describing: compression))")
        #expect(compression?["level"] as? Int == 8)
        let stored = try await objects.read("\(directory)/base.tar.gz")
        var decoder = GzipDecoder()
        let raw = try decoder.decompress(stored) + decoder.finish()
        let block = 4 << 20
        #expect(raw.count > 2 * block, "a cluster's tar spans several 4 MiB blocks")
        #expect(decoder.memberCount == (raw.count + block - 1) / block, "\(decoder.memberCount) gzip members for \(raw.count) bytes")
    }

    /// The same with S3 gone for 60 seconds in the middle of the load: archive_command keeps
    /// succeeding (spool mode), wal.lag fires and resolves, wal-check finds no gap, PITR works.
    @Test(.enabled(if: TestServices.s3Enabled))
    func survivesSixtySecondsWithoutS3() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        let endpoint = try #require(URL(string: s3.endpoint))
        try await withCleanup { cleanup in
            let proxy = try OutageProxy(targetHost: endpoint.host ?? "127.0.0.1", targetPort: endpoint.port ?? 80)
            defer { proxy.stop() }
            let events = try temporaryDirectory("pitr-alerts") + "/events.jsonl"
            cleanup.remove((events as NSString).deletingLastPathComponent)
            let prefix = "pitr-outage-\(UUID().uuidString.prefix(8))"
            try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                type = "s3"
                stanza = "pitr"
                [repository.s3]
                endpoint = "http://127.0.0.1:\(proxy.port)"
                bucket = "\(s3.bucket)"
                region = "\(s3.region)"
                prefix = "\(prefix)"
                access_key_id = "\(s3.accessKeyID)"
                secret_access_key = "\(s3.secretAccessKey)"
                """, walSettings: """
                max_lag_seconds = 15
                rescan_seconds = 1
                """, extraConfiguration: """
                [[alerts.command]]
                events = ["wal.lag", "wal.lag.resolved", "storage.unreachable", "storage.reachable"]
                run = ["/bin/sh", "-c", "cat >> \(events); echo >> \(events)"]
                """) { cluster, pitr in
                let watcher = try launchPgbackd(["wal-watch", "--config", pitr.config])
                defer { stopGracefully(watcher) }
                try await offPool { try pitr.pgbench(["-i", "-s", "4", "--quiet"]) }
                let backup = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--type", "base", "--config", pitr.config]) }
                #expect(backup.status == 0, "base backup: \(backup.stderr)")
                try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "300"]) }

                proxy.goDown()
                let failedBefore = try cluster.sql("select failed_count from pg_stat_archiver")
                var targetTime = "", countsAtT = ""
                let outageStart = ContinuousClock.now
                var round = 0
                while ContinuousClock.now - outageStart < .seconds(60) {
                    try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "100"]) }
                    _ = try cluster.sql("select pg_switch_wal()")
                    if round == 2 {
                        targetTime = try cluster.sql("select now()")
                        countsAtT = try pitr.counts(cluster.sql)
                    }
                    round += 1
                    try await Task.sleep(for: .seconds(2))
                }
                #expect(try cluster.sql("select failed_count from pg_stat_archiver") == failedBefore, "archive_command failed while S3 was down")
                #expect(try String(contentsOfFile: events, encoding: .utf8).contains("\"wal.lag\""), "wal.lag did not fire during the outage")
                let spooled = try FileManager.default.contentsOfDirectory(atPath: "\(cluster.base)/spool").filter { !$0.hasPrefix(".") }
                #expect(spooled.count >= 10, "the spool should have buffered the outage: \(spooled.count) files")

                proxy.comeUp()
                let resolved = try await eventually(attempts: 600) {
                    let text = (try? String(contentsOfFile: events, encoding: .utf8)) ?? ""
                    return text.contains("\"wal.lag.resolved\"")
                }
                #expect(resolved, "wal.lag did not resolve after S3 came back: \((try? String(contentsOfFile: events, encoding: .utf8)) ?? "")")
                try await pitr.archiveEverything(cluster, shipWithWatcher: true)

                let check = try await offPool { try blockingShell(pitr.pgbackd, ["wal-check", "--json", "--config", pitr.config]) }
                #expect(check.status == 0, "wal-check: \(check.stdout) \(check.stderr)")
                let report = try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any]
                #expect((report?["gaps"] as? [Any])?.isEmpty == true, "\(check.stdout)")

                let restored = try await pitr.restoreAndStart(["--time", targetTime])
                defer { restored.stop() }
                let restoredCounts = try pitr.counts(restored.sql)
                let log = (try? String(contentsOfFile: "\(restored.base)/postgres.log", encoding: .utf8)) ?? ""
                #expect(restoredCounts == countsAtT, "PITR to \(targetTime), inside the outage, gave \(restoredCounts), not the counts at T \(countsAtT): \(log.suffix(1500))")
            }
        }
    }
}

/// SIGTERM, up to 10 s to exit, then SIGKILL; never Foundation's waitUntilExit, which can hang here.
func stopGracefully(_ process: Process) {
    process.terminate()
    for _ in 0..<100 where process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
}

/// A TCP proxy in front of the S3 server that can refuse connections for a while.
final class OutageProxy: Sendable {
    let process: Process
    let port: Int

    init(targetHost: String, targetPort: Int, filePath: String = #filePath) throws {
        let script = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/outage-proxy.py").path
        let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("outage-proxy-\(UUID().uuidString).port").path
        defer { try? FileManager.default.removeItem(atPath: portFile) }
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, targetHost, "\(targetPort)", portFile]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var port: Int?
        for _ in 0..<100 where port == nil {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            if port == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        guard let port else {
            process.terminate()
            throw ThrowawayCluster.ClusterError(message: "outage-proxy.py did not report its port within 10 s")
        }
        self.port = port
    }

    func goDown() { kill(process.processIdentifier, SIGUSR1) }
    func comeUp() { kill(process.processIdentifier, SIGUSR2) }
    /// SIGKILL and a bounded wait: Foundation's waitUntilExit can hang on Linux.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<50 where process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
    }
}

/// What the PITR tests share: a cluster whose archive_command is `pgbackd wal-push` into a spool,
/// pgbackd configured for it, pgbench, and a restored second cluster.
struct PITRHarness {
    let cluster: ThrowawayCluster
    let binDirectory: String
    var pgbackd: String { "\(cluster.base)/pgbackd" }
    var config: String { "\(cluster.base)/pgbackd.toml" }

    func pgbench(_ arguments: [String]) throws {
        let result = try blockingShell("\(binDirectory)/pgbench", ["-h", cluster.socket, "-p", "\(cluster.port)", "-U", "postgres"] + arguments + ["postgres"])
        guard result.status == 0 else { throw ThrowawayCluster.ClusterError(message: "pgbench \(arguments): \(result.stderr)") }
    }

    /// Rows in pgbench's growing table and the sum its updates move.
    func counts(_ sql: (String) throws -> String) throws -> String {
        try sql("select (select count(*) from pgbench_history) || ' ' || (select sum(abalance) from pgbench_accounts)")
    }

    /// Switches to a new segment, waits until PostgreSQL archived it, and ships the spool (itself,
    /// or by waiting for a running watcher to empty it).
    func archiveEverything(_ cluster: ThrowawayCluster, shipWithWatcher: Bool = false) async throws {
        let before = Int(try cluster.sql("select archived_count from pg_stat_archiver")) ?? 0
        // A WAL record first, so the switch always closes a segment (it is a no-op on an empty one).
        _ = try cluster.sql("select pg_logical_emit_message(false, 'pgbackd-test', 'switch')")
        _ = try cluster.sql("select pg_switch_wal()")
        let archived = try await eventually(attempts: 300) {
            (Int(try cluster.sql("select archived_count from pg_stat_archiver")) ?? 0) > before
        }
        #expect(archived, "PostgreSQL did not archive the switched segment: see \(cluster.base)/postgres.log")
        if shipWithWatcher {
            let emptied = try await eventually(attempts: 1200) {
                try FileManager.default.contentsOfDirectory(atPath: "\(cluster.base)/spool").filter { !$0.hasPrefix(".") }.isEmpty
            }
            #expect(emptied, "the watcher did not empty the spool")
            return
        }
        let watch = try await offPool { [pgbackd, config] in try blockingShell(pgbackd, ["wal-watch", "--once", "--config", config]) }
        #expect(watch.status == 0, "wal-watch: \(watch.stderr)")
    }

    /// `pgbackd restore --pgdata` into a new directory, then starts that cluster on its own socket
    /// with archiving off, and waits until recovery has stopped (paused or promoted).
    func restoreAndStart(_ arguments: [String]) async throws -> RestoredCluster {
        let restored = RestoredCluster(base: "\(cluster.base)/restored", binDirectory: binDirectory)
        let result = try await offPool { [pgbackd, config] in try blockingShell(pgbackd, ["restore", "--pgdata", restored.data, "--config", config] + arguments) }
        guard result.status == 0 else {
            throw ThrowawayCluster.ClusterError(message: "pgbackd restore \(arguments) failed (\(result.status)): \(result.stderr)")
        }
        try await restored.start()
        return restored
    }
}

/// A cluster started from a restored data directory; only the test's own settings are added.
struct RestoredCluster: Sendable {
    let server: PostgresCluster
    var base: String { server.base }
    var data: String { server.data }
    var socket: String { server.socket }

    init(base: String, binDirectory: String) {
        server = PostgresCluster(base: base, binDirectory: binDirectory, logger: Logger(label: "pgbackd.test.restored"))
    }

    func start() async throws {
        // The server writes its log and socket here.
        try server.makeDirectories(socketMode: 0o755)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(data)/postgresql.auto.conf"))
        try handle.seekToEnd()
        // Its own socket (the original still runs), and it must not archive into the test's stanza.
        try handle.write(contentsOf: Data("unix_socket_directories = '\(socket)'\narchive_mode = off\n".utf8))
        try handle.close()
        let started = try await server.start(waitSeconds: 120)
        guard started.succeeded else {
            throw ThrowawayCluster.ClusterError(message: "the restored cluster did not start (\(started.statusText)): \(started.stdout) \(started.stderr) \(server.logTail(3000))")
        }
        try await offPool { try waitForRecoveryTarget() }
    }

    /// Accepting connections can come before recovery reaches its target: waits for pause or promotion.
    private func waitForRecoveryTarget() throws {
        for _ in 0..<600 {
            let state = try? sql("select pg_is_in_recovery()::text || ' ' || case when pg_is_in_recovery() then pg_get_wal_replay_pause_state() else 'promoted' end")
            // ("not paused" ends in "paused" too: compare whole words.)
            if let state, state == "true paused" || state == "false promoted" { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw ThrowawayCluster.ClusterError(message: "recovery did not reach its target within 60 s: see \(base)/postgres.log")
    }

    func sql(_ statement: String) throws -> String {
        let result = try blockingShell("\(server.binDirectory)/psql", ["-h", socket, "-p", "\(PostgresCluster.port)", "-U", "postgres", "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement],
                               environment: ["PGOPTIONS": "-c statement_timeout=30s"])
        guard result.status == 0 else { throw ThrowawayCluster.ClusterError(message: "psql \(statement): \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Synchronous, for a `defer`.
    func stop() {
        server.stopImmediately()
    }
}
