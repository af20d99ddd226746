import Foundation
import Logging
import PostgresClient
import Testing

/// A restore that fails leaves the server as it found it: what can be verified is verified
/// before anything is created, and a database the restore created is dropped again.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct FailedRestoreTests {
    func databaseExists(_ name: String, _ postgres: TestServices.Postgres) async throws -> Bool {
        let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test"))
        return try await admin.query("select 1 from pg_database where datname = $1", [name]).rows.count == 1
    }

    /// Backs up a small Daylog database and returns its config file, the fixture and the dump's path.
    func backedUp(_ postgres: TestServices.Postgres, _ cleanup: Cleanup, binDirectory: String? = nil) async throws -> (config: String, fixture: DaylogFixture, dump: String) {
        let fixture = try await DaylogFixture.create(postgres, entries: 30)
        cleanup.dropDatabase(fixture.name)
        let directory = try temporaryDirectory("failed-restore")
        cleanup.remove(directory)
        let config = "\(directory)/pgbackd.toml"
        try BackupHarness.fileTOML(postgres, repository: "\(directory)/repo", databases: [fixture.name]).write(toFile: config, atomically: true, encoding: .utf8)
        let backup = try await shell(pgbackdExecutable, ["backup", "--config", config])
        try #require(backup.status == 0, "\(backup.stderr)")
        let dump = try #require(FileManager.default.enumerator(atPath: "\(directory)/repo")?.compactMap { $0 as? String }.first { $0.hasSuffix(".dump.gz\(TestServices.objectSuffix)") })
        if let binDirectory {
            try BackupHarness.fileTOML(postgres, repository: "\(directory)/repo", databases: [fixture.name], binDirectory: binDirectory)
                .write(toFile: config, atomically: true, encoding: .utf8)
        }
        return (config, fixture, "\(directory)/repo/\(dump)")
    }

    @Test func aCorruptDumpIsRefusedBeforeTheTargetExists() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let (config, fixture, dump) = try await backedUp(postgres, cleanup)
            // Encrypted (PGBACKD_TEST_ENCRYPTION=1), the flipped byte is in the ciphertext: the
            // cipher finds it, and the restore must be refused all the same.
            let handle = try #require(FileHandle(forUpdatingAtPath: dump))
            let size = try handle.seekToEnd()
            try handle.seek(toOffset: size / 2)
            let byte = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: size / 2)
            try handle.write(contentsOf: [byte ^ 0x40])
            try handle.close()
            let target = "\(fixture.name)_corrupt"
            cleanup.dropDatabase(target)
            let restore = try await shell(pgbackdExecutable, ["restore", "latest", "--database", fixture.name, "--target-db", target, "--config", config])
            #expect(restore.status == 65, "\(restore.stderr)")
            #expect(try await !databaseExists(target, postgres), "a refused restore created \(target)")
        }
    }

    @Test func aFailedPgRestoreDropsTheDatabaseItCreated() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let bin = try BackupHarness.wrappedTool(postgres, "pg_restore", script: "\"$REAL\" \"$@\"; echo 'pg_restore: error: injected failure' >&2; exit 1")
            cleanup.remove(bin)
            let (config, fixture, _) = try await backedUp(postgres, cleanup, binDirectory: bin)
            let target = "\(fixture.name)_failed"
            cleanup.dropDatabase(target)
            let restore = try await shell(pgbackdExecutable, ["restore", "latest", "--database", fixture.name, "--target-db", target, "--config", config])
            #expect(restore.status == 70, "\(restore.stderr)")
            #expect(restore.stderr.contains("injected failure"), "\(restore.stderr)")
            #expect(try await !databaseExists(target, postgres), "the failed restore left \(target) behind")
        }
    }

    @Test func aNonEmptyTargetIsRefusedWith73AndLeftAlone() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let (config, fixture, _) = try await backedUp(postgres, cleanup)
            let restore = try await shell(pgbackdExecutable, ["restore", "latest", "--database", fixture.name, "--target-db", fixture.name, "--config", config])
            #expect(restore.status == 73, "\(restore.stderr)")
            #expect(restore.stderr.contains("--force"), "\(restore.stderr)")
            #expect(try await fixture.rowCounts()["public.journal_journalentry"] == 30)
        }
    }
}
