import Foundation
import PostgresClient

/// Every foreign key of the backed-up database, checked in the restored one: orphan rows counted
/// by an anti-join (multi-column keys; MATCH SIMPLE rows with a NULL in the key are exempt), with
/// samples, and the set of constraints compared with the manifest's. The anti-join runs from
/// the manifest's list, so a constraint pg_restore could not create still has its orphans found.
struct ReferentialCheck {
    static let sampleLimit = 10

    let connection: PostgresConnection
    let expected: [ForeignKey]

    func run() async throws -> CheckResult {
        let restored = try await SnapshotCatalog.foreignKeys(connection)
        let expectedSet = Set(expected.map(Self.identity))
        let restoredSet = Set(restored.map(Self.identity))
        var evidence: [[String: String]] = []
        for missing in expected where !restoredSet.contains(Self.identity(missing)) {
            evidence.append(["constraint": missing.name, "table": missing.table, "problem": "missing from the restore (pg_restore did not create it)", "definition": missing.definition])
        }
        for extra in restored where !expectedSet.contains(Self.identity(extra)) {
            evidence.append(["constraint": extra.name, "table": extra.table, "problem": "not in the backup's manifest", "definition": extra.definition])
        }
        let constraintProblems = evidence.count

        var orphanRows: Int64 = 0
        var keysWithOrphans = 0
        for key in expected {
            let (count, samples) = try await orphans(of: key)
            guard count > 0 else { continue }
            orphanRows += count
            keysWithOrphans += 1
            evidence.append(["constraint": key.name, "table": key.table, "problem": "\(count) orphan row(s) referencing \(key.referencedTable) (\(key.referencedColumns.joined(separator: ", ")))"])
            evidence += samples.map { ["constraint": key.name, "table": key.table, "row": $0.row, "dangling_key": $0.dangling] }
        }
        let passed = evidence.isEmpty
        var summary = "\(expected.count) foreign keys"
        if passed {
            summary += " restored, no orphan rows"
        } else {
            if orphanRows > 0 { summary += "; \(orphanRows) orphan row(s) under \(keysWithOrphans) constraint(s)" }
            if constraintProblems > 0 { summary += "; \(constraintProblems) constraint(s) differ from the manifest" }
        }
        return CheckResult(name: "referential", passed: passed, summary: summary,
                           figures: ["foreign_keys": Int64(expected.count), "orphan_rows": orphanRows, "constraints_differing": Int64(constraintProblems)],
                           evidence: evidence)
    }

    static func identity(_ key: ForeignKey) -> String { "\(key.table)|\(key.name)|\(key.definition)" }

    /// The anti-join for one key. MATCH SIMPLE and PARTIAL exempt a row with any NULL in the
    /// key; MATCH FULL only one whose key is all NULL (a partly NULL key is itself a violation).
    static func orphanPredicate(_ key: ForeignKey) -> String {
        let childColumns = key.columns.map { "c.\(quoteIdentifier($0))" }
        let nullExemption = key.matchType == "f"
            ? "not (" + childColumns.map { "\($0) is null" }.joined(separator: " and ") + ")"
            : childColumns.map { "\($0) is not null" }.joined(separator: " and ")
        let join = zip(key.columns, key.referencedColumns).map { "p.\(quoteIdentifier($1)) = c.\(quoteIdentifier($0))" }.joined(separator: " and ")
        return "\(nullExemption) and not exists (select 1 from \(key.quotedReferencedTable) p where \(join))"
    }

    private func orphans(of key: ForeignKey) async throws -> (Int64, [(row: String, dangling: String)]) {
        let predicate = Self.orphanPredicate(key)
        let count = Int64(try await connection.query("select count(*) from \(key.quotedTable) c where \(predicate)").scalar ?? "0") ?? 0
        guard count > 0 else { return (0, []) }
        let primaryKey = try await primaryKeyColumns(of: key.quotedTable, connection)
        let samples = try await connection.query("""
            select \(renderColumns(primaryKey, alias: "c")), \(renderColumns(key.columns, alias: "c"))
            from \(key.quotedTable) c where \(predicate) order by 1 limit \(Self.sampleLimit)
            """).rows.map { (row: $0[0] ?? "", dangling: $0[1] ?? "") }
        return (count, samples)
    }
}
