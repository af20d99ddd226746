import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue #16, "an injecting S3 proxy": every job pgbackd runs against S3, run through the real
/// `pgbackd` binary with the repository behind Support/fault-proxy.py, which gives 20 % of the
/// requests of every kind a fault (500, 503 SlowDown, 429, resets before and in the middle of a
/// request body, resets after the server acted, resets and truncation mid-response, stalls past
/// `stall_timeout_seconds`, CompleteMultipartUpload answering 200 with an `<Error>`). Each job
/// must succeed on its first run (pgbackd retries every request 5 times, and the proxy never
/// faults one request more than 3 times in a row, so a failure is a bug, not bad luck); what it
/// stored must restore identical to the source; no multipart upload may be left open on the
/// server (listed on moto directly). Parts are 5 MiB so the multipart steps run.
extension Reliability {
    @Suite(.serialized) struct S3Faults {
        static let area = "S3 faults"
        static let rate = 0.2
        /// The client's low-speed timeout, and the proxy's stall: longer, by more than libcurl's
        /// speed window (it averages over the last ~5 s, so right after a fast part upload or
        /// half a GET body the timeout starts counting up to 5 s late).
        static let stallTimeout = 2
        static let stallSeconds = 15

        static func proxy(_ s3: TestServices.S3, control: String, seed: Int) throws -> S3FaultProxy {
            let endpoint = try #require(URL(string: s3.endpoint))
            return try S3FaultProxy(targetHost: endpoint.host ?? "127.0.0.1", targetPort: endpoint.port ?? 80, control: control,
                                    rate: rate, seed: seed, stallSeconds: stallSeconds)
        }

        /// The `[repository.s3]` table through the proxy.
        static func s3Table(_ s3: TestServices.S3, proxy: S3FaultProxy, prefix: String) -> String {
            """
            [repository.s3]
            endpoint = "\(proxy.endpoint)"
            bucket = "\(s3.bucket)"
            region = "\(s3.region)"
            prefix = "\(prefix)"
            access_key_id = "\(s3.accessKeyID)"
            secret_access_key = "\(s3.secretAccessKey)"
            part_size_mib = 5
            parallel_parts = 3
            stall_timeout_seconds = \(stallTimeout)
            """
        }

        /// Runs one pgbackd command, and the faults the proxy injected meanwhile.
        static func run(_ pgbackd: String, _ arguments: [String], proxy: S3FaultProxy) async throws -> (status: Int32, stdout: String, stderr: String, injected: S3FaultProxy.Stats) {
            let before = try proxy.stats()
            let result = try await offPool { try blockingShell(pgbackd, arguments) }
            return (result.status, result.stdout, result.stderr, try proxy.stats().since(before))
        }

        static func json(_ text: String) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        }

        /// A job that met no fault proves nothing: one of 40 requests or more must have had some
        /// (0.8⁴⁰: once in 7,500 runs by chance). A smaller job is covered by ``expectStallsTimedOut``,
        /// which wants a fifth of the test's requests faulted, give or take.
        static func expectFaulted(_ injected: S3FaultProxy.Stats, _ job: String) {
            print("[s3-faults] \(job): \(injected.total) requests, \(injected.faultCount) faults")
            if injected.total >= 40 {
                #expect(injected.faultCount > 0, "\(job): the proxy injected nothing in \(injected.total) requests")
            }
        }

