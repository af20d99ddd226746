import Foundation
@testable import PGBackupCore
import Testing

/// `[drill] amcheck = true`: a logical drill also runs pg_amcheck over the scratch database,
/// before the data checks, without disturbing them (amcheck goes into pg_catalog, where the
/// `objects` census does not count it).
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct DrillAmcheckTests {
    @Test func aLogicalDrillRunsAmcheckWhenAsked() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 300)
            cleanup.dropDatabase(fixture.name)
            let repositoryPath = try temporaryDirectory("drill-amcheck-repo")
            cleanup.remove(repositoryPath)
            let configuration = try BackupHarness.fileConfiguration(postgres, repository: repositoryPath, databases: [fixture.name], extra: "amcheck = true")
            #expect(configuration.drill.amcheck)
            let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)
            _ = try await LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()
            let report = try await Drill(configuration: configuration, repository: repository, logger: BackupHarness.logger).run(.init())
            #expect(report.passed, "\(DrillReportText.lines(report).joined(separator: "\n"))")
            let names = report.databases.first?.checks.map(\.name) ?? []
            let amcheck = try #require(report.databases.first?.checks.first { $0.name == "amcheck" }, "\(names)")
            #expect(amcheck.passed && amcheck.figures["skipped"] == nil, "\(amcheck)")
            #expect(names.firstIndex(of: "amcheck")! < names.firstIndex(of: "referential")!, "amcheck runs before the data checks: \(names)")
        }
    }
}
