import Foundation
import Logging
import PostgresClient
import Testing

/// docs/operations.md's "Exit codes" table is a contract: every row is run through the real
/// `pgbackd` executable by at least one scenario below, and a row without a scenario (or a
/// scenario for a code the table does not document) fails the suite.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct ExitCodeTableTests {
    @Test func everyDocumentedExitCodeHasAScenarioAndNoOtherCodeHasOne() throws {
        let documented = try DocumentedExitCodes.read()
        let covered = Set(Self.scenarios.map(\.code))
        let missing = documented.subtracting(covered).sorted()
        let undocumented = covered.subtracting(documented).sorted()
        #expect(missing.isEmpty, "rows of the exit code table in \(DocumentedExitCodes.path) without a scenario: \(missing)")
        #expect(undocumented.isEmpty, "scenarios for exit codes that \(DocumentedExitCodes.path) does not document: \(undocumented)")
    }

    @Test(.timeLimit(.minutes(2)), arguments: Self.scenarios)
    func documentedExitCode(_ scenario: ExitCodeScenario) async throws {
        // Outside CI an S3 scenario without a configured S3 is skipped (returns); in CI
        // s3Enabled is true and requireS3() below throws, so a missing moto fails the row.
        guard !scenario.needsS3 || TestServices.s3Enabled else { return }
        let postgres = try TestServices.requirePostgres()
        let row = "exit code table row \(scenario.code) (\(scenario.name))"
        try await withCleanup(postgres) { cleanup in
            let directory = try temporaryDirectory("exit-table")
            cleanup.remove(directory)
            let setup = ScenarioSetup(postgres: postgres, cleanup: cleanup, directory: directory)
            let outcome = try await scenario.run(setup)
            #expect(outcome.status == scenario.code, "\(row): exited \(outcome.status), documented \(scenario.code); stderr: \(outcome.stderr)")
            if scenario.code != 0 {
                #expect(!outcome.stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(row): stderr is empty")
                for fragment in scenario.fragments {
                    #expect(outcome.stderr.contains(fragment), "\(row): stderr does not name the problem (\"\(fragment)\"): \(outcome.stderr)")
                }
            }
            for secret in outcome.secrets + [setup.password] where outcome.stderr.contains(secret) || outcome.stdout.contains(secret) {
                Issue.record("\(row): the output contains the secret \"\(secret)\": \(outcome.stderr) \(outcome.stdout)")
            }
        }
    }

    static let scenarios: [ExitCodeScenario] = [
        ExitCodeScenario(0, "list on an empty file repository") { setup in
            let repository = "\(setup.directory)/repo"
            try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
            let config = try setup.write(setup.fileTOML(repository: repository))
            return try await setup.pgbackd(["list", "--config", config])
        },

        ExitCodeScenario(70, "backup whose pg_dump exits 1", fragments: ["pg_dump"]) { setup in
            let fixture = try await setup.fixture()
            let bin = try BackupHarness.wrappedPgDump(setup.postgres, script: "echo 'pg_dump: error: boom' >&2; exit 1")
            setup.cleanup.remove(bin)
            let config = try setup.write(setup.fileTOML(databases: [fixture.name], binDirectory: bin))
            return try await setup.pgbackd(["backup", "--config", config])
        },

        ExitCodeScenario(130, "backup stopped by SIGTERM while pg_dump runs", fragments: ["cancelled"]) { setup in
            let fixture = try await setup.fixture()
            let bin = try BackupHarness.wrappedPgDump(setup.postgres, script: "sleep 120")
            setup.cleanup.remove(bin)
            let config = try setup.write(setup.fileTOML(databases: [fixture.name], binDirectory: bin))
            // --preserve-status: pgbackd's own status, not timeout's 124.
            let result = try await shell("timeout", ["--preserve-status", "--kill-after=30", "5", pgbackdExecutable, "backup", "--config", config])
            return ScenarioOutcome(status: result.status, stdout: result.stdout, stderr: result.stderr)
        },

        ExitCodeScenario(1, "wal-fetch of a WAL file the archive does not have", fragments: ["000000010000000000000042"]) { setup in
            let repository = "\(setup.directory)/repo"
            try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
            let config = try setup.write(setup.fileTOML(repository: repository))
            return try await setup.pgbackd(["wal-fetch", "000000010000000000000042", "\(setup.directory)/RECOVERYXLOG", "--config", config])
        },

        ExitCodeScenario(1, "drill of a backup with an orphan row", fragments: ["FAILED", "referential"]) { setup in
            let fixture = try await setup.fixture()
            _ = try await setup.query("set session_replication_role = replica; insert into journal_tag (id, user_id, name) values (md5('orphan')::uuid, 4242, 'orphan')", database: fixture.name)
            let config = try setup.write(setup.fileTOML(databases: [fixture.name]))
            _ = try await setup.backup(config: config)
            return try await setup.pgbackd(["drill", "--config", config])
        },

        ExitCodeScenario(3, "drill of a backup using an extension the drill server lacks", fragments: ["could not verify", "pgbackd_probe_"]) { setup in
            let fake = try await FakeExtension.install(setup.postgres)
            defer { fake.uninstall() }
            let fixture = try await setup.fixture()
            _ = try await setup.query("create extension \(fake.name)", database: fixture.name)
            let config = try setup.write(setup.fileTOML(databases: [fixture.name]))
            _ = try await setup.backup(config: config)
            fake.uninstall()
            return try await setup.pgbackd(["drill", "--config", config])
        },

        ExitCodeScenario(64, "restore without --database/--target-db", fragments: ["--database", "--target-db"]) { setup in
            let config = try setup.write(setup.fileTOML())
            return try await setup.pgbackd(["restore", "--config", config])
        },

        ExitCodeScenario(64, "an unknown flag", fragments: ["--no-such-flag"]) { setup in
            let config = try setup.write(setup.fileTOML())
            return try await setup.pgbackd(["list", "--no-such-flag", "--config", config])
        },

        ExitCodeScenario(65, "show of a backup whose manifest.json is garbage", fragments: ["manifest"]) { setup in
            let fixture = try await setup.fixture()
            let repository = "\(setup.directory)/repo"
            let config = try setup.write(setup.fileTOML(repository: repository, databases: [fixture.name]))
            let id = try await setup.backup(config: config)
            // Encrypted (PGBACKD_TEST_ENCRYPTION=1): manifest.json.enc, and the garbage is
            // encrypted as pgbackd would (plain bytes there would be the cipher's error, not this row's).
            let manifests = try setup.files(named: "manifest.json\(TestServices.objectSuffix)", under: repository)
            try #require(manifests.count == 1, "expected one manifest.json under \(repository), found \(manifests)")
            if TestServices.encrypted {
                try await RepositoryObjects(config: config).write("exit/backups/\(id)/manifest.json", Array("{ this is not a manifest".utf8))
            } else {
                try "{ this is not a manifest".write(toFile: manifests[0], atomically: false, encoding: .utf8)
            }
            return try await setup.pgbackd(["show", id, "--config", config])
        },

        ExitCodeScenario(66, "show of a backup id that does not exist", fragments: ["20990101T000000Z-logical"]) { setup in
            let repository = "\(setup.directory)/repo"
            try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
            let config = try setup.write(setup.fileTOML(repository: repository))
            return try await setup.pgbackd(["show", "20990101T000000Z-logical", "--config", config])
        },

        ExitCodeScenario(66, "restore of a database the backup does not have", fragments: ["nosuchdb"]) { setup in
            let fixture = try await setup.fixture()
            let config = try setup.write(setup.fileTOML(databases: [fixture.name]))
            let id = try await setup.backup(config: config)
            let target = "exit_table_\(UUID().uuidString.prefix(8).lowercased())"
            setup.cleanup.dropDatabase(target)
            return try await setup.pgbackd(["restore", id, "--database", "nosuchdb", "--target-db", target, "--config", config])
        },

        ExitCodeScenario(69, "PostgreSQL unreachable (nothing listens on 127.0.0.1:9)", fragments: ["127.0.0.1"]) { setup in
            let config = try setup.write(setup.fileTOML(conninfo: "host=127.0.0.1 port=9 user=postgres password=\(setup.password) connect_timeout=3"))
            return try await setup.pgbackd(["backup", "--config", config])
        },

        ExitCodeScenario(69, "a configured database that does not exist", fragments: ["nosuchdb_exit_table"]) { setup in
            let config = try setup.write(setup.fileTOML(databases: ["nosuchdb_exit_table"]))
            return try await setup.pgbackd(["backup", "--config", config])
        },

        ExitCodeScenario(70, "restore whose pg_restore fails", fragments: ["boom"]) { setup in
            let fixture = try await setup.fixture()
            let config = try setup.write(setup.fileTOML(databases: [fixture.name]))
            let id = try await setup.backup(config: config)
            let bin = try BackupHarness.wrappedTool(setup.postgres, "pg_restore", script: "echo 'pg_restore: error: boom' >&2; exit 1")
            setup.cleanup.remove(bin)
            let failing = try setup.write(setup.fileTOML(databases: [fixture.name], binDirectory: bin), name: "failing.toml")
            let target = "exit_table_\(UUID().uuidString.prefix(8).lowercased())"
            setup.cleanup.dropDatabase(target)
            let outcome = try await setup.pgbackd(["restore", id, "--database", fixture.name, "--target-db", target, "--config", failing])
            // The table says the database the failed restore created is dropped again.
            let left = try await setup.query("select count(*) from pg_database where datname = '\(target)'")
            #expect(left == "0", "row 70: the failed restore left its target database \(target) behind")
            return outcome
        },

        ExitCodeScenario(72, "pg_dump of an older major version in bin_dir", fragments: ["9.6", "postgres.bin_dir"]) { setup in
            let fixture = try await setup.fixture()
            let bin = "\(setup.directory)/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            for tool in ["pg_dumpall", "pg_restore", "psql"] {
                try FileManager.default.createSymbolicLink(atPath: "\(bin)/\(tool)", withDestinationPath: "\(setup.postgres.binDirectory)/\(tool)")
            }
            try writeExecutable("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n[ \"$1\" = --version ] || exit 1\n", to: "\(bin)/pg_dump")
            let config = try setup.write(setup.fileTOML(databases: [fixture.name], binDirectory: bin))
            return try await setup.pgbackd(["backup", "--config", config])
        },

        ExitCodeScenario(73, "restore into a database that has a table, without --force", fragments: ["--force"]) { setup in
            let fixture = try await setup.fixture()
            let config = try setup.write(setup.fileTOML(databases: [fixture.name]))
            _ = try await setup.backup(config: config)
            let target = try await DaylogFixture.emptyDatabase(setup.postgres)
            setup.cleanup.dropDatabase(target)
            _ = try await setup.query("create table already_here (i int)", database: target)
            let outcome = try await setup.pgbackd(["restore", "latest", "--database", fixture.name, "--target-db", target, "--config", config])
            #expect(outcome.stderr.contains(target), "row 73: the message should name the target database \(target): \(outcome.stderr)")
            let kept = try await setup.query("select count(*) from pg_class where relname = 'already_here'", database: target)
            #expect(kept == "1", "row 73: the refused restore must leave the target as it was")
            return outcome
        },

        ExitCodeScenario(74, "S3 endpoint where nothing listens (127.0.0.1:9)", fragments: ["127.0.0.1:9"]) { setup in
            let config = try setup.write(setup.s3TOML(endpoint: "http://127.0.0.1:9", bucket: "exit-table", accessKeyID: "AKIAEXITTABLE", secret: setup.password))
            return try await setup.pgbackd(["list", "--config", config])
        },

        ExitCodeScenario(74, "drill whose drill.staging_dir does not exist", fragments: ["drill.staging_dir"]) { setup in
            let fixture = try await setup.fixture()
            let staging = "\(setup.directory)/no-such-staging-dir"
            let config = try setup.write(setup.fileTOML(databases: [fixture.name], staging: staging))
            _ = try await setup.backup(config: config)
            return try await setup.pgbackd(["drill", "--config", config])
        },

        ExitCodeScenario(75, "run while another daemon holds the repository lock", fragments: ["lock"]) { setup in
            let state = "\(setup.directory)/state", spool = "\(setup.directory)/spool"
            try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
            let config = try setup.write(setup.fileTOML(extra: """
                [daemon]
                state_dir = "\(state)"
                stop_timeout_seconds = 3
                [wal]
                spool_dir = "\(spool)"
                rescan_seconds = 1
                """))
            let log = "\(setup.directory)/daemon.log"
            let first = try launchDaemon(config: config, log: log)
            defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
            let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
            // "daemon starting" is logged after the lock is taken (RunCommand); polling with a
            // second `run` could take the lock itself when it wins the race.
            let holding = try await eventually(attempts: 300) { logText().contains("daemon starting") || !first.isRunning }
            try #require(holding && first.isRunning, "row 75: the first daemon did not start; log: \(logText())")
            let second = try await setup.pgbackd(["run", "--config", config])
            #expect(second.stderr.contains("pid \(first.processIdentifier)"), "row 75: the message should name the holder's pid \(first.processIdentifier): \(second.stderr)")
            kill(first.processIdentifier, SIGTERM)
            let stopped = try await offPool { () -> Int32 in
                first.waitUntilExit()
                return first.terminationStatus
            }
            #expect(stopped == 0, "row 75: the first daemon did not stop cleanly on SIGTERM (\(stopped)); log: \(logText())")
            return second
        },

        ExitCodeScenario(76, "S3 bucket that does not exist", needsS3: true, fragments: ["no-such-bucket-exit-table"]) { setup in
            let s3 = try TestServices.requireS3()
            let config = try setup.write(BackupHarness.s3TOML(setup.postgres, s3, prefix: "exit-table", databases: ["postgres"], bucket: "no-such-bucket-exit-table"))
            var outcome = try await setup.pgbackd(["list", "--config", config])
            outcome.secrets.append(s3.secretAccessKey)
            return outcome
        },

        ExitCodeScenario(77, "wrong S3 secret access key", needsS3: true, fragments: ["S3"]) { setup in
            let s3 = try TestServices.requireS3()
            let wrong = "wrong-secret-\(UUID().uuidString.prefix(8))"
            let config = try setup.write(BackupHarness.s3TOML(setup.postgres, s3, prefix: "exit-table", databases: ["postgres"], secret: wrong))
            var outcome = try await setup.pgbackd(["list", "--config", config])
            outcome.secrets += [wrong, s3.secretAccessKey]
            return outcome
        },

        ExitCodeScenario(77, "wrong database password (scram-sha-256, PGPASSFILE)", fragments: ["password"]) { setup in
            // PasswordRole edits the shared pg_hba.conf under the lock every such test takes.
            let role = try await PasswordRole.create(setup.postgres)
            do {
                let wrong = "wrong-\(UUID().uuidString.prefix(12))"
                let passfile = try role.passfile(in: setup.directory, password: wrong)
                let config = try setup.write(setup.fileTOML(conninfo: "host=127.0.0.1 port=\(setup.postgres.port) user=\(role.name) dbname=postgres", databases: ["postgres"]))
                var outcome = try await setup.pgbackd(["backup", "--config", config], environment: ["PGPASSFILE": passfile])
                #expect(outcome.stderr.contains(role.name), "row 77: the message should name the role \(role.name): \(outcome.stderr)")
                outcome.secrets += [role.password, wrong]
                await role.drop()
                return outcome
            } catch {
                await role.drop()
                throw error
            }
        },

        ExitCodeScenario(78, "malformed TOML", fragments: ["pgbackd.toml", "line 1"]) { setup in
            let config = try setup.write("[repository\ntype = \"file\"\n[postgres]\nconninfo = \"host=127.0.0.1 password=\(setup.password)\"\n")
            return try await setup.pgbackd(["backup", "--config", config])
        },

        ExitCodeScenario(126, "wal-fetch of an archived WAL file that is not gzip", fragments: ["000000010000000000000007"]) { setup in
            let repository = "\(setup.directory)/repo"
            let directory = "\(repository)/exit/wal/00000001"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            // An old-style name (no SHA-256 in it): what wal-fetch still restores, here garbage.
            try Data(repeating: 0x5A, count: 4096).write(to: URL(fileURLWithPath: "\(directory)/000000010000000000000007.gz"))
            let config = try setup.write(setup.fileTOML(repository: repository))
            let target = "\(setup.directory)/RECOVERYXLOG"
            let outcome = try await setup.pgbackd(["wal-fetch", "000000010000000000000007", target, "--config", config])
            #expect(!FileManager.default.fileExists(atPath: target), "row 126: nothing may be written to %p")
            return outcome
        },
    ]
}