        /// At the end of a test: about a fifth of the requests were faulted, and pgbackd gave up on every stall (its stall timeout) before the
        /// proxy ended it. (Counted over the whole test: a watcher's stall can span two jobs.)
        static func expectStallsTimedOut(_ proxy: S3FaultProxy) async throws {
            var stats = try proxy.stats()
            for _ in 0..<(stallSeconds * 10 + 20) where stats.stallsAbandoned < (stats.faults["stall"] ?? 0) {
                try await Task.sleep(for: .milliseconds(100))
                stats = try proxy.stats()
            }
            #expect(stats.stallsAbandoned == (stats.faults["stall"] ?? 0),
                    "pgbackd waited out \((stats.faults["stall"] ?? 0) - stats.stallsAbandoned) of \(stats.faults["stall"] ?? 0) stall(s) instead of timing out after \(stallTimeout) s")
            // Binomial(n ≥ 150, 0.2): under 10 % is more than 3 standard deviations off.
            #expect(stats.faultCount * 10 >= stats.total, "only \(stats.faultCount) faults in \(stats.total) requests")
            printTotals(stats)
        }

        /// Logical backup, drill, restore and expire, through the proxy. `ci`: one round on a
        /// ~13 MiB dump (level 0: three parts); `long`: three rounds, a bigger database.
        @Test(.enabled(if: TestServices.s3Enabled))
        func logicalBackupDrillRestoreAndExpire() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireS3()
            let rounds = ReliabilityScale.pick(ci: 2, long: 5)
            let entries = ReliabilityScale.pick(ci: 6000, long: 20000)
            try await withCleanup(postgres) { cleanup in
                let directory = try temporaryDirectory("s3faults")
                cleanup.remove(directory)
                let proxy = try Self.proxy(s3, control: "\(directory)/proxy", seed: 16)
                defer { proxy.stop() }
                let prefix = "s3faults-\(UUID().uuidString.prefix(8))"
                let fixture = try await DaylogFixture.create(postgres, entries: entries)
                cleanup.dropDatabase(fixture.name)
                let source = try await fixture.tableFingerprints()
                let sourceRows = try await fixture.rowCounts().values.reduce(0, +)
                let config = "\(directory)/pgbackd.toml"
                try """
                    [repository]
                    type = "s3"
                    stanza = "faults"
                    \(Self.s3Table(s3, proxy: proxy, prefix: prefix))
                    [postgres]
                    conninfo = "\(postgres.conninfo())"
                    databases = ["\(fixture.name)"]
                    bin_dir = "\(postgres.binDirectory)"
                    [compression]
                    level = 0
                    [drill]
                    staging_dir = "\(directory)"
                    [retention]
                    keep_last = 1
                    keep_daily = 0
                    keep_weekly = 0
                    keep_monthly = 0
                    min_keep = 1
                    \(TestServices.encryptionTOML)
                    """.write(toFile: config, atomically: true, encoding: .utf8)
                let pgbackd = pgbackdExecutable

                var backups: [String] = []
                var figures: [String: ReliabilityFigures] = [:]
                func add(_ scenario: String, _ injected: S3FaultProxy.Stats, objects: Int = 0, rows: Int = 0, lost: Int? = nil, leftOver: Int? = nil) {
                    var entry = figures[scenario] ?? ReliabilityFigures(area: Self.area, scenario: scenario)
                    entry.faults.merge(injected.faults, uniquingKeysWith: +)
                    entry.runs += 1
                    entry.objectsVerified += objects
                    entry.rowsVerified += rows
                    if let lost { entry.lost = (entry.lost ?? 0) + lost }
                    if let leftOver { entry.leftOver = (entry.leftOver ?? 0) + leftOver }
                    figures[scenario] = entry
                }

                for round in 1...rounds {
                    // Backup: exit 0 at the first run, nothing left open.
                    let backup = try await Self.run(pgbackd, ["backup", "--json", "--config", config], proxy: proxy)
                    try #require(backup.status == 0, "round \(round): backup failed under faults (\(backup.status)): \(backup.stderr.suffix(3000))")
                    Self.expectFaulted(backup.injected, "backup")
                    let backupId = try #require(Self.json(backup.stdout)["backup_id"] as? String, "\(backup.stdout)")
                    backups.append(backupId)
                    let openAfterBackup = try await S3FaultBucket.openUploads(s3, prefix: prefix)
                    #expect(openAfterBackup.isEmpty, "multipart uploads left open by the backup: \(openAfterBackup)")

                    // The manifest, read back through the proxy too.
                    let show = try await Self.run(pgbackd, ["show", backupId, "--json", "--config", config], proxy: proxy)
                    try #require(show.status == 0, "show: \(show.stderr.suffix(2000))")
                    let artifacts = (Self.json(show.stdout)["artifacts"] as? [Any])?.count ?? 0
                    #expect(artifacts >= 2, "the manifest lists the globals and the dump: \(show.stdout.prefix(500))")
                    add("logical backup", backup.injected, leftOver: openAfterBackup.count)

                    // Drill: every artifact verified, restored and checked.
                    let drill = try await Self.run(pgbackd, ["drill", backupId, "--json", "--config", config], proxy: proxy)
                    #expect(drill.status == 0, "round \(round): drill failed under faults (\(drill.status)): \(drill.stdout.suffix(2000)) \(drill.stderr.suffix(2000))")
                    #expect(Self.json(drill.stdout)["passed"] as? Bool == true, "\(drill.stdout.suffix(2000))")
                    Self.expectFaulted(drill.injected, "drill")
                    let openAfterDrill = try await S3FaultBucket.openUploads(s3, prefix: prefix)
                    add("drill (logical)", drill.injected, objects: drill.status == 0 ? artifacts : 0, leftOver: openAfterDrill.count)

                    // Restore into a new database: identical to the source, table by table.
                    let target = "restored_\(UUID().uuidString.prefix(8).lowercased())"
                    cleanup.dropDatabase(target)
                    let restore = try await Self.run(pgbackd, ["restore", backupId, "--database", fixture.name, "--target-db", target, "--config", config], proxy: proxy)
                    try #require(restore.status == 0, "round \(round): restore failed under faults (\(restore.status)): \(restore.stderr.suffix(3000))")
                    Self.expectFaulted(restore.injected, "restore")
                    let restored = try await fixture.tableFingerprints(database: target)
                    #expect(restored == source, "the restored database differs from the source")
                    let restoredCounts = try await fixture.rowCounts(database: target)
                    var lost = 0
                    for (table, count) in try await fixture.rowCounts() {
                        let got = restoredCounts[table] ?? 0
                        // A table with the same count but other contents counts wholly.
                        lost += got != count ? abs(Int(count - got)) : (restored[table] == source[table] ? 0 : Int(count))
                    }
                    add("restore (logical)", restore.injected, objects: 1, rows: Int(sourceRows), lost: lost)
                    await DaylogFixture.dropDatabase(postgres, target)
                }

                // Expire: with keep_last = 1 every backup but the newest goes. One more backup
                // first, so even the ci round has one to expire.
                let last = try await Self.run(pgbackd, ["backup", "--json", "--config", config], proxy: proxy)
                try #require(last.status == 0, "backup before expire failed under faults: \(last.stderr.suffix(3000))")
                add("logical backup", last.injected, leftOver: try await S3FaultBucket.openUploads(s3, prefix: prefix).count)
                let newest = try #require(Self.json(last.stdout)["backup_id"] as? String)
                let expire = try await Self.run(pgbackd, ["expire", "--json", "--config", config], proxy: proxy)
                try #require(expire.status == 0, "expire failed under faults (\(expire.status)): \(expire.stderr.suffix(3000))")
                Self.expectFaulted(expire.injected, "expire")
                let expired = Set(Self.json(expire.stdout)["expired"] as? [String] ?? [])
                #expect(expired == Set(backups), "expire removed \(expired), expected \(backups)")
                let remaining = try await S3FaultBucket.keys(s3, prefix: "\(prefix)/faults/backups/")
                let leftOfExpired = remaining.filter { key in backups.contains { key.contains("/\($0)/") } }
                #expect(leftOfExpired.isEmpty, "objects of expired backups still stored: \(leftOfExpired)")
                #expect(remaining.contains { $0.contains("/\(newest)/manifest.json") }, "the kept backup's manifest is gone: \(remaining)")
                let openAtEnd = try await S3FaultBucket.openUploads(s3, prefix: prefix)
                #expect(openAtEnd.isEmpty, "multipart uploads left open: \(openAtEnd)")
                // The kept backup still drills after expire.
                let drill = try await Self.run(pgbackd, ["drill", newest, "--json", "--config", config], proxy: proxy)
                #expect(drill.status == 0, "drill after expire: \(drill.stdout.suffix(1500)) \(drill.stderr.suffix(1500))")
                add("drill (logical)", drill.injected, leftOver: openAtEnd.count)
                add("expire", expire.injected, leftOver: leftOfExpired.count + openAtEnd.count)

                for scenario in ["logical backup", "drill (logical)", "restore (logical)", "expire"] {
                    if let entry = figures[scenario] { ReliabilityLedger.record(entry) }
                }
                try await Self.expectStallsTimedOut(proxy)
                await S3FaultBucket.remove(s3, prefix: prefix)
            }
        }

        /// WAL shipping under pgbench (archive_command = `pgbackd wal-push` into the spool, the
        /// production mode, and `pgbackd wal-watch` shipping it), a base backup, a base drill and
        /// a point-in-time restore whose WAL comes through `wal-fetch`: all through the proxy.
        /// The restored cluster at T must hold exactly the rows the source held at T.
        @Test(.enabled(if: TestServices.s3Enabled))
        func baseBackupWALShippingDrillAndPointInTimeRestore() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireS3()
            let scale = ReliabilityScale.pick(ci: 2, long: 8)
            let transactions = ReliabilityScale.pick(ci: 100, long: 500)
            let segmentsBeforeT = ReliabilityScale.pick(ci: 12, long: 50)
            try await withCleanup { cleanup in
                let directory = try temporaryDirectory("s3faults-wal")
                cleanup.remove(directory)
                let proxy = try Self.proxy(s3, control: "\(directory)/proxy", seed: 1616)
                defer { proxy.stop() }
                let prefix = "s3faults-wal-\(UUID().uuidString.prefix(8))"
                try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                    type = "s3"
                    stanza = "pitr"
                    \(Self.s3Table(s3, proxy: proxy, prefix: prefix))
                    """, walSettings: "max_lag_seconds = 600\nrescan_seconds = 1") { cluster, pitr in
                    let walStart = try proxy.stats()
                    let watcherLog = "\(directory)/wal-watch.log"
                    _ = FileManager.default.createFile(atPath: watcherLog, contents: nil)
                    let watcher = Process()
                    watcher.executableURL = URL(fileURLWithPath: pgbackdExecutable)
                    watcher.arguments = ["wal-watch", "--config", pitr.config, "--log-level", "debug"]
                    watcher.standardOutput = FileHandle.nullDevice
                    watcher.standardError = FileHandle(forWritingAtPath: watcherLog)
                    try watcher.run()
                    defer { stopGracefully(watcher) }
                    try await offPool { try pitr.pgbench(["-i", "-s", "\(scale)", "--quiet", "--foreign-keys"]) }
                    // ~6 MiB that does not compress per insert: the base backup and each WAL
                    // segment below are multipart uploads of 5 MiB parts.
                    let noise = "insert into noise (b) select decode(string_agg(md5(random()::text), ''), 'hex') from generate_series(1, 400000) g group by g % 4"
                    try cluster.sql("create table noise (id serial primary key, b bytea)")
                    for _ in 0..<3 { try cluster.sql(noise) }

                    let backup = try await Self.run(pitr.pgbackd, ["backup", "--type", "base", "--json", "--config", pitr.config, "--log-level", "debug"], proxy: proxy)
                    let backupLog = "\(directory)/base-backup.log"
                    try backup.stderr.write(toFile: backupLog, atomically: true, encoding: .utf8)
                    try #require(backup.status == 0, "base backup failed under faults (\(backup.status)): \(backup.stderr.suffix(3000))")
                    Self.expectFaulted(backup.injected, "base backup")
                    let backupId = try #require(Self.json(backup.stdout)["backup_id"] as? String, "\(backup.stdout)")
                    let openAfterBackup = try await S3FaultBucket.openUploads(s3, prefix: prefix)
                    #expect(openAfterBackup.isEmpty, "multipart uploads left open by the base backup: \(openAfterBackup)\n\(Self.trace(openAfterBackup, proxy: proxy, logs: [watcherLog, backupLog]))")

                    // Many segments, each a WAL upload through the proxy: load, noise, a switch.
                    for _ in 0..<segmentsBeforeT {
                        try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "\(transactions)"]) }
                        try cluster.sql(noise)
                        _ = try cluster.sql("select pg_switch_wal()")
                    }
                    // T, and what every pgbench table holds at T: nothing commits in between.
                    let targetTime = try cluster.sql("select now()")
                    let atT = try Self.fingerprint(cluster.sql)
                    let rowsAtT = try Self.rows(cluster.sql)
                    try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "\(transactions)"]) }
                    #expect(try Self.fingerprint(cluster.sql) != atT, "the load after T changed nothing: the restore would prove nothing")
                    try await pitr.archiveEverything(cluster, shipWithWatcher: true)
                    stopGracefully(watcher)
                    let walShipped = try proxy.stats().since(walStart).since(backup.injected)
                    Self.expectFaulted(walShipped, "wal-watch")
                    #expect(try cluster.sql("select failed_count from pg_stat_archiver") == "0", "archive_command failed (spool mode never waits on S3)")
                    let openAfterWAL = try await S3FaultBucket.openUploads(s3, prefix: prefix)
                    #expect(openAfterWAL.isEmpty, "multipart uploads left open by WAL shipping: \(openAfterWAL)\n\(Self.trace(openAfterWAL, proxy: proxy, logs: [watcherLog, backupLog]))")

                    let check = try await Self.run(pitr.pgbackd, ["wal-check", "--json", "--config", pitr.config], proxy: proxy)
                    #expect(check.status == 0, "wal-check: \(check.stdout.suffix(1500)) \(check.stderr.suffix(1500))")
                    let report = Self.json(check.stdout)
                    let gaps = (report["gaps"] as? [Any])?.count
                    #expect(gaps == 0, "\(check.stdout.suffix(1500))")
                    let segments = (report["timelines"] as? [[String: Any]] ?? []).compactMap { $0["segments"] as? Int }.reduce(0, +)
                    #expect(segments > 0, "wal-check found no segments: \(check.stdout.suffix(1000))")

                    let drill = try await Self.run(pitr.pgbackd, ["drill", backupId, "--json", "--config", pitr.config], proxy: proxy)
                    #expect(drill.status == 0, "base drill failed under faults (\(drill.status)): \(drill.stdout.suffix(2000)) \(drill.stderr.suffix(2000))")
                    #expect(Self.json(drill.stdout)["passed"] as? Bool == true)
                    Self.expectFaulted(drill.injected, "base drill")
                    let openAfterDrill = try await S3FaultBucket.openUploads(s3, prefix: prefix)

                    let restoreStart = try proxy.stats()
                    let restored = try await pitr.restoreAndStart(["--time", targetTime])
                    defer { restored.stop() }
                    let restoreFaults = try proxy.stats().since(restoreStart)
                    Self.expectFaulted(restoreFaults, "PITR restore")
                    let restoredPrint = try Self.fingerprint(restored.sql)
                    let log = (try? String(contentsOfFile: "\(restored.base)/postgres.log", encoding: .utf8)) ?? ""
                    #expect(restoredPrint == atT, "PITR to \(targetTime) under faults did not give the rows at T: \(log.suffix(1500))")
                    let restoredRows = try Self.rows(restored.sql)
                    var lost = 0
                    for (table, count) in rowsAtT {
                        let got = restoredRows[table] ?? 0
                        lost += got != count ? abs(count - got) : (restoredPrint[table] == atT[table] ? 0 : count)
                    }
                    // Segments PostgreSQL replayed, each fetched through wal-fetch and checked by its CRCs.
                    let replayed = Set(log.split(separator: "\n").compactMap { line -> Substring? in
                        guard let range = line.range(of: "restored log file \"") else { return nil }
                        return line[range.upperBound...].prefix(24)
                    }).count
                    #expect(replayed > 0, "the restore replayed no archived segment: \(log.suffix(1000))")
                    let openAtEnd = try await S3FaultBucket.openUploads(s3, prefix: prefix)
                    #expect(openAtEnd.isEmpty, "multipart uploads left open: \(openAtEnd)")

                    var base = ReliabilityFigures(area: Self.area, scenario: "base backup", faults: backup.injected.faults, runs: 1)
                    base.leftOver = openAfterBackup.count
                    ReliabilityLedger.record(base)
                    var wal = ReliabilityFigures(area: Self.area, scenario: "WAL shipping under pgbench (spool + wal-watch)", faults: walShipped.faults, runs: 1)
                    wal.objectsVerified = segments
                    wal.lost = gaps
                    wal.leftOver = openAfterWAL.count
                    ReliabilityLedger.record(wal)
                    var baseDrill = ReliabilityFigures(area: Self.area, scenario: "drill (base)", faults: drill.injected.faults, runs: 1)
                    baseDrill.objectsVerified = drill.status == 0 ? 1 : 0
                    baseDrill.leftOver = openAfterDrill.count
                    ReliabilityLedger.record(baseDrill)
                    var pitrFigures = ReliabilityFigures(area: Self.area, scenario: "PITR restore (wal-fetch)", faults: restoreFaults.faults, runs: 1)
                    pitrFigures.objectsVerified = replayed + 1
                    pitrFigures.rowsVerified = rowsAtT.values.reduce(0, +)
                    pitrFigures.lost = lost
                    pitrFigures.leftOver = openAtEnd.count
                    ReliabilityLedger.record(pitrFigures)
                }
                try await Self.expectStallsTimedOut(proxy)
                await S3FaultBucket.remove(s3, prefix: prefix)
            }
        }

        /// What the proxy saw in the whole test, for the log.
        static func printTotals(_ stats: S3FaultProxy.Stats) {
            print("[s3-faults] \(stats.total) requests, \(stats.faultCount) faults; requests by kind: \(stats.requests.sorted { $0.key < $1.key }); faults by kind: \(stats.byKind.sorted { $0.key < $1.key })")
        }

        /// The proxy's and pgbackd's lines about the keys of `uploads` ("key uploadId"), for a failure message.
        static func trace(_ uploads: [String], proxy: S3FaultProxy, logs: [String]) -> String {
            let keys = uploads.compactMap { $0.split(separator: " ").first.map { String($0.split(separator: "/").last ?? "") } }
            var lines: [Substring] = []
            for file in ["\(proxy.control)/requests.log"] + logs {
                let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
                lines += text.split(separator: "\n").filter { line in keys.contains { !$0.isEmpty && line.contains($0) } }
            }
            return lines.suffix(60).joined(separator: "\n")
        }

        static let pgbenchTables = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history", "noise"]

        /// Per pgbench table (and the test's `noise`): its row count and an md5 over its sorted rows.
        static func fingerprint(_ sql: (String) throws -> String) throws -> [String: String] {
            var result: [String: String] = [:]
            for table in pgbenchTables {
                result[table] = try sql("select count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from \(table) t")
            }
            return result
        }

        static func rows(_ sql: (String) throws -> String) throws -> [String: Int] {
            try fingerprint(sql).mapValues { Int($0.split(separator: ":").first ?? "") ?? 0 }
        }
    }
}
