import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

/// Drills against the real test PostgreSQL, each on a Daylog-shaped database made for the test.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct DrillTests {
    static let checks = """
        [[checks.content_size]]
        table = "public.journal_journalentry"
        column = "content"
        max_bytes = 1048576
        measure = "pg_column_size"

        [[checks.sql]]
        name = "editorjs-shape"
        query = "select id from journal_journalentry where jsonb_typeof(content) <> 'object' or not content ? 'blocks'"
        """

    struct Setup {
        var fixture: DaylogFixture
        var configuration: Configuration
        var repository: Repository
        var repositoryPath: String
    }

    func setup(_ postgres: TestServices.Postgres, _ cleanup: Cleanup, entries: Int = 1500, binDirectory: String? = nil) async throws -> Setup {
        let fixture = try await DaylogFixture.create(postgres, entries: entries)
        cleanup.dropDatabase(fixture.name)
        let repositoryPath = try temporaryDirectory("drill-repo")
        cleanup.remove(repositoryPath)
        let configuration = try BackupHarness.fileConfiguration(postgres, repository: repositoryPath, databases: [fixture.name], binDirectory: binDirectory, extra: Self.checks)
        return Setup(fixture: fixture, configuration: configuration, repository: try await RepositoryFactory.open(configuration, logger: BackupHarness.logger), repositoryPath: repositoryPath)
    }

    func backup(_ setup: Setup) async throws -> Manifest {
        try await LogicalBackup(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run()
    }

    func drill(_ setup: Setup, backup: String = "latest") async throws -> DrillReport {
        try await Drill(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger).run(.init(backup: backup))
    }

    func check(_ report: DrillReport, _ name: String) throws -> CheckResult {
        try #require(report.databases.first?.checks.first { $0.name == name }, "no \(name) check in \(report.databases.first?.checks.map(\.name) ?? [])")
    }

    /// Scratch databases no running drill holds (its advisory lock on the name, a bigint key
    /// whose low 32 bits pg_locks shows as objid): left behind. Drills of other tests running
    /// at the same time on this server (the daemon's) hold theirs and are not counted.
    /// Scratch databases no drill holds (a running drill keeps an advisory lock on its own).
    func scratchDatabases(_ postgres: TestServices.Postgres) async throws -> [String] {
        try await scratchDatabases(postgres, includingLocked: false)
    }

    /// Scratch databases a drill left behind: not those of drills still running (locked), nor
    /// those another suite's drill kept with `--keep` on purpose (DrillVerdictTests has one;
    /// CI caught this check counting it).
    func scratchDatabases(_ postgres: TestServices.Postgres, includingLocked: Bool) async throws -> [String] {
        let unlocked = includingLocked ? "" : """
             and not exists (
               select 1 from pg_locks l where l.locktype = 'advisory' and l.objsubid = 1
                 and l.objid = (hashtext(d.datname)::bigint & 4294967295)::oid)
             and coalesce(shobj_description(d.oid, 'pg_database'), '') not like '%\(ScratchDatabases.keptMarker)%'
            """
        return try await shell("\(postgres.binDirectory)/psql", ["-XAt", "-h", postgres.host, "-p", postgres.port, "-U", postgres.user, "-d", "postgres",
                                                            "-c", "select datname from pg_database d where datname like 'pgbackd_drill_%'" + unlocked])
            .stdout.split(separator: "\n").map(String.init)
    }

    @Test func cleanBackupDrillsGreenAndRestoresEqualToTheSource() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup)
            let manifest = try await backup(setup)
            let report = try await drill(setup)
            #expect(report.passed, "failed checks: \(report.failures.map { "\($0.check.name): \($0.check.summary)" })")
            #expect(Set(report.databases[0].checks.map(\.name)) == ["artifacts", "restore", "database-properties", "referential", "content-size", "row-counts", "objects", "sql:editorjs-shape"])
            #expect(try check(report, "referential").figures["foreign_keys"] == 4)
            #expect(try await scratchDatabases(postgres).isEmpty, "the scratch database is dropped after the drill")

            // The report is stored beside the backup, and reads back.
            let key = setup.repository.drillReportKey(backupId: manifest.backupId, drillId: report.drillId)
            let stored = try DrillReport.decode(try await setup.repository.storage.getAll(key: key))
            #expect(stored.passed && stored.backupId == manifest.backupId)

            // A plain restore of the same backup equals the source, table by table.
            let target = "restore_\(UUID().uuidString.prefix(8).lowercased())"
            cleanup.dropDatabase(target)
            _ = try await LogicalRestore(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger)
                .run(.init(backup: manifest.backupId, database: setup.fixture.name, target: target))
            #expect(try await setup.fixture.tableFingerprints(database: target) == (try await setup.fixture.tableFingerprints()))

            // A second restore into the now non-empty target is refused without --force.
            do {
                _ = try await LogicalRestore(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger)
                    .run(.init(backup: "latest", database: setup.fixture.name, target: target))
                Issue.record("restoring over a non-empty database must need --force")
            } catch let error as RestoreError {
                #expect(error.code == .targetNotEmpty)
                #expect(error.description.contains("--force"))
            }
            _ = try await LogicalRestore(configuration: setup.configuration, repository: setup.repository, logger: BackupHarness.logger)
                .run(.init(backup: "latest", database: setup.fixture.name, target: target, force: true))
            #expect(try await setup.fixture.rowCounts(database: target) == manifest.databases[0].rowCounts)
        }
    }

    @Test func orphansAreFoundAndNamedPerConstraint() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup)
            try await setup.fixture.execute("""
                set session_replication_role = replica;
                insert into journal_journalentry (id, user_id, title, content) values ('00000000-0000-0000-0000-0000000000aa', 424242, 'orphan', '{"blocks": []}');
                insert into journal_journalentry_tags (journalentry_id, tag_id) values ('00000000-0000-0000-0000-0000000000bb', '00000000-0000-0000-0000-0000000000cc');
                -- MATCH SIMPLE: a NULL in the key is not an orphan (the column allows it here).
                alter table journal_journalentry_tags alter column tag_id drop not null;
                insert into journal_journalentry_tags (journalentry_id, tag_id) select id, null from journal_journalentry limit 1;
                """)
            _ = try await backup(setup)
            let report = try await drill(setup)
            #expect(!report.passed)
            let referential = try check(report, "referential")
            #expect(!referential.passed)
            #expect(referential.figures["orphan_rows"] == 3)
            let byConstraint = Dictionary(grouping: referential.evidence.filter { $0["row"] != nil }) { $0["constraint"] ?? "" }
            let user = try #require(byConstraint["journal_journalentry_user_id_fkey"])
            #expect(user.contains { $0["row"] == "00000000-0000-0000-0000-0000000000aa" && $0["dangling_key"] == "424242" })
            let entry = try #require(byConstraint["journal_journalentry_tags_journalentry_id_fkey"])
            #expect(entry.contains { $0["dangling_key"] == "00000000-0000-0000-0000-0000000000bb" })
            let tag = try #require(byConstraint["journal_journalentry_tags_tag_id_fkey"])
            #expect(tag.count == 1 && tag[0]["dangling_key"] == "00000000-0000-0000-0000-0000000000cc")
            // pg_restore could not create the violated constraints: that is reported too.
            #expect(referential.evidence.contains { $0["problem"]?.contains("missing from the restore") == true })
            #expect(try await scratchDatabases(postgres).isEmpty)
        }
    }

    @Test func oversizeContentIsFoundWithItsIds() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup)
            // ~2.6 MB of hex: pglz cannot squeeze it under 1 MiB.
            try await setup.fixture.execute("""
                update journal_journalentry set content = jsonb_build_object('blocks', jsonb_build_array(jsonb_build_object('type', 'paragraph',
                  'data', jsonb_build_object('text', (select string_agg(md5(g::text || random()::text), '') from generate_series(1, 80000) g)))))
                where id = md5('entry7')::uuid
                """)
            _ = try await backup(setup)
            let contentSize = try check(try await drill(setup), "content-size")
            #expect(!contentSize.passed)
            #expect(contentSize.figures["rows_over_limit"] == 1)
            let offender = try #require(contentSize.evidence.first { $0["row"] != nil })
            #expect(offender["row"] == UUIDFromMD5.entry7)
            #expect(Int(offender["bytes"] ?? "") ?? 0 > 1_048_576)
        }
    }

    @Test func rowsDeletedAfterTheBackupAreNotAFailure() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup)
            _ = try await backup(setup)
            try await setup.fixture.execute("delete from journal_journalentry where created_at > '2026-01-01 10:00'")
            let report = try await drill(setup)
            #expect(report.passed, "the snapshot is what counts: \(report.failures.map(\.check.summary))")
        }
    }

    @Test func aRestoreMissingRowsFails() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            // A dump that silently lacks one table's data, while the snapshot counts are complete.
            let bin = try BackupHarness.wrappedPgDump(postgres, script: "exec \"$REAL\" --exclude-table-data=public.journal_journalentry_tags \"$@\"")
            cleanup.remove(bin)
            let setup = try await setup(postgres, cleanup, binDirectory: bin)
            let manifest = try await backup(setup)
            let rowCounts = try check(try await drill(setup), "row-counts")
            #expect(!rowCounts.passed)
            #expect(rowCounts.evidence == [["table": "public.journal_journalentry_tags",
                                            "snapshot_rows": String(manifest.databases[0].rowCounts["public.journal_journalentry_tags"]!),
                                            "restored_rows": "0"]])
        }
    }

    @Test(arguments: ["flipped byte", "truncated", "missing"])
    func damagedObjectsFailTheDrillNamingTheObject(damage: String) async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup)
            let manifest = try await backup(setup)
            let dump = try #require(manifest.artifacts.first { $0.content == .databaseDump })
            // Encrypted (PGBACKD_TEST_ENCRYPTION=1): the damage is done to `<key>.enc`, the ciphertext.
            let path = "\(setup.repositoryPath)/test/\(dump.key)\(TestServices.objectSuffix)"
            let handle = try #require(FileHandle(forUpdatingAtPath: path))
            switch damage {
            case "flipped byte":
                try handle.seek(toOffset: UInt64(dump.storedSize / 2))
                let byte = try #require(try handle.read(upToCount: 1)?.first)
                try handle.seek(toOffset: UInt64(dump.storedSize / 2))
                try handle.write(contentsOf: [byte ^ 0x01])
                try handle.close()
            case "truncated":
                try handle.truncate(atOffset: UInt64(dump.storedSize - 100))
                try handle.close()
            default:
                try handle.close()
                try FileManager.default.removeItem(atPath: path)
            }
            // Encrypted, a flipped byte fails authentication: the same failed artifacts check.
            let report = try await drill(setup)
            #expect(!report.passed)
            let artifacts = try check(report, "artifacts")
            #expect(!artifacts.passed)
            #expect(artifacts.summary.contains(dump.key), "\(artifacts.summary)")
            let leftovers = try await scratchDatabases(postgres)
            #expect(leftovers.isEmpty, "\(leftovers)")
        }
    }

    @Test func aFailingSQLCheckShowsItsRows() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup)
            try await setup.fixture.execute("update journal_journalentry set content = '\"not an object\"' where id = md5('entry7')::uuid")
            _ = try await backup(setup)
            let sql = try check(try await drill(setup), "sql:editorjs-shape")
            #expect(!sql.passed)
            #expect(sql.evidence == [["id": UUIDFromMD5.entry7]])
        }
    }

    @Test(arguments: [SIGTERM, SIGKILL])
    func anInterruptedDrillLeavesNoScratchDatabaseOnceTheNextDrillRan(signal: Int32) async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await setup(postgres, cleanup)
            _ = try await backup(setup)
            // pg_restore stalls: the drill is mid-restore when the signal arrives.
            let bin = try BackupHarness.wrappedTool(postgres, "pg_restore", script: "sleep 60; exec \"$REAL\" \"$@\"")
            cleanup.remove(bin)
            let config = try temporaryDirectory("cfg") + "/pgbackd.toml"
            cleanup.remove((config as NSString).deletingLastPathComponent)
            try BackupHarness.fileTOML(postgres, repository: setup.repositoryPath, databases: [setup.fixture.name], binDirectory: bin).write(toFile: config, atomically: true, encoding: .utf8)
            // Other suites' drills share the server (and drop scratch databases nobody holds): the
            // killed drill's own database is told by name, the one that appears while it restores.
            let before = Set(try await scratchDatabases(postgres, includingLocked: true))
            let process = try launchPgbackd(["drill", "--config", config])
            let restoring = try await eventually { !(try await shell("pgrep", ["-f", "\(bin)/pg_restore"]).stdout.isEmpty) }
            #expect(restoring)
            // Other suites' drills may have made theirs meanwhile: those are locked while their
            // drill runs, or gone once it is done, so only an unlocked one of these is a leftover.
            let ours = Set(try await scratchDatabases(postgres, includingLocked: true)).subtracting(before)
            #expect(!ours.isEmpty, "the drill made its scratch database")
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            _ = try? await shell("pkill", ["-9", "-f", "\(bin)/pg_restore"])
            #expect(process.terminationStatus != 0)
            if signal == SIGKILL {
                // Locked a moment longer, while its server session notices the kill.
                #expect(!Set(try await scratchDatabases(postgres, includingLocked: true)).isDisjoint(with: ours), "a killed drill cannot clean up after itself")
            } else {
                #expect(Set(try await scratchDatabases(postgres)).isDisjoint(with: ours), "a stopped drill drops its scratch database before it exits")
            }

            let next = try await drill(setup)
            #expect(next.passed)
            #expect(Set(try await scratchDatabases(postgres)).isDisjoint(with: ours), "the next drill drops what the interrupted one left")
        }
    }
}

/// Fixture ids are md5('entry' || n)::uuid.
enum UUIDFromMD5 {
    static let entry7: String = {
        let hex = Array(try! blockingShell("/bin/bash", ["-c", "printf entry7 | md5sum"]).stdout.prefix(32))
        return String(hex[0..<8]) + "-" + String(hex[8..<12]) + "-" + String(hex[12..<16]) + "-" + String(hex[16..<20]) + "-" + String(hex[20..<32])
    }()
}
