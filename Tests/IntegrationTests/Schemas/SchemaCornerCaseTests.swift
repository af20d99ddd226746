import Foundation
import ObjectStorage
@testable import PGBackupCore
import Testing

/// Real schemas with corner cases (partitioning, odd keys, quoted names, search_path settings,
/// row-level security, inheritance, extensions, large objects), each in a database of its own:
/// backed up, drilled, restored and compared with the source, and drilled again with injected
/// orphans and oversize rows that the report must name row by row.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct SchemaCornerCaseTests {
    // MARK: - Clean schemas

    @Test(arguments: SchemaCase.all)
    func cleanSchemaDrillsGreenAndRestoresEqualToTheSource(_ schema: SchemaCase) async throws {
        try await SchemaHarness.withDatabase(schema, faulty: false) { db in
            let manifest = try await db.backup()
            let report = try await db.drill()
            #expect(report.passed, "\(schema.id): the drill of the clean database is RED: \(Self.failures(report))")
            let checks = report.checks + report.databases.flatMap(\.checks)
            #expect(Set(checks.map(\.name)).isSuperset(of: ["artifacts", "restore", "referential", "row-counts", "objects"]),
                    "\(schema.id): checks run: \(checks.map(\.name))")
            for check in checks {
                #expect(check.passed, "\(schema.id): check \(check.name) failed on the clean database: \(check.summary); evidence: \(check.evidence)")
            }

            let target = "\(db.name) restored"
            try await db.restore(backup: manifest.backupId, into: target)
            try await expectContentsEqual(schema, db, target: target)
            try await expectDatabasePropertiesRestored(schema, db, target: target)
        }
    }

    /// Tables (count and digest each), large objects and the schema-only dump.
    func expectContentsEqual(_ schema: SchemaCase, _ db: SchemaDatabase, target: String) async throws {
        let source = try await SchemaHarness.tableFingerprints(db.postgres, database: db.name)
        let restored = try await SchemaHarness.tableFingerprints(db.postgres, database: target)
        #expect(!source.isEmpty, "\(schema.id): no tables found in the source")
        #expect(source.keys.sorted() == restored.keys.sorted(), "\(schema.id): restored tables \(restored.keys.sorted()), source \(source.keys.sorted())")
        for (table, fingerprint) in source.sorted(by: { $0.key < $1.key }) {
            #expect(restored[table] == fingerprint, "\(schema.id): table \(table) restored as \(restored[table] ?? "(missing)") (count:md5), source \(fingerprint)")
        }
        let sourceObjects = try await SchemaHarness.largeObjects(db.postgres, database: db.name)
        let restoredObjects = try await SchemaHarness.largeObjects(db.postgres, database: target)
        #expect(restoredObjects == sourceObjects, "\(schema.id): large objects restored as \(restoredObjects) (count:md5), source \(sourceObjects)")

        let sourceSchema = try await SchemaHarness.schemaText(db.postgres, database: db.name)
        let restoredSchema = try await SchemaHarness.schemaText(db.postgres, database: target)
        if sourceSchema != restoredSchema {
            let diff = try await SchemaHarness.diff(sourceSchema, restoredSchema, labels: ("source", "restored"))
            Issue.record("\(schema.id): pg_dump --schema-only differs between source and restore:\n\(diff)")
        }
    }

    /// Owner, ACL, comment and settings (per role) of the database itself, which a dump
    /// without --create does not hold: separate, so this known gap shows as its own failures.
    func expectDatabasePropertiesRestored(_ schema: SchemaCase, _ db: SchemaDatabase, target: String) async throws {
        let source = try await SchemaHarness.databaseProperties(db.postgres, database: db.name)
        let restored = try await SchemaHarness.databaseProperties(db.postgres, database: target)
        let label = "\(schema.id): database-level properties not restored"
        #expect(restored.owner == source.owner, "\(label): owner \(restored.owner), source \(source.owner)")
        #expect(restored.acl == source.acl, "\(label): datacl \(restored.acl.isEmpty ? "(default)" : restored.acl), source \(source.acl.isEmpty ? "(default)" : source.acl)")
        #expect(restored.comment == source.comment, "\(label): comment \(restored.comment.isEmpty ? "(none)" : restored.comment), source \(source.comment.isEmpty ? "(none)" : source.comment)")
        #expect(restored.settings == source.settings, "\(label): pg_db_role_setting \(restored.settings), source \(source.settings)")
    }

    // MARK: - Injected faults

    @Test(arguments: SchemaCase.all)
    func injectedFaultsFailTheDrillNamingEveryBadRow(_ schema: SchemaCase) async throws {
        #expect(schema.orphans.count < ReferentialCheck.sampleLimit && schema.oversize.count < ContentSizeCheck.sampleLimit)
        #expect(Dictionary(grouping: schema.orphans, by: \.constraint).values.allSatisfy { $0.count <= DrillReportText.rowsPerGroup })
        try await SchemaHarness.withDatabase(schema, faulty: true) { db in
            let manifest = try await db.backup()
            let report = try await db.drill()
            #expect(!report.passed, "\(schema.id): the drill of the faulty database is GREEN")

            let inMemory = Self.evidence(report)
            let stored = try Self.evidence(json: try await db.repository.storage.getAll(
                key: db.repository.drillReportKey(backupId: manifest.backupId, drillId: report.drillId)))
            let encoded = try Self.evidence(json: try report.encoded())
            for (source, evidence) in [("in-memory report", inMemory), ("stored JSON report", stored), ("encoded JSON", encoded)] {
                expectNamed(schema, evidence, in: source)
            }
            // The text `pgbackd drill` prints names them too (at most 5 rows per constraint or
            // rule are shown, and no schema injects more).
            let text = DrillReportText.lines(report)
            for orphan in schema.orphans {
                #expect(text.contains { line in
                    line.contains("constraint=\(orphan.constraint) ") && (orphan.row.map { line.contains("row=\($0) ") } ?? line.contains("row="))
                        && (orphan.danglingKey.map { line.contains("dangling_key=\($0) ") } ?? true)
                }, "\(schema.id) (text report): orphan \(orphan) is not named:\n\(text.joined(separator: "\n"))")
            }
            for oversize in schema.oversize {
                #expect(text.contains { $0.contains("row=\(oversize.row) ") && $0.contains("rule=\(oversize.rule) ") },
                        "\(schema.id) (text report): oversize row \(oversize) is not named:\n\(text.joined(separator: "\n"))")
            }

            let referential = try #require(report.databases.first?.checks.first { $0.name == "referential" })
            #expect(!referential.passed, "\(schema.id): referential passed: \(referential.summary)")
            #expect(referential.figures["orphan_rows"] == Int64(schema.orphans.count),
                    "\(schema.id): referential counts \(referential.figures["orphan_rows"] ?? -1) orphan rows, \(schema.orphans.count) were injected: \(referential.summary); evidence: \(referential.evidence)")
            // Orphans are data too: every row must come back, whatever pg_restore could not create.
            let rowCounts = try #require(report.databases.first?.checks.first { $0.name == "row-counts" })
            #expect(rowCounts.passed, "\(schema.id): row-counts of the faulty database: \(rowCounts.summary); evidence: \(rowCounts.evidence); restore: \(report.databases.first?.checks.first { $0.name == "restore" }?.evidence ?? [])")
            if !schema.oversize.isEmpty {
                let contentSize = try #require(report.databases.first?.checks.first { $0.name == "content-size" })
                #expect(!contentSize.passed)
                #expect(contentSize.figures["rows_over_limit"] == Int64(schema.oversize.count),
                        "\(schema.id): content-size counts \(contentSize.figures["rows_over_limit"] ?? -1) rows over the limit, \(schema.oversize.count) were injected: \(contentSize.evidence)")
            }
        }
    }

    /// Every injected row named with its constraint, row and dangling key (or rule and row), and
    /// no row named that was not injected (a false orphan).
    func expectNamed(_ schema: SchemaCase, _ evidence: [String: [[String: String]]], in source: String) {
        let referential = evidence["referential"] ?? []
        for orphan in schema.orphans {
            #expect(referential.contains { Self.matches($0, orphan) },
                    "\(schema.id) (\(source)): orphan \(orphan) is not named; evidence of \(orphan.constraint): \(referential.filter { $0["constraint"] == orphan.constraint })")
        }
        let unexpected = referential.filter { row in row["row"] != nil && !schema.orphans.contains { Self.matches(row, $0) } }
        #expect(unexpected.isEmpty, "\(schema.id) (\(source)): referential names rows that are no orphans: \(unexpected)")

        let contentSize = evidence["content-size"] ?? []
        for oversize in schema.oversize {
            #expect(contentSize.contains { $0["row"] == oversize.row && $0["rule"]?.hasPrefix(oversize.rule + " ") == true },
                    "\(schema.id) (\(source)): oversize row \(oversize) is not named; content-size evidence: \(contentSize)")
        }
    }

    static func matches(_ evidence: [String: String], _ orphan: ExpectedOrphan) -> Bool {
        evidence["constraint"] == orphan.constraint && evidence["row"] != nil
            && (orphan.row == nil || evidence["row"] == orphan.row)
            && (orphan.danglingKey == nil || evidence["dangling_key"] == orphan.danglingKey)
    }

    /// Check name → evidence, over every database of the report.
    static func evidence(_ report: DrillReport) -> [String: [[String: String]]] {
        var result: [String: [[String: String]]] = [:]
        for check in report.databases.flatMap(\.checks) { result[check.name, default: []] += check.evidence }
        return result
    }

    /// The same from a report's JSON, read without the production decoder.
    static func evidence(json bytes: [UInt8]) throws -> [String: [[String: String]]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], "the report is no JSON object")
        let databases = try #require(object["databases"] as? [[String: Any]], "no databases in the report JSON: \(object.keys.sorted())")
        var result: [String: [[String: String]]] = [:]
        for database in databases {
            for check in database["checks"] as? [[String: Any]] ?? [] {
                guard let name = check["name"] as? String else { continue }
                result[name, default: []] += check["evidence"] as? [[String: String]] ?? []
            }
        }
        return result
    }

    static func failures(_ report: DrillReport) -> String {
        report.failures.map { "\($0.database ?? "(backup)") \($0.check.name): \($0.check.summary); evidence: \($0.check.evidence)" }.joined(separator: " | ")
    }

    // MARK: - The CLI

    @Test func cliDrillOfAFaultySchemaExitsOneAndNamesTheRows() async throws {
        let schema = SchemaCase.keys
        try await SchemaHarness.withDatabase(schema, faulty: true) { db in
            _ = try await db.backup()
            let directory = try temporaryDirectory("corner-cli")
            db.cleanup.remove(directory)
            let config = "\(directory)/pgbackd.toml"
            try db.configurationText.write(toFile: config, atomically: true, encoding: .utf8)

            let text = try await shell(pgbackdExecutable, ["drill", "--config", config])
            #expect(text.status == 1, "pgbackd drill exited \(text.status): \(text.stderr)")
            let lines = text.stdout.split(separator: "\n")
            #expect(text.stdout.contains("FAILED"), "\(text.stdout)")
            for orphan in schema.orphans {
                let named = lines.contains { line in
                    line.contains("constraint=\(orphan.constraint) ") && (orphan.row.map { line.contains("row=\($0) ") } ?? line.contains("row="))
                        && (orphan.danglingKey.map { line.contains("dangling_key=\($0) ") } ?? true)
                }
                #expect(named, "pgbackd drill (text) does not name \(orphan) (it prints at most 12 evidence lines per check):\n\(text.stdout)")
            }

            let json = try await shell(pgbackdExecutable, ["drill", "--config", config, "--json"])
            #expect(json.status == 1, "pgbackd drill --json exited \(json.status): \(json.stderr)")
            let evidence = try Self.evidence(json: Array(json.stdout.utf8))
            expectNamed(schema, evidence, in: "pgbackd drill --json")
        }
    }
}
