import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Reliability {
    /// Full disks (issue #16): size-limited tmpfs mounts under the WAL spool, a file repository and
    /// the drill's staging directory (`drill.staging_dir`). Each must give a clear error naming
    /// the full file system and the fix, the right alert and exit code (docs/operations.md), never
    /// tell PostgreSQL "archived" for a segment not durably stored, never leave a half-committed
    /// backup, and everything must resume once there is space again.
    @Suite(.serialized) struct FullDisk {
        /// Exit 74: "storage unreachable or failing, or the staging directory is unusable or too small".
        static let storageExit: Int32 = 74
        /// The watcher's `wal.lag` is the alert of a repository it cannot ship to for want of space.
        static let maxLagSeconds = 10

        // MARK: logical backups: file repository, drill and restore staging

        /// A file repository on a 48 MiB tmpfs, filled by a filler file to several levels, from
        /// nothing free to all but the manifest: each backup fails with exit 74 naming the full
        /// file system, `backup.failed` (outcome failed), and leaves no manifest, no artifact,
        /// no temp file and no job record; without the filler the next backup commits and
        /// restores equal to the source. Then drills and restores with `drill.staging_dir` on a
        /// tmpfs too small for the dump: exit 74 naming it, no scratch database or staging
        /// directory left; grown, both succeed.
        @Test(.enabled(if: TestServices.postgresEnabled), .timeLimit(.minutes(5)))
        func logicalRepositoryAndStaging() async throws {
            let postgres = try TestServices.requirePostgres()
            let alerts = try AlertLog.make()
            defer { try? FileManager.default.removeItem(atPath: alerts.directory) }
            var figures = ReliabilityFigures(area: "full disk", scenario: "logical backup, drill, restore (tmpfs)")
            var faults = 0, named = 0, leftOver = 0
            try await withCleanup(postgres) { cleanup in
                let fixture = try await DaylogFixture.create(postgres, entries: ReliabilityScale.pick(ci: 3000, long: 20_000))
                cleanup.dropDatabase(fixture.name)
                try await withTmpfs(sizeMiB: ReliabilityScale.pick(ci: 48, long: 256), mode: "0755") { repository in
                    try await withTmpfs(sizeMiB: 8, mode: "1777") { staging in
                        let directory = try temporaryDirectory("fulldisk-logical")
                        cleanup.remove(directory)
                        let config = "\(directory)/pgbackd.toml"
                        try BackupHarness.fileTOML(postgres, repository: repository.path, databases: [fixture.name], extra: """
                            \(alerts.toml(events: ["backup.failed", "backup.succeeded", "drill.failed", "drill.succeeded"]))
                            """).replacingOccurrences(of: "staging_dir = \"\(FileManager.default.temporaryDirectory.path)\"", with: "staging_dir = \"\(staging.path)\"")
                            .write(toFile: config, atomically: true, encoding: .utf8)
                        try #require(try String(contentsOfFile: config, encoding: .utf8).contains("staging_dir = \"\(staging.path)\""))
                        let pgbackd = pgbackdExecutable

                        // A first backup with room, to size the others by.
                        let first = try await shell(pgbackd, ["backup", "--json", "--config", config])
                        try #require(first.status == 0, "backup: \(first.stderr)")
                        figures.runs += 1
                        let firstId = try #require((try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])?["backup_id"] as? String)
                        let committed = repository.files()
                        let stored = committed.filter { $0.contains("/backups/\(firstId)/") }
                            .reduce(Int64(0)) { $0 + ((try? FileManager.default.attributesOfItem(atPath: "\(repository.path)/\($1)")[.size] as? Int64) ?? 0) }
                        let artifacts = committed.filter { $0.contains("/backups/\(firstId)/") && !$0.hasSuffix("manifest.json") }
                            .reduce(Int64(0)) { $0 + ((try? FileManager.default.attributesOfItem(atPath: "\(repository.path)/\($1)")[.size] as? Int64) ?? 0) }
                        #expect(stored > 64 << 10, "the dump is big enough to fail part-way: \(stored) bytes")

                        // Free space from none to "every artifact but not the manifest" (4 KiB
                        // pages: each artifact and the job record take whole ones).
                        let steps = Int64(ReliabilityScale.pick(ci: 3, long: 20))
                        let levels: [Int64] = [0, 16 << 10] + (1..<steps).map { stored * $0 / steps } + [((artifacts + 4095) / 4096 + 3) * 4096]
                        for free in levels {
                            repository.removeFiller()
                            try repository.fill(leaving: free)
                            let mark = alerts.events.count
                            let before = repository.files()
                            let run = try await shell(pgbackd, ["backup", "--config", config])
                            faults += 1
                            #expect(run.status == Self.storageExit, "backup with \(free) bytes free: \(run.status) \(run.stderr)")
                            let message = run.stderr.contains(repository.path) && run.stderr.contains("file system is full")
                            #expect(message, "backup with \(free) bytes free: \(run.stderr)")
                            let event = alerts.events("backup.failed", since: mark).first
                            let eventError = (event?["error"] as? String) ?? ""
                            #expect(event?["outcome"] as? String == "failed" && eventError.contains("file system is full"), "\(String(describing: event))")
                            if run.status == Self.storageExit, message, event?["outcome"] as? String == "failed" { named += 1 }
                            // Nothing new: no manifest, no artifact, no temp file, no job record.
                            let added = Set(repository.files()).subtracting(before)
                            #expect(added.isEmpty, "a failed backup left \(added)")
                            leftOver += added.count
                            let list = try await shell(pgbackd, ["list", "--json", "--config", config])
                            #expect(list.status == 0 && list.stdout.components(separatedBy: "\"backup_id\"").count - 1 == 1, "only the first backup is listed: \(list.stdout) \(list.stderr)")
                        }

                        // Space returns: the next backup commits and restores equal to the source.
                        repository.removeFiller()
                        let mark = alerts.events.count
                        let second = try await shell(pgbackd, ["backup", "--config", config])
                        #expect(second.status == 0, "backup once there is space: \(second.stderr)")
                        figures.runs += 1
                        #expect(!alerts.events("backup.succeeded", since: mark).isEmpty)

                        // The drill's staging directory cannot take the dump.
                        let drillMark = alerts.events.count
                        let drill = try await shell(pgbackd, ["drill", "--log-level", "info", "--config", config])
                        faults += 1
                        #expect(drill.status == Self.storageExit, "drill on an 8 MiB staging directory: \(drill.status) \(drill.stderr)")
                        let drillNamed = drill.stderr.contains(staging.path) && drill.stderr.contains("drill.staging_dir")
                        #expect(drillNamed, "\(drill.stderr)")
                        let drillEvent = alerts.events("drill.failed", since: drillMark).first
                        let drillError = (drillEvent?["error"] as? String) ?? ""
                        #expect(drillEvent?["outcome"] as? String == "failed" && drillError.contains(staging.path), "\(String(describing: drillEvent))")
                        #expect(drillEvent?["verdict"] is NSNull, "a drill that could not run has no verdict: it says nothing about the backup")
                        if drill.status == Self.storageExit, drillNamed, drillEvent?["outcome"] as? String == "failed" { named += 1 }
                        #expect(!DrillScratch.created(inLog: drill.stderr).isEmpty, "the drill made its scratch database before staging: \(drill.stderr)")
                        let scratchLeft = try await DrillScratch.leftOver(postgres, log: drill.stderr)
                        #expect(scratchLeft.isEmpty, "the failed drill left \(scratchLeft)")
                        leftOver += scratchLeft.count + staging.files().count

                        // The same for a restore: refused before a database is created.
                        let target = "restore_\(UUID().uuidString.prefix(8).lowercased())"
                        cleanup.dropDatabase(target)
                        let restore = try await shell(pgbackd, ["restore", "latest", "--database", fixture.name, "--target-db", target, "--config", config])
                        faults += 1
                        #expect(restore.status == Self.storageExit, "restore on an 8 MiB staging directory: \(restore.status) \(restore.stderr)")
                        let restoreNamed = restore.stderr.contains(staging.path) && restore.stderr.contains("drill.staging_dir")
                        #expect(restoreNamed, "\(restore.stderr)")
                        if restore.status == Self.storageExit, restoreNamed { named += 1 }
                        let exists = try await shell("\(postgres.binDirectory)/psql", ["-XAt", "-h", postgres.host, "-p", postgres.port, "-U", postgres.user, "-d", "postgres",
                                                                                     "-c", "select count(*) from pg_database where datname = '\(target)'"])
                        #expect(exists.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "the failed restore created \(target)")
                        leftOver += Int(exists.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 1
                        leftOver += staging.files().count

                        // A staging file system that fills while the dump is written (after the
                        // free-space check): a storage failure naming the path (exit 74), never a
                        // corrupt backup (65) or a failed check.
                        let repositoryHandle = try await RepositoryFactory.open(try Configuration.load(path: config), logger: BackupHarness.logger)
                        let manifest = try await repositoryHandle.manifest("latest")
                        let dump = try #require(manifest.artifacts.first { $0.content == .databaseDump })
                        try staging.fill(leaving: 64 << 10)
                        do {
                            _ = try await ArtifactVerifier(repository: repositoryHandle).verify(dump, stagingPath: "\(staging.path)/staged.dump")
                            Issue.record("staging \(dump.rawSize) bytes into 64 KiB succeeded")
                        } catch {
                            faults += 1
                            let status = ExitStatus(error)
                            #expect(status == .storageIO, "a full staging file system is exit 74, not \(status): \(error)")
                            #expect(!(error is IntegrityError), "a full disk is not a corrupt backup: \(error)")
                            let text = "\(error)"
                            #expect(text.contains("\(staging.path)/staged.dump") && text.contains("No space left on device"), "\(text)")
                            if status == .storageIO, text.contains(staging.path), !(error is IntegrityError) { named += 1 }
                        }
                        try? FileManager.default.removeItem(atPath: "\(staging.path)/staged.dump")
                        staging.removeFiller()

                        // Grown: the drill passes and the restore equals the source.
                        try staging.resize(sizeMiB: 512)
                        let passed = try await shell(pgbackd, ["drill", "--config", config])
                        #expect(passed.status == 0, "drill with space: \(passed.stdout.suffix(2000)) \(passed.stderr)")
                        figures.runs += 1
                        #expect(!alerts.events("drill.succeeded", since: drillMark).isEmpty)
                        let restored = try await shell(pgbackd, ["restore", "latest", "--database", fixture.name, "--target-db", target, "--config", config])
                        #expect(restored.status == 0, "restore with space: \(restored.stderr)")
                        figures.runs += 1
                        let source = try await fixture.tableFingerprints()
                        let copy = try await fixture.tableFingerprints(database: target)
                        #expect(copy == source)
                        figures.lost = copy == source ? 0 : 1
                        figures.rowsVerified = Int(try await fixture.rowCounts().values.reduce(0, +))
                        figures.objectsVerified = manifest.artifacts.count
                        #expect(staging.files().isEmpty)
                    }
                }
            }
            figures.faults = ["ENOSPC": faults]
            figures.leftOver = leftOver
            figures.missed = faults - named
            ReliabilityLedger.record(figures)
        }

        // MARK: WAL: spool, file repository, base drill staging

        /// A real cluster archiving through `pgbackd wal-push` into a spool on a 40 MiB tmpfs
        /// (two 16 MiB segments), shipping into a file repository on another tmpfs, then a base
        /// backup drilled with its staging directory on a third.
        @Test(.enabled(if: TestServices.postgresEnabled), .timeLimit(.minutes(5)))
        func walSpoolRepositoryAndBaseDrillStaging() async throws {
            let postgres = try TestServices.requirePostgres()
            let alerts = try AlertLog.make()
            defer { try? FileManager.default.removeItem(atPath: alerts.directory) }
            var figures = ReliabilityFigures(area: "full disk", scenario: "WAL spool, file repository, base backup, base drill, PITR restore (tmpfs)")
            var faults = 0, named = 0, leftOver = 0, lost = 0
            try await withTmpfs(sizeMiB: 96, mode: "0777") { repository in
                try await withTmpfs(sizeMiB: 16, mode: "1777") { staging in
                    try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                        type = "file"
                        path = "\(repository.path)"
                        stanza = "disk"
                        """, walSettings: """
                        max_lag_seconds = \(Self.maxLagSeconds)
                        max_spool_mib = 4096
                        """, extraConfiguration: """
                        [drill]
                        staging_dir = "\(staging.path)"
                        \(alerts.toml(events: ["spool.full", "wal.lag", "wal.conflict", "backup.failed", "backup.succeeded", "drill.failed", "drill.succeeded"]))
                        """) { cluster, pitr in
                        let spoolPath = "\(cluster.base)/spool"
                        #expect(try FileManager.default.contentsOfDirectory(atPath: spoolPath).isEmpty, "nothing spooled before the tmpfs goes on")
                        try await withTmpfs(sizeMiB: 40, mode: "0700", at: spoolPath) { spool in
                            try cluster.giveToOwner(spool.path)
                            let counts = try await spoolFills(cluster: cluster, pitr: pitr, spool: spool, repository: repository, alerts: alerts)
                            faults += counts.faults
                            named += counts.named
                            leftOver += counts.leftOver
                            lost += counts.lost
                            figures.objectsVerified += counts.verified
                            figures.runs += counts.runs
                        }
                        let drill = try await baseDrillStaging(cluster: cluster, pitr: pitr, repository: repository, staging: staging, alerts: alerts)
                        faults += drill.faults
                        named += drill.named
                        leftOver += drill.leftOver
                        figures.runs += drill.runs
                        figures.objectsVerified += drill.verified
                    }
                }
            }
            figures.faults = ["ENOSPC": faults]
            figures.lost = lost
            figures.leftOver = leftOver
            figures.missed = faults - named
            ReliabilityLedger.record(figures)
        }

        struct Counts {
            var faults = 0, named = 0, leftOver = 0, lost = 0, verified = 0, runs = 0
        }

        /// The spool's file system fills: PostgreSQL is told "failed" (it keeps the segment and
        /// retries), `spool.full` is raised, nothing half-written stays; then the repository's
        /// file system fills under the watcher; then both get space and every segment arrives.
        func spoolFills(cluster: ThrowawayCluster, pitr: PITRHarness, spool: Tmpfs, repository: Tmpfs, alerts: AlertLog) async throws -> Counts {
            var counts = Counts()
            let archiveStatus = "\(cluster.data)/pg_wal/archive_status"
            try cluster.sql("create table t (i int, pad text)")
            // md5 text: a segment compresses to about half, so a filled repository cannot take it.
            for round in 0..<4 {
                try cluster.sql("insert into t select g, md5(g::text || random()::text) || md5(random()::text) from generate_series(\(round * 60_000), \(round * 60_000 + 59_999)) g")
                try cluster.sql("select pg_switch_wal()")
            }
            let failing = try await eventually(attempts: 600) {
                (Int(try cluster.sql("select failed_count from pg_stat_archiver")) ?? 0) > 0
            }
            try #require(failing, "archiving never failed with the spool on a full 40 MiB file system")
            counts.faults += 1
            let failedWAL = try cluster.sql("select last_failed_wal from pg_stat_archiver")

            // What PostgreSQL was told is archived ("done") is in the spool, whole: never a
            // segment that is not durably stored.
            let done = try FileManager.default.contentsOfDirectory(atPath: archiveStatus).filter { $0.hasSuffix(".done") }.map { String($0.dropLast(5)) }
            let spooled = try FileManager.default.contentsOfDirectory(atPath: spool.path)
            #expect(!done.isEmpty, "two segments fit into the spool")
            for name in done where !spooled.contains(name) {
                Issue.record("PostgreSQL was told \(name) is archived, but it is not in the spool \(spooled)")
                counts.lost += 1
            }
            let partial = spooled.filter { $0.hasPrefix(".") }
            #expect(partial.isEmpty, "a failed wal-push leaves no temp file: \(partial)")
            counts.leftOver += partial.count
            for name in spooled where !name.hasPrefix(".") {
                let size = (try FileManager.default.attributesOfItem(atPath: "\(spool.path)/\(name)")[.size] as? Int) ?? 0
                #expect(size == 16 << 20, "\(name) is spooled whole: \(size) bytes")
            }
            #expect(!done.contains(failedWAL), "\(failedWAL) failed and must not be marked done")

            // The alert wal-push raised as postgres (archive_command): spool.full, naming the
            // spool and the full file system, outcome failed.
            let raised = try await eventually(attempts: 100) { !alerts.events("spool.full").isEmpty }
            #expect(raised, "no spool.full alert: \(alerts.events)")
            if let event = alerts.events("spool.full").first {
                let error = event["error"] as? String ?? ""
                #expect(event["outcome"] as? String == "failed")
                #expect(event["severity"] as? String == "critical")
                let alertNamed = error.contains(spool.path) && error.contains("No space left on device") && error.contains("file system")
                #expect(alertNamed, "\(error)")
                if alertNamed && event["outcome"] as? String == "failed" { counts.named += 1 }
            }

            // The same wal-push by hand: exit 74, and the message says what is full and what to do.
            let copy = try temporaryDirectory("fulldisk-wal")
            defer { try? FileManager.default.removeItem(atPath: copy) }
            try FileManager.default.copyItem(atPath: "\(cluster.data)/pg_wal/\(failedWAL)", toPath: "\(copy)/\(failedWAL)")
            let push = try await shell(pitr.pgbackd, ["wal-push", "\(copy)/\(failedWAL)", "--config", pitr.config])
            counts.faults += 1
            #expect(push.status == Self.storageExit, "wal-push on a full spool: \(push.status) \(push.stderr)")
            let pushNamed = push.status == Self.storageExit && push.stderr.contains(spool.path) && push.stderr.contains("is full") && push.stderr.contains("wal-watch")
            #expect(pushNamed, "\(push.stderr)")
            if pushNamed { counts.named += 1 }
            #expect(try FileManager.default.contentsOfDirectory(atPath: spool.path).filter { $0.hasPrefix(".") }.isEmpty)

            // The bytes of every segment PostgreSQL has written so far, to compare with what
            // wal-fetch gives back: spooled ones from the spool, the others from pg_wal, which
            // keeps a segment until it is archived.
            var originals: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: spool.path) where WALFileName(name) != nil {
                originals[name] = try Data(contentsOf: URL(fileURLWithPath: "\(spool.path)/\(name)"))
            }
            for ready in try FileManager.default.contentsOfDirectory(atPath: archiveStatus) where ready.hasSuffix(".ready") {
                let name = String(ready.dropLast(6))
                if WALFileName(name)?.kind == .segment { originals[name] = try Data(contentsOf: URL(fileURLWithPath: "\(cluster.data)/pg_wal/\(name)")) }
            }

            // The repository's file system fills too: the watcher ships nothing, deletes nothing
            // from the spool, leaves no temp file in the repository, and says why (exit 74).
            let spooledBefore = Set(try FileManager.default.contentsOfDirectory(atPath: spool.path))
            try repository.fill(leaving: 256 << 10)
            // Old enough for wal.lag: the alert of WAL that does not leave the spool.
            let oldest = try spooledBefore.filter { !$0.hasPrefix(".") }.map { try FileManager.default.attributesOfItem(atPath: "\(spool.path)/\($0)")[.modificationDate] as? Date ?? Date() }.min() ?? Date()
            let wait = oldest.addingTimeInterval(Double(Self.maxLagSeconds) + 1).timeIntervalSinceNow
            if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
            let lagMark = alerts.events.count
            let blocked = try await shell(pitr.pgbackd, ["wal-watch", "--once", "--config", pitr.config])
            counts.faults += 1
            #expect(blocked.status == Self.storageExit, "wal-watch into a full repository: \(blocked.status) \(blocked.stderr)")
            let watchNamed = blocked.status == Self.storageExit && blocked.stderr.contains(repository.path) && blocked.stderr.contains("file system is full")
            #expect(watchNamed, "\(blocked.stderr)")
            let lag = alerts.events("wal.lag", since: lagMark).first
            let lagSummary = (lag?["summary"] as? String) ?? ""
            let lagNamed = spooledBefore.contains { lagSummary.contains($0) }
            #expect(lagNamed, "wal.lag naming the oldest spooled file: \(alerts.events)")
            if watchNamed && lagNamed { counts.named += 1 }
            #expect(Set(try FileManager.default.contentsOfDirectory(atPath: spool.path)) == spooledBefore, "nothing leaves the spool unshipped")
            let temps = repository.files().filter { ($0 as NSString).lastPathComponent.hasPrefix(".pgbackd-tmp-") }
            #expect(temps.isEmpty, "a failed upload leaves no temp file: \(temps)")
            counts.leftOver += temps.count

            // Space returns: the watcher ships the spool, the archiver (woken by a new segment)
            // archives the rest, and the watcher ships those too.
            repository.removeFiller()
            var drained = false
            for _ in 0..<60 {
                let watch = try await shell(pitr.pgbackd, ["wal-watch", "--once", "--config", pitr.config])
                #expect(watch.status == 0, "wal-watch once there is space: \(watch.stderr)")
                counts.runs += 1
                let ready = try FileManager.default.contentsOfDirectory(atPath: archiveStatus).filter { $0.hasSuffix(".ready") }
                let spooledNow = try FileManager.default.contentsOfDirectory(atPath: spool.path)
                if ready.isEmpty && spooledNow.isEmpty && originals.keys.allSatisfy({ FileManager.default.fileExists(atPath: "\(archiveStatus)/\($0).done") || !FileManager.default.fileExists(atPath: "\(cluster.data)/pg_wal/\($0)") }) {
                    drained = true
                    break
                }
                try cluster.sql("select pg_logical_emit_message(false, 'pgbackd-test', 'wake')")
                try cluster.sql("select pg_switch_wal()")
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(drained, "archiving did not resume once the spool had space")

            // Every segment comes back from the archive with the bytes PostgreSQL wrote.
            let target = "\(copy)/RECOVERYXLOG"
            for (name, bytes) in originals.sorted(by: { $0.key < $1.key }) {
                let fetch = try await shell(pitr.pgbackd, ["wal-fetch", name, target, "--config", pitr.config])
                #expect(fetch.status == 0, "wal-fetch \(name): \(fetch.stderr)")
                let fetched = try? Data(contentsOf: URL(fileURLWithPath: target))
                if fetched != bytes {
                    Issue.record("wal-fetch \(name) did not return the bytes PostgreSQL wrote")
                    counts.lost += 1
                }
                counts.verified += 1
                try? FileManager.default.removeItem(atPath: target)
            }
            #expect(originals.count >= 4, "\(originals.keys.sorted())")
            return counts
        }

        /// A base backup into a full repository (exit 74, `backup.failed`, nothing left), then
        /// one with space; its drill with the staging directory on a 16 MiB tmpfs: exit 74
        /// naming `drill.staging_dir` and its free space, `drill.failed` with outcome failed, no
        /// staging directory left; grown to 2 GiB, the same drill passes. The same for a
        /// point-in-time restore into a small `--pgdata`.
        func baseDrillStaging(cluster: ThrowawayCluster, pitr: PITRHarness, repository: Tmpfs, staging: Tmpfs, alerts: AlertLog) async throws -> Counts {
            var counts = Counts()
            // First into a full repository: exit 74 naming it, backup.failed, nothing left behind.
            try repository.fill(leaving: 1 << 20)
            let before = repository.files()
            let mark = alerts.events.count
            let full = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--type", "base", "--config", pitr.config]) }
            counts.faults += 1
            #expect(full.status == Self.storageExit, "base backup into a full repository: \(full.status) \(full.stderr)")
            let fullNamed = full.status == Self.storageExit && full.stderr.contains(repository.path) && full.stderr.contains("file system is full")
            #expect(fullNamed, "\(full.stderr)")
            let failedEvent = alerts.events("backup.failed", since: mark).first
            let failedError = (failedEvent?["error"] as? String) ?? ""
            #expect(failedEvent?["outcome"] as? String == "failed" && failedError.contains("file system is full"), "\(alerts.events)")
            if fullNamed, failedEvent?["outcome"] as? String == "failed" { counts.named += 1 }
            // The stanza's marker (repository.json) is written before the backup starts: the
            // stanza exists from then on; nothing of the backup may be left.
            let added = Set(repository.files()).subtracting(before).filter { $0 != "disk/repository.json" }
            #expect(added.isEmpty, "the failed base backup left \(added)")
            counts.leftOver += added.count
            repository.removeFiller()

            let backup = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--type", "base", "--json", "--config", pitr.config]) }
            try #require(backup.status == 0, "base backup: \(backup.stderr)")
            counts.runs += 1
            let summary = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
            let backupId = try #require(summary?["backup_id"] as? String)
            // restore_command (wal-fetch) runs as the server's user and reads the repository.
            try cluster.giveToOwner(repository.path)

            let drillMark = alerts.events.count
            let failed = try await offPool { try blockingShell(pitr.pgbackd, ["drill", backupId, "--config", pitr.config]) }
            counts.faults += 1
            #expect(failed.status == Self.storageExit, "base drill on a 16 MiB staging directory: \(failed.status) \(failed.stderr.suffix(2000))")
            let message = failed.stderr
            let drillNamed = failed.status == Self.storageExit && message.contains(staging.path) && message.contains("free")
            #expect(drillNamed, "\(message.suffix(2000))")
            let event = alerts.events("drill.failed", since: drillMark).first
            #expect(event?["outcome"] as? String == "failed", "\(alerts.events)")
            let eventError = (event?["error"] as? String) ?? ""
            #expect(eventError.contains(staging.path), "\(String(describing: event))")
            if drillNamed, event?["outcome"] as? String == "failed" { counts.named += 1 }
            let left = staging.files()
            #expect(left.isEmpty, "the failed drill left \(left) in the staging directory")
            counts.leftOver += left.count

            try staging.resize(sizeMiB: 2048)
            let passed = try await offPool { try blockingShell(pitr.pgbackd, ["drill", backupId, "--config", pitr.config]) }
            #expect(passed.status == 0, "base drill with space: \(passed.stdout.suffix(2000)) \(passed.stderr.suffix(2000))")
            counts.runs += 1
            #expect(!alerts.events("drill.succeeded", since: drillMark).isEmpty)
            #expect(staging.files().isEmpty, "the drill removed its cluster")
            counts.verified += 1

            // A point-in-time restore into a data directory on a file system too small for it:
            // exit 74 naming the directory and what it needs; the directory is left as it was
            // found (empty), and grown, the same restore succeeds.
            try await withTmpfs(sizeMiB: 16, mode: "0755") { target in
                let data = "\(target.path)/data"
                let small = try await offPool { try blockingShell(pitr.pgbackd, ["restore", backupId, "--pgdata", data, "--immediate", "--config", pitr.config]) }
                counts.faults += 1
                #expect(small.status == Self.storageExit, "restore --pgdata on 16 MiB: \(small.status) \(small.stderr)")
                let restoreNamed = small.status == Self.storageExit && small.stderr.contains(data) && small.stderr.contains("MiB free")
                #expect(restoreNamed, "\(small.stderr)")
                if restoreNamed { counts.named += 1 }
                let left = target.files()
                #expect(left.isEmpty, "the failed restore left \(left)")
                counts.leftOver += left.count
                try target.resize(sizeMiB: 2048)
                let restored = try await offPool { try blockingShell(pitr.pgbackd, ["restore", backupId, "--pgdata", data, "--immediate", "--config", pitr.config]) }
                #expect(restored.status == 0, "restore --pgdata with space: \(restored.stderr)")
                counts.runs += 1
                #expect(FileManager.default.fileExists(atPath: "\(data)/PG_VERSION") && FileManager.default.fileExists(atPath: "\(data)/recovery.signal"))
            }
            return counts
        }
    }
}
