import Foundation
import ObjectStorage
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Reliability {
    /// Coverage of what users run (issue #16): every `pgbackd restore` flag through the real binary,
    /// with its effect checked; PITR to a time, an LSN, a transaction id, `--immediate` and
    /// `--latest`, each compared row by row with the data at its target; expire through the CLI
    /// against S3 (moto here; SeaweedFSTests does it against SeaweedFS).
    @Suite(.serialized)
    struct Coverage {
        static let area = "coverage"

        static func psql(_ postgres: TestServices.Postgres, database: String = "postgres", _ statement: String) async throws -> String {
            let result = try await shell("\(postgres.binDirectory)/psql", ["-h", postgres.host, "-p", postgres.port, "-U", postgres.user,
                                                                           "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement])
            guard result.status == 0 else { throw ThrowawayCluster.ClusterError(message: "psql \(statement): \(result.stderr)") }
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        static func json(_ text: String) -> [String: Any]? {
            try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        }

        /// The logical restore flags, against an S3 (moto) repository: `[ID]` vs `latest`,
        /// `--database`, `--target-db`, `--jobs`, `--force`, `--globals`, `--no-owner`, `--json`,
        /// `--log-level`; then `expire` and `expire --dry-run` through the CLI on the same S3 stanza.
        @Test(.enabled(if: TestServices.s3Enabled))
        func logicalRestoreFlagsAndExpireOnS3() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireS3()
            let tag = UUID().uuidString.prefix(8).lowercased()
            // A role that owns a table (for --no-owner) and one only globals.sql knows (for --globals);
            // dropped after the databases that use them.
            let owner = "cov_owner_\(tag)", global = "cov_global_\(tag)"
            _ = try await Self.psql(postgres, "create role \(owner) nologin")
            _ = try await Self.psql(postgres, "create role \(global) nologin")
            do {
                try await logicalRestoreFlags(postgres, s3, tag: tag, owner: owner, global: global)
            } catch {
                _ = try? await Self.psql(postgres, "drop role if exists \(owner)")
                _ = try? await Self.psql(postgres, "drop role if exists \(global)")
                throw error
            }
            _ = try await Self.psql(postgres, "drop role if exists \(owner)")
            _ = try await Self.psql(postgres, "drop role if exists \(global)")
        }

        func logicalRestoreFlags(_ postgres: TestServices.Postgres, _ s3: TestServices.S3, tag: String, owner: String, global: String) async throws {
            try await withCleanup(postgres) { cleanup in
                let fixture = try await DaylogFixture.create(postgres, entries: 300)
                cleanup.dropDatabase(fixture.name)
                _ = try await Self.psql(postgres, database: fixture.name, "alter table journal_tag owner to \(owner)")

                let directory = try temporaryDirectory("coverage")
                cleanup.remove(directory)
                let prefix = "coverage-\(tag)"
                // restore runs pg_restore through a wrapper that logs its arguments (for --jobs).
                let argumentsLog = "\(directory)/pg_restore.args"
                let wrapped = try BackupHarness.wrappedTool(postgres, "pg_restore", script: "echo \"$*\" >> \(argumentsLog)\nexec \"$REAL\" \"$@\"")
                cleanup.remove(wrapped)
                let retention = """

                    [drill]
                    staging_dir = "\(directory)"
                    [retention]
                    keep_last = 1
                    keep_daily = 0
                    keep_weekly = 0
                    keep_monthly = 0
                    min_keep = 1
                    """
                let config = "\(directory)/pgbackd.toml"
                try (BackupHarness.s3TOML(postgres, s3, prefix: prefix, databases: [fixture.name], binDirectory: wrapped) + retention)
                    .write(toFile: config, atomically: true, encoding: .utf8)

                let first = try await Reliability.SeaweedFS.backup(config)
                let atFirst = try await RowDigests.of(postgres, database: fixture.name, tables: RowDigests.daylogTables)
                try await fixture.execute("delete from journal_journalentry_tags; delete from journal_journalentry where created_at > '2026-01-01 02:00'")
                let second = try await Reliability.SeaweedFS.backup(config)
                let atSecond = try await RowDigests.of(postgres, database: fixture.name, tables: RowDigests.daylogTables)
                #expect(RowDigests.differing(atFirst, atSecond) > 0)
                var rowsVerified = 0, lost = 0

                // [ID] (the older backup), --jobs 3, --json, --log-level: owners kept without --no-owner.
                let a = "cov_a_\(tag)"
                cleanup.dropDatabase(a)
                let restoreFirst = try await shell(pgbackdExecutable, ["restore", first, "--database", fixture.name, "--target-db", a, "--jobs", "3",
                                                                      "--json", "--log-level", "debug", "--config", config])
                #expect(restoreFirst.status == 0, "restore \(first): \(restoreFirst.stderr.suffix(2000))")
                let summary = Self.json(restoreFirst.stdout)
                #expect(summary?["backup_id"] as? String == first, "\(restoreFirst.stdout)")
                #expect(summary?["database"] as? String == fixture.name)
                #expect(summary?["target"] as? String == a)
                #expect((summary?["raw_bytes"] as? Int ?? 0) > 0)
                #expect(restoreFirst.stderr.contains(" debug "), "--log-level debug logs debug lines: \(restoreFirst.stderr.suffix(500))")
                let gotFirst = try await RowDigests.of(postgres, database: a, tables: RowDigests.daylogTables)
                #expect(RowDigests.differing(gotFirst, atFirst) == 0, "restore of \(first) is not the data of that backup")
                rowsVerified += RowDigests.rows(atFirst)
                lost += RowDigests.differing(gotFirst, atFirst)
                let logged = (try? String(contentsOfFile: argumentsLog, encoding: .utf8)) ?? ""
                #expect(logged.contains("--jobs=3"), "pg_restore did not get --jobs=3: \(logged)")
                #expect(try await Self.psql(postgres, database: a, "select tableowner from pg_tables where tablename = 'journal_tag'") == owner)

                // --force over the non-empty target: replaced by `latest` (the second backup), the
                // extra table gone.
                _ = try await Self.psql(postgres, database: a, "create table extra_table (x int)")
                let forced = try await shell(pgbackdExecutable, ["restore", "--database", fixture.name, "--target-db", a, "--force", "--config", config])
                #expect(forced.status == 0, "restore --force: \(forced.stderr.suffix(2000))")
                #expect(forced.stdout.contains(second), "latest is \(second): \(forced.stdout)")
                let gotForced = try await RowDigests.of(postgres, database: a, tables: RowDigests.daylogTables)
                #expect(RowDigests.differing(gotForced, atSecond) == 0)
                rowsVerified += RowDigests.rows(atSecond)
                lost += RowDigests.differing(gotForced, atSecond)
                #expect(try await Self.psql(postgres, database: a, "select count(*) from pg_tables where tablename = 'extra_table'") == "0")

                // --no-owner: the connecting role owns what is restored.
                let b = "cov_b_\(tag)"
                cleanup.dropDatabase(b)
                let noOwner = try await shell(pgbackdExecutable, ["restore", "latest", "--database", fixture.name, "--target-db", b, "--no-owner", "--config", config])
                #expect(noOwner.status == 0, "restore --no-owner: \(noOwner.stderr.suffix(2000))")
                #expect(try await Self.psql(postgres, database: b, "select tableowner from pg_tables where tablename = 'journal_tag'") == postgres.user)

                // --globals: a role dropped after the backup comes back from globals.sql.
                _ = try await Self.psql(postgres, "drop role \(global)")
                let c = "cov_c_\(tag)"
                cleanup.dropDatabase(c)
                let withGlobals = try await shell(pgbackdExecutable, ["restore", "latest", "--database", fixture.name, "--target-db", c, "--globals", "--json", "--config", config])
                #expect(withGlobals.status == 0, "restore --globals: \(withGlobals.stderr.suffix(2000))")
                #expect(try await Self.psql(postgres, "select count(*) from pg_roles where rolname = '\(global)'") == "1", "--globals did not recreate \(global)")
                let gotGlobals = try await RowDigests.of(postgres, database: c, tables: RowDigests.daylogTables)
                #expect(RowDigests.differing(gotGlobals, atSecond) == 0)
                rowsVerified += RowDigests.rows(atSecond)
                lost += RowDigests.differing(gotGlobals, atSecond)

                // expire through the CLI against S3: --dry-run removes nothing, then keep_last = 1
                // removes the first backup's objects and keeps the second.
                let storage = try S3Storage(configuration: S3Configuration(
                    endpoint: try #require(URL(string: s3.endpoint)), bucket: s3.bucket, region: s3.region,
                    accessKeyID: s3.accessKeyID, secretAccessKey: s3.secretAccessKey, prefix: prefix))
                let before = try await storage.list(prefix: "test/backups/\(first)/").count
                #expect(before > 0)
                let dryRun = try await shell(pgbackdExecutable, ["expire", "--dry-run", "--config", config])
                #expect(dryRun.status == 0, "expire --dry-run: \(dryRun.stderr)")
                #expect(dryRun.stdout.contains(first) && dryRun.stdout.contains("would expire"), "\(dryRun.stdout)")
                #expect(try await storage.list(prefix: "test/backups/\(first)/").count == before, "--dry-run removed objects")
                let expire = try await shell(pgbackdExecutable, ["expire", "--json", "--config", config])
                #expect(expire.status == 0, "expire: \(expire.stderr)")
                #expect(Self.json(expire.stdout)?["expired"] as? [String] == [first], "\(expire.stdout)")
                #expect(try await storage.list(prefix: "test/backups/\(first)/").isEmpty, "the expired backup's objects are still in S3")
                #expect(!(try await storage.list(prefix: "test/backups/\(second)/")).isEmpty)
                let gone = try await shell(pgbackdExecutable, ["restore", first, "--database", fixture.name, "--target-db", "cov_gone_\(tag)", "--config", config])
                #expect(gone.status != 0, "restoring an expired backup must fail")
                let open = try await storage.incompleteUploads(prefix: "")
                #expect(open.isEmpty)

                ReliabilityLedger.record(ReliabilityFigures(area: Self.area, scenario: "restore flags (logical) and expire on S3 (CLI)", runs: 5,
                                                            rowsVerified: rowsVerified, lost: lost, leftOver: open.count))
            }
        }

        /// One archiving cluster, one base backup, and a target recorded at each step of a pgbench
        /// load: the end of the base backup (`--immediate`), a transaction id (`--xid`, the
        /// transaction that inserted a marker row), an LSN (`--lsn`), a time (`--time`), the end of
        /// the archive (`--latest`). Each restore is started and compared row by row with the data
        /// recorded at its target. `--promote`, `--json`, `[ID]` and `--owner` are checked on the way.
        @Test(.enabled(if: TestServices.postgresEnabled))
        func pointInTimeTargetsRestoreExactlyTheirData() async throws {
            let postgres = try TestServices.requirePostgres()
            let transactions = ReliabilityScale.pick(ci: 150, long: 1500)
            let tables = RowDigests.pgbenchTables + ["pitr_marker"]
            let repository = try temporaryDirectory("coverage-pitr")
            defer { try? FileManager.default.removeItem(atPath: repository) }
            try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                type = "file"
                path = "\(repository)"
                stanza = "pitr"
                """) { cluster, pitr in
                func load() async throws { try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "\(transactions)"]) } }
                func digests(_ sql: (String) throws -> String) throws -> RowDigests.Digests { try RowDigests.of(tables, sql: sql) }

                try await offPool { try pitr.pgbench(["-i", "-s", "1", "--quiet"]) }
                try cluster.sql("create table pitr_marker (step text primary key, at timestamptz default now())")
                try await load()
                // Nothing writes during the base backup: its consistent point holds this data.
                let atBackup = try digests(cluster.sql)
                let backup = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--type", "base", "--json", "--config", pitr.config]) }
                #expect(backup.status == 0, "base backup: \(backup.stderr)")
                let backupId = try #require(Self.json(backup.stdout)?["backup_id"] as? String, "\(backup.stdout)")

                try await load()
                let xid = try cluster.sql("begin; insert into pitr_marker (step) values ('xid'); select txid_current(); commit;")
                let atXid = try digests(cluster.sql)
                try await load()
                try cluster.sql("insert into pitr_marker (step) values ('lsn')")
                let lsn = try cluster.sql("select pg_current_wal_insert_lsn()")
                let atLSN = try digests(cluster.sql)
                try await load()
                try cluster.sql("insert into pitr_marker (step) values ('time')")
                let time = try cluster.sql("select now()")
                let atTime = try digests(cluster.sql)
                try await load()
                try cluster.sql("insert into pitr_marker (step) values ('latest')")
                let atLatest = try digests(cluster.sql)
                let all = [atBackup, atXid, atLSN, atTime, atLatest]
                for (index, state) in all.enumerated().dropFirst() {
                    #expect(RowDigests.differing(state, all[index - 1]) > 0, "step \(index) changed nothing: its target would prove nothing")
                }
                try await pitr.archiveEverything(cluster)
                try cluster.giveToOwner(repository)

                var rowsVerified = 0, lost = 0, runs = 0
                for (name, arguments, expected, promoted) in [
                    ("immediate", [backupId, "--immediate"], atBackup, false),
                    ("xid", ["--xid", xid], atXid, false),
                    ("lsn", ["--lsn", lsn, "--json"], atLSN, false),
                    ("time", ["latest", "--time", time, "--promote"], atTime, true),
                    ("latest", ["--latest"], atLatest, true),
                ] {
                    let restored = RestoredCluster(base: "\(cluster.base)/restored-\(name)", binDirectory: postgres.binDirectory)
                    let result = try await offPool { try blockingShell(pitr.pgbackd, ["restore", "--pgdata", restored.data, "--config", pitr.config] + arguments) }
                    #expect(result.status == 0, "restore \(arguments): \(result.stderr)")
                    guard result.status == 0 else { continue }
                    if arguments.contains("--json") {
                        let summary = Self.json(result.stdout)
                        #expect(summary?["backup_id"] as? String == backupId, "\(result.stdout)")
                        #expect(summary?["data_directory"] as? String == restored.data, "\(result.stdout)")
                    } else {
                        #expect(result.stdout.contains("restored base backup \(backupId)"), "\(result.stdout)")
                    }
                    try await restored.start()
                    let got = try digests(restored.sql)
                    let differing = RowDigests.differing(got, expected)
                    #expect(differing == 0, "restore \(arguments): \(differing) rows differ from the data at the target")
                    #expect(try restored.sql("select pg_is_in_recovery()") == (promoted ? "f" : "t"),
                            "\(arguments): \(promoted ? "promoted" : "paused at the target") expected")
                    restored.stop()
                    rowsVerified += RowDigests.rows(expected)
                    lost += differing
                    runs += 1
                }

                // --owner (as root): the restored files belong to the named user, not postgres.
                if getuid() == 0 {
                    let data = "\(cluster.base)/restored-owner/data"
                    let result = try await offPool { try blockingShell(pitr.pgbackd, ["restore", "--pgdata", data, "--immediate", "--owner", "nobody", "--config", pitr.config]) }
                    #expect(result.status == 0, "restore --owner nobody: \(result.stderr)")
                    let nobody = try #require(getpwnam("nobody")).pointee.pw_uid
                    for path in [data, "\(data)/PG_VERSION", "\(data)/postgresql.auto.conf"] {
                        let owner = (try? FileManager.default.attributesOfItem(atPath: path)[.ownerAccountID] as? NSNumber)?.uint32Value
                        #expect(owner == nobody, "\(path) is owned by \(String(describing: owner)), not nobody (\(nobody))")
                    }
                }
                ReliabilityLedger.record(ReliabilityFigures(area: Self.area, scenario: "PITR: --immediate, --xid, --lsn, --time, --latest", runs: runs,
                                                            rowsVerified: rowsVerified, lost: lost))
            }
        }
    }
}
