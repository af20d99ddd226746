import Foundation
import PostgresClient

/// A user's `[[checks.sql]]`: a query that must return no rows; the first rows are the evidence.
struct UserSQLCheck {
    static let sampleLimit = 10

    let connection: PostgresConnection
    let check: ChecksConfiguration.SQLCheck

    func run() async throws -> CheckResult {
        var query = check.query.trimmingCharacters(in: .whitespacesAndNewlines)
        while query.hasSuffix(";") { query.removeLast() }
        let name = "sql:\(check.name)"
        do {
            // Read only, and a subquery: a check can look, never change or run several statements.
            try await connection.query("begin transaction read only")
            let result = try await connection.query("select * from (\(query)) as check_rows limit \(Self.sampleLimit + 1)")
            try await connection.query("rollback")
            let rows = result.namedRows.prefix(Self.sampleLimit).map { $0.mapValues { $0 ?? "NULL" } }
            let count = result.rows.count
            return CheckResult(name: name, passed: count == 0,
                               summary: count == 0 ? "returned no rows" : "returned \(count > Self.sampleLimit ? "more than \(Self.sampleLimit)" : String(count)) row(s)",
                               figures: ["rows": Int64(count)], evidence: Array(rows))
        } catch let error as PostgresError where error.code == .queryFailed {
            _ = try? await connection.query("rollback")
            return CheckResult(name: name, passed: false, summary: "the query failed: \(error.description)", evidence: [["query": check.query]])
        }
    }
}