/// One way to reach one row of the table.
struct ExitCodeScenario: Sendable, CustomTestStringConvertible {
    let code: Int32
    let name: String
    let needsS3: Bool
    /// What stderr must contain for a non-zero code: the problem, named.
    let fragments: [String]
    let run: @Sendable (ScenarioSetup) async throws -> ScenarioOutcome

    init(_ code: Int32, _ name: String, needsS3: Bool = false, fragments: [String] = [],
         run: @escaping @Sendable (ScenarioSetup) async throws -> ScenarioOutcome) {
        self.code = code
        self.name = name
        self.needsS3 = needsS3
        self.fragments = fragments
        self.run = run
    }

    var testDescription: String { "\(code): \(name)" }
}

struct ScenarioOutcome: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
    /// Secrets the scenario put where pgbackd reads them; none may be printed.
    var secrets: [String] = []
}

/// What a scenario works with: the test PostgreSQL, its own directory, and a password-like
/// canary that every configuration written through ``fileTOML`` carries in its conninfo.
struct ScenarioSetup: Sendable {
    let postgres: TestServices.Postgres
    let cleanup: Cleanup
    let directory: String
    let password = "canary-\(UUID().uuidString.prefix(12))"

    func fileTOML(repository: String? = nil, conninfo: String? = nil, databases: [String] = [], binDirectory: String? = nil,
                  staging: String? = nil, extra: String = "") -> String {
        """
        [repository]
        type = "file"
        path = "\(repository ?? "\(directory)/repo")"
        stanza = "exit"
        [postgres]
        conninfo = "\(conninfo ?? "\(postgres.conninfo()) password=\(password)")"
        databases = [\(databases.map { "\"\($0)\"" }.joined(separator: ", "))]
        bin_dir = "\(binDirectory ?? postgres.binDirectory)"
        [drill]
        staging_dir = "\(staging ?? directory)"
        \(extra)
        \(TestServices.encryptionTOML)
        """
    }

