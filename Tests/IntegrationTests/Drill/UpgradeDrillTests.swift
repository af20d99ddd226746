import Foundation
import Logging
import PostgresClient
@testable import PGBackupCore
import Testing

/// Upgrade drills: a logical backup of the test server's major restored into a throw-away
/// cluster of a newer one (the majors scripts/install-pg-majors.sh installs, named by
/// `PGBACKD_PG<major>_BIN`). Clean data passes; a view on a statistics column the newer major
/// removed is a named failure, not a generic pg_restore error.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct UpgradeDrillTests {
    /// Majors an upgrade drill is run into from the test server's major (15 → 17 and 18, 17 → 18, …).
    static let targets = [17, 18]

    /// Views that restore on the source but not on the target: pg_stat_bgwriter lost
    /// checkpoints_timed in 17 (it moved to pg_stat_checkpointer), pg_stat_wal lost wal_write in
    /// 18 (it moved to pg_stat_io).
    static func incompatibleViews(source: Int, target: Int) -> [(name: String, sql: String)] {
        var views: [(String, String)] = []
        if source < 17 && target >= 17 { views.append(("old_checkpoints", "select checkpoints_timed from pg_stat_bgwriter")) }
        if source >= 14 && source < 18 && target >= 18 { views.append(("old_wal_writes", "select wal_write from pg_stat_wal")) }
        return views
    }

    func binDirectory(_ major: Int) throws -> String? {
        guard let path = TestServices.environment["PGBACKD_PG\(major)_BIN"] else {
            if TestServices.isCI { throw TestServices.MissingService(name: "PostgreSQL \(major) programs", variables: "PGBACKD_PG\(major)_BIN (scripts/install-pg-majors.sh)") }
            return nil
        }
        return path
    }

    @Test(arguments: targets)
    func aBackupRestoresIntoTheNextMajorAndIncompatibleObjectsAreNamed(target: Int) async throws {
        let postgres = try TestServices.requirePostgres()
        let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test"))
        let source = admin.serverMajorVersion
        guard target > source else { return }  // nothing to upgrade to from this major
        guard let bin = try binDirectory(target) else { return }
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 200)
            cleanup.dropDatabase(fixture.name)
            try await fixture.execute("create extension if not exists citext; alter table auth_user alter column email type citext")
            let directory = try temporaryDirectory("upgrade")
            cleanup.remove(directory)
            let toml = BackupHarness.fileTOML(postgres, repository: "\(directory)/repo", databases: [fixture.name], extra: """
                staging_dir = "\(directory)"
                bin_dir = "\(bin)"
                """.replacingOccurrences(of: "staging_dir = \"\(directory)\"\n", with: ""))
            let configuration = try Configuration.parse(toml, file: "\(directory)/pgbackd.toml")
            let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)
            let drill = Drill(configuration: configuration, repository: repository, logger: BackupHarness.logger)

            _ = try await LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()
            let clean = try await drill.run(.init(scratchMajor: target))
            #expect(clean.passed, "PostgreSQL \(source) → \(target): \(clean.failures.map { "\($0.check.name): \($0.check.summary) \($0.check.evidence)" })")
            #expect(clean.servers.map { ($0.source / 10_000, $0.scratch / 10_000) } ?? (0, 0) == (source, target))
            #expect(DrillReportText.lines(clean).first?.contains("into PostgreSQL \(source).") == true, "\(DrillReportText.lines(clean).first ?? "")")
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/pgbackd-scratch-\(clean.drillId)"), "the scratch cluster is removed")

            let views = Self.incompatibleViews(source: source, target: target)
            for view in views { try await fixture.execute("create view public.\(view.name) as \(view.sql)") }
            _ = try await LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()
            let broken = try await drill.run(.init(scratchMajor: target))
            let restore = try #require(broken.databases.first?.checks.first { $0.name == "restore" })
            #expect(!restore.passed && !broken.passed)
            #expect(restore.summary.contains("do not restore on PostgreSQL \(target)"), "\(restore.summary)")
            for view in views {
                #expect(restore.evidence.contains { $0["object"] == "CREATE VIEW public.\(view.name)" && $0["error"]?.contains("does not exist") == true },
                        "PostgreSQL \(source) → \(target): \(view.name) is not named: \(restore.evidence)")
            }
        }
    }
}
