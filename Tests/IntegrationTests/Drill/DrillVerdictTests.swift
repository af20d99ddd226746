import Foundation
import Logging
import ObjectStorage
import PostgresClient
@testable import PGBackupCore
import Testing

/// Verdicts that were wrong once: each test here failed before its fix.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct DrillVerdictTests {
    struct Setup {
        var fixture: DaylogFixture
        var directory: String
        var config: String
        var configuration: Configuration
        var repository: Repository
    }

    func setup(_ postgres: TestServices.Postgres, _ cleanup: Cleanup, extra: String) async throws -> Setup {
        let fixture = try await DaylogFixture.create(postgres, entries: 50)
        cleanup.dropDatabase(fixture.name)
        let directory = try temporaryDirectory("verdict")
        cleanup.remove(directory)
        let toml = BackupHarness.fileTOML(postgres, repository: "\(directory)/repo", databases: [fixture.name], extra: extra)
        let config = "\(directory)/pgbackd.toml"
        try toml.write(toFile: config, atomically: true, encoding: .utf8)
        let configuration = try Configuration.parse(toml, file: config)
        return Setup(fixture: fixture, directory: directory, config: config, configuration: configuration,
                     repository: try await RepositoryFactory.open(configuration, logger: BackupHarness.logger))
    }

    func backupAndDrill(_ setup: Setup) async throws -> DrillReport {
        _ = try await LogicalBackup(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run()
        return try await Drill(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run(.init())
    }

    func check(_ report: DrillReport, _ name: String) throws -> CheckResult {
        try #require(report.databases.first?.checks.first { $0.name == name } ?? report.checks.first { $0.name == name },
                     "no \(name) check in \(report.databases.first?.checks.map(\.name) ?? [])")
    }

    /// A rule on a table that does not exist used to be dropped without a word.
    @Test func aRuleOrQueryNamingNothingRealFailsTheDrillAndCheck() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup, extra: """
                [[checks.content_size]]
                table = "public.journal_entry"
                column = "content"
                max_bytes = 1048576

                [[checks.content_size]]
                table = "public.journal_journalentry"
                column = "content"
                max_bytes = 1048576
                database = "daylog_typo"

                [[checks.sql]]
                name = "no-such-table"
                query = "select id from journal_entries where content is null"
                """)
            let report = try await backupAndDrill(setup)
            #expect(!report.passed)
            let contentSize = try check(report, "content-size")
            #expect(!contentSize.passed)
            #expect(contentSize.evidence.contains { $0["problem"]?.contains("no table public.journal_entry") == true }, "\(contentSize.evidence)")
            let configuration = try check(report, "configuration")
            #expect(!configuration.passed && configuration.evidence.contains { $0["problem"] == "database daylog_typo is not in the backup" })
            let sql = try check(report, "sql:no-such-table")
            #expect(!sql.passed && sql.summary.contains("journal_entries"), "\(sql.summary)")

            let preflight = try await shell(pgbackdExecutable, ["check", "--config", setup.config])
            #expect(preflight.status == 78, "\(preflight.stdout)")
            #expect(preflight.stdout.contains("FAIL checks"), "\(preflight.stdout)")
            for key in ["checks.content_size[1].table", "checks.content_size[2].database", "checks.sql[1].query"] {
                #expect(preflight.stdout.contains(key), "check must name \(key): \(preflight.stdout)")
            }
        }
    }

    /// Queries as psql takes them: comments (the wrapper's closing parenthesis once landed in a
    /// trailing `--` comment), CTEs, a trailing semicolon. Several statements are refused.
    @Test func sqlChecksRunAsWritten() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let queries = [
                "trailing-comment": "select id from journal_journalentry where content is null -- nothing should be null",
                "trailing-semicolon": "select id from journal_journalentry where content is null;",
                "semicolon-and-comment": "-- entries without blocks\nselect id from journal_journalentry\nwhere not content ? 'blocks'; -- EditorJS",
                "cte": "with long_titles as (select id, title from journal_journalentry where length(title) > 200) select * from long_titles",
                "finds-rows": "/* every entry of the first user */ select id, title from journal_journalentry where user_id = 1 and title in ('Entry 2', 'Entry 3', 'Entry 4') order by title;",
                "two-statements": "select 1 where false; select 2 where false",
            ]
            let setup = try await setup(postgres, cleanup, extra: queries.sorted { $0.key < $1.key }.map { name, query in
                "[[checks.sql]]\nname = \"\(name)\"\nquery = '''\n\(query)'''\n"
            }.joined(separator: "\n"))
            let report = try await backupAndDrill(setup)
            for name in ["trailing-comment", "trailing-semicolon", "semicolon-and-comment", "cte"] {
                let result = try check(report, "sql:\(name)")
                #expect(result.passed, "\(name): \(result.summary)")
            }
            let found = try check(report, "sql:finds-rows")
            #expect(!found.passed && found.figures["rows"] == 3 && found.evidence.map { $0["title"] } == ["Entry 2", "Entry 3", "Entry 4"], "\(found)")
            let several = try check(report, "sql:two-statements")
            #expect(!several.passed && several.summary.contains("the query failed"), "\(several.summary)")
        }
    }

    /// "No entry over 1 MiB" is about the bytes the application stored; TOAST compresses this
    /// 1.6 MB entry to a few kB, which `pg_column_size` (the old default) let pass.
    @Test func contentSizeMeasuresTheContentByDefault() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup, extra: """
                [[checks.content_size]]
                table = "public.journal_journalentry"
                column = "content"
                max_bytes = 1048576
                """)
            try await setup.fixture.execute("""
                update journal_journalentry set content = jsonb_build_object('blocks', jsonb_build_array(jsonb_build_object('type', 'paragraph',
                  'data', jsonb_build_object('text', repeat('dear diary ', 160000))))) where id = md5('entry7')::uuid
                """)
            let report = try await backupAndDrill(setup)
            let contentSize = try check(report, "content-size")
            #expect(!contentSize.passed)
            let offender = try #require(contentSize.evidence.first { $0["row"] != nil })
            #expect(offender["row"] == UUIDFromMD5.entry7)
            #expect((Int(offender["bytes"] ?? "") ?? 0) > 1_600_000)
            #expect(offender["rule"]?.contains("(octet_length)") == true, "the report names the measure: \(offender)")
        }
    }

    /// Drills restore TOAST with lz4 where the server has it (the data restore of a TOAST-heavy
    /// table is bound by pglz); a check measuring stored sizes must see production's sizes, so
    /// it keeps the server's compression, as does `toast_compression = "server"`. An SQL check
    /// reads the method in the scratch database (a kept one would be visible to other suites'
    /// drills as a stale scratch database).
    @Test(arguments: ["", "[[checks.content_size]]\ntable = \"public.journal_journalentry\"\ncolumn = \"content\"\nmax_bytes = 1048576\nmeasure = \"pg_column_size\"",
                      "toast_compression = \"server\""])
    func theScratchDatabaseCompressesToastWithLz4UnlessSizesAreChecked(extra: String) async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test"))
            let offered = try await admin.query("select 'lz4' = any(enumvals) from pg_settings where name = 'default_toast_compression'").scalar == "t"
            let expected = extra.isEmpty && offered ? "lz4" : "pglz"
            let setup = try await setup(postgres, cleanup, extra: extra + """

                [[checks.sql]]
                name = "toast-method"
                query = "select id, pg_column_compression(content) from journal_journalentry where id = md5('entry7')::uuid and pg_column_compression(content) is distinct from '\(expected)'"
                """)
            try await setup.fixture.execute("""
                update journal_journalentry set content = jsonb_build_object('blocks', jsonb_build_array(jsonb_build_object('type', 'paragraph',
                  'data', jsonb_build_object('text', repeat('dear diary ', 2000))))) where id = md5('entry7')::uuid
                """)
            let report = try await backupAndDrill(setup)
            let method = try check(report, "sql:toast-method")
            #expect(method.passed, "expected \(expected) (lz4 offered: \(offered), extra: \(extra)): \(method.evidence)")
            #expect(report.passed, "\(report.checks) \(report.databases.first?.checks ?? [])")
            let restore = try check(report, "restore")
            #expect(restore.summary.contains("lz4") == (expected == "lz4"), "\(restore.summary)")
        }
    }

    /// The error said `postgres.conninfo` when `drill.conninfo` was the one that failed, and so
    /// did the alert.
    @Test func aDrillServerFailureNamesDrillConninfo() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let directory = try temporaryDirectory("verdict-alert")
            cleanup.remove(directory)
            let setup = try await setup(postgres, cleanup, extra: """
                conninfo = "host=127.0.0.1 port=9 user=postgres connect_timeout=3"
                [[alerts.command]]
                events = ["drill.failed"]
                run = ["/bin/sh", "-c", "cat > \(directory)/alert.json"]
                """)
            _ = try await LogicalBackup(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run()
            let drill = try await shell(pgbackdExecutable, ["drill", "--config", setup.config])
            #expect(drill.status == 69, "\(drill.stderr)")
            #expect(drill.stderr.contains("drill.conninfo") && !drill.stderr.contains("postgres.conninfo"), "\(drill.stderr)")
            let alert = try String(contentsOfFile: "\(directory)/alert.json", encoding: .utf8)
            #expect(alert.contains("drill.conninfo") && !alert.contains("postgres.conninfo"), "\(alert)")
        }
    }

    /// A scratch database kept with --keep used to be dropped by the very next drill.
    @Test func aKeptScratchDatabaseSurvivesLaterDrillsUntilDropKept() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup, extra: "")
            _ = try await LogicalBackup(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run()
            let kept = try await Drill(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run(.init(keep: true))
            let name = try #require(kept.databases.first?.scratchDatabase)
            cleanup.dropDatabase(name)
            let next = try await Drill(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run(.init())
            #expect(next.passed)
            let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test"))
            #expect(try await admin.query("select 1 from pg_database where datname = $1", [name]).rows.count == 1, "the next drill dropped the kept \(name)")

            let list = try await shell(pgbackdExecutable, ["drill", "--list-kept", "--config", setup.config])
            #expect(list.status == 0 && list.stdout.contains(name) && list.stdout.contains("kept"), "\(list.stdout) \(list.stderr)")
            let drop = try await shell(pgbackdExecutable, ["drill", "--drop-kept", "--config", setup.config])
            #expect(drop.status == 0 && drop.stdout.contains(name), "\(drop.stdout) \(drop.stderr)")
            #expect(try await admin.query("select 1 from pg_database where datname = $1", [name]).rows.isEmpty)
        }
    }

    /// Large objects live outside every table: a dump without them passed every check.
    @Test func aDumpWithoutItsLargeObjectsFailsTheRowCounts() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let bin = try BackupHarness.wrappedPgDump(postgres, script: "exec \"$REAL\" --no-blobs \"$@\"")
            cleanup.remove(bin)
            var setup = try await setup(postgres, cleanup, extra: "")
            setup.configuration.postgres.binDirectory = bin
            try await setup.fixture.execute("select lo_from_bytea(0, 'an attachment'), lo_from_bytea(0, 'another one')")
            let report = try await backupAndDrill(setup)
            let rowCounts = try check(report, "row-counts")
            #expect(!rowCounts.passed)
            #expect(rowCounts.evidence == [["table": "(large objects)", "snapshot_rows": "2", "restored_rows": "0"]], "\(rowCounts.evidence)")
        }
    }

    /// Every drill measures its restore; `max_restore_seconds` makes a slow one a failed check,
    /// and `status` shows the newest drill's time.
    @Test func aRestoreSlowerThanTheObjectiveFailsTheDrill() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let bin = try BackupHarness.wrappedTool(postgres, "pg_restore", script: "sleep 1; exec \"$REAL\" \"$@\"")
            cleanup.remove(bin)
            var setup = try await setup(postgres, cleanup, extra: "max_restore_seconds = 2")
            _ = try await LogicalBackup(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run()
            setup.configuration.postgres.binDirectory = bin
            let report = try await Drill(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run(.init())
            // Three pg_restore runs (data, indexes, foreign keys), each a second late.
            let seconds = try #require(report.restoreSeconds)
            #expect(seconds > 3 && seconds == report.databases[0].restoreSeconds)
            let check = try #require(report.checks.first { $0.name == "restore-time" })
            #expect(!check.passed && !report.passed, "\(check.summary)")
            #expect(check.evidence.first?["database"] == setup.fixture.name)

            let status = try await shell(pgbackdExecutable, ["status", "--json", "--config", setup.config])
            let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            let last = try #require(json?["last_drill"] as? [String: Any], "\(status.stdout) \(status.stderr)")
            #expect(last["drill_id"] as? String == report.drillId)
            #expect((last["restore_seconds"] as? Double).map { abs($0 - seconds) < 0.01 } == true, "\(last)")
        }
    }

    /// A backup that uses an extension the drill server lacks is not "broken": the drill says
    /// it cannot verify it on this host (exit 3, verdict `unverifiable`, a warning alert), and
    /// `check` warns before the first drill.
    @Test func anExtensionTheDrillHostLacksGivesItsOwnVerdict() async throws {
        let postgres = try TestServices.requirePostgres()
        let fake = try await FakeExtension.install(postgres)
        defer { fake.uninstall() }
        try await withCleanup(postgres) { cleanup in
            let directory = try temporaryDirectory("verdict-extension")
            cleanup.remove(directory)
            let setup = try await setup(postgres, cleanup, extra: """
                [[alerts.command]]
                events = ["drill.failed"]
                run = ["/bin/sh", "-c", "cat > \(directory)/alert.json"]
                """)
            try await setup.fixture.execute("create extension \(fake.name)")
            let ok = try await shell(pgbackdExecutable, ["check", "--config", setup.config])
            #expect(ok.status == 0 && !ok.stdout.contains("warn"), "\(ok.stdout)")
            let backup = try await shell(pgbackdExecutable, ["backup", "--config", setup.config])
            try #require(backup.status == 0, "\(backup.stderr)")
            fake.uninstall()

            let check = try await shell(pgbackdExecutable, ["check", "--config", setup.config])
            #expect(check.status == 0, "a missing extension is a warning, not a failure: \(check.stdout)")
            #expect(check.stdout.contains("warn extensions: the drill server lacks \(fake.name) (package postgresql-") && check.stdout.contains(setup.fixture.name), "\(check.stdout)")

            let drill = try await shell(pgbackdExecutable, ["drill", "--config", setup.config])
            #expect(drill.status == 3, "\(drill.stdout) \(drill.stderr)")
            #expect(drill.stdout.contains("NOT VERIFIABLE ON THIS HOST") && !drill.stdout.contains("FAILED"), "\(drill.stdout)")
            #expect(drill.stdout.contains("cannot verify on this drill host: extension \(fake.name) (package"), "\(drill.stdout)")
            let alert = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(directory)/alert.json"))) as? [String: Any]
            #expect(alert?["verdict"] as? String == "unverifiable" && alert?["severity"] as? String == "warning", "\(alert ?? [:])")
            #expect((alert?["summary"] as? String)?.contains("could not verify") == true, "\(alert ?? [:])")
        }
    }

    /// An extension's own functions are not the database's objects: the dump does not hold
    /// them, and a drill server's version of the extension (an upgrade drill) may have others.
    @Test func extensionObjectsAreNotCountedAsTheDatabases() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 10)
            cleanup.dropDatabase(fixture.name)
            try await fixture.execute("create extension if not exists hstore; create function public.mine() returns int language sql as 'select 1'")
            let connection = try await PostgresConnection.connect(conninfo: postgres.conninfo(database: fixture.name), logger: Logger(label: "test"))
            let own = try await SnapshotCatalog.census(connection)
            let all = try await SnapshotCatalog.census(connection, excludingExtensionMembers: false)
            #expect(own.schemas["public"]?.functions == 1 && own.excludesExtensionMembers == true)
            #expect((all.schemas["public"]?.functions ?? 0) > 50, "hstore's functions are in public: \(all.schemas["public"] ?? .init())")
        }
    }
}