    func s3TOML(endpoint: String, bucket: String, accessKeyID: String, secret: String) -> String {
        """
        [repository]
        type = "s3"
        stanza = "exit"
        [repository.s3]
        endpoint = "\(endpoint)"
        bucket = "\(bucket)"
        access_key_id = "\(accessKeyID)"
        secret_access_key = "\(secret)"
        [postgres]
        conninfo = "\(postgres.conninfo()) password=\(password)"
        bin_dir = "\(postgres.binDirectory)"
        \(TestServices.encryptionTOML)
        """
    }

    func write(_ toml: String, name: String = "pgbackd.toml") throws -> String {
        let path = "\(directory)/\(name)"
        try toml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs the executable, bounded: `timeout` ends a hung run (exit 124, which no row documents).
    func pgbackd(_ arguments: [String], environment: [String: String] = [:]) async throws -> ScenarioOutcome {
        let result = try await shell("timeout", ["--kill-after=5", "90", pgbackdExecutable] + arguments, environment: environment)
        return ScenarioOutcome(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    /// A small Daylog database, dropped at the end.
    func fixture() async throws -> DaylogFixture {
        let fixture = try await DaylogFixture.create(postgres, entries: 20)
        cleanup.dropDatabase(fixture.name)
        return fixture
    }

    /// Takes a backup that must succeed and returns its id.
    func backup(config: String) async throws -> String {
        let result = try await pgbackd(["backup", "--json", "--config", config])
        try #require(result.status == 0, "the backup a scenario needs failed (\(result.status)): \(result.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return try #require(summary?["backup_id"] as? String, "no backup_id in \(result.stdout)")
    }

    func files(named name: String, under root: String) throws -> [String] {
        let relatives = try FileManager.default.subpathsOfDirectory(atPath: root)
        return relatives.filter { ($0 as NSString).lastPathComponent == name }.map { "\(root)/\($0)" }
    }

    /// Runs SQL as the test superuser and returns the first column of the first row.
    @discardableResult
    func query(_ sql: String, database: String = "postgres", conninfo: String? = nil) async throws -> String? {
        let connection = try await PostgresConnection.connect(conninfo: conninfo ?? postgres.conninfo(database: database), logger: Logger(label: "test"))
        return try await connection.query(sql).scalar
    }
}

/// The codes of the table under "## Exit codes" in docs/operations.md.
enum DocumentedExitCodes {
    static var path: String {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.path != "/" && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
            directory = directory.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("docs/operations.md").path
    }

    struct TableError: Error, CustomStringConvertible {
        var description: String
    }

    static func read() throws -> Set<Int32> {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var inSection = false, codes: [Int32] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") {
                if inSection { break }
                inSection = line.trimmingCharacters(in: .whitespaces) == "## Exit codes"
                continue
            }
            guard inSection, line.hasPrefix("|") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > 1, let code = Int32(cells[1]) else { continue }
            codes.append(code)
        }
        guard !codes.isEmpty else { throw TableError(description: "no exit code table under \"## Exit codes\" in \(path)") }
        let duplicates = Dictionary(grouping: codes, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        guard duplicates.isEmpty else { throw TableError(description: "\(path): exit codes listed twice: \(duplicates)") }
        return Set(codes)
    }
}
