import Foundation
import PostgresClient

/// A user's `[[checks.sql]]`: a query that must return no rows; the first rows are the evidence.
struct UserSQLCheck {
    static let sampleLimit = 100

    let connection: PostgresConnection
    let check: ChecksConfiguration.SQLCheck

    func run() async throws -> CheckResult {
        let name = "sql:\(check.name)"
        do {
            // Read only, and one statement (the extended protocol refuses more): a check can
            // look, never change. The query runs as written, so comments, CTEs and a trailing
            // semicolon are fine.
            try await connection.query("begin transaction read only")
            let result = try await connection.sample(check.query, limit: Self.sampleLimit)
            try await connection.query("rollback")
            let rows = result.rows.map { row in
                Dictionary(zip(result.columns, row).map { ($0, $1 ?? "NULL") }, uniquingKeysWith: { first, _ in first })
            }
            return CheckResult(name: name, passed: result.total == 0,
                               summary: result.total == 0 ? "returned no rows" : "returned \(result.total) row(s)",
                               figures: ["rows": result.total], evidence: rows)
        } catch let error as PostgresError where error.code == .queryFailed {
            _ = try? await connection.query("rollback")
            return CheckResult(name: name, passed: false, summary: "the query failed: \(error.description)", evidence: [["query": check.query]])
        }
    }
}
