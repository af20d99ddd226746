import Foundation
import Logging
import PostgresClient

/// `[[checks.content_size]]` rules and `[[checks.sql]]` queries against the live databases:
/// a rule or query that names nothing real would fail every drill, so `check` reports it as the
/// configuration error it is, with the key to fix.
struct CheckRulesValidation {
    let checks: ChecksConfiguration
    let file: String

    /// - Parameter sessions: one session per database that will be backed up.
    func run(sessions: [(database: String, connection: PostgresConnection)]) async throws -> [ConfigurationError] {
        let databases = sessions.map(\.database)
        var problems: [ConfigurationError] = []
        for (index, rule) in checks.contentSize.enumerated() {
            let key = "checks.content_size[\(index + 1)]"
            if let database = rule.database, !databases.contains(database) {
                problems.append(ConfigurationError(.invalidValue, file: file, key: "\(key).database", message: "database \"\(database)\" is not backed up (backed up: \(databases.joined(separator: ", ")))"))
                continue
            }
            let parts = rule.table.split(separator: ".", maxSplits: 1).map(String.init)
            var tableFound = false
            var columnFound = false
            for (database, connection) in sessions where rule.database == nil || rule.database == database {
                let row = try await connection.query("""
                    select a.attnum is not null
                    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                    left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = $3 and a.attnum > 0 and not a.attisdropped
                    where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p', 'm', 'f', 'v')
                    """, [parts[0], parts.count > 1 ? parts[1] : "", rule.column]).rows.first
                guard let row else { continue }
                tableFound = true
                columnFound = columnFound || row[0] == "t"
            }
            let scope = rule.database.map { "database \"\($0)\"" } ?? "any backed-up database (\(databases.joined(separator: ", ")))"
            if !tableFound {
                problems.append(ConfigurationError(.invalidValue, file: file, key: "\(key).table", message: "no table \(rule.table) in \(scope); write it as \"schema.table\""))
            } else if !columnFound {
                problems.append(ConfigurationError(.invalidValue, file: file, key: "\(key).column", message: "table \(rule.table) has no column \(rule.column)"))
            }
        }
        for (index, check) in checks.sql.enumerated() {
            let key = "checks.sql[\(index + 1)]"
            if let database = check.database, !databases.contains(database) {
                problems.append(ConfigurationError(.invalidValue, file: file, key: "\(key).database", message: "database \"\(database)\" is not backed up (backed up: \(databases.joined(separator: ", ")))"))
                continue
            }
            for (database, connection) in sessions where check.database == nil || check.database == database {
                // Planned, not run: the plan resolves every table, column and function it names.
                do {
                    try await connection.query("begin transaction read only")
                    _ = try await connection.sample("explain \(check.query)", limit: 0)
                    try await connection.query("rollback")
                } catch let error as PostgresError where error.code == .queryFailed {
                    _ = try? await connection.query("rollback")
                    problems.append(ConfigurationError(.invalidValue, file: file, key: "\(key).query", message: "check \"\(check.name)\" fails in database \"\(database)\": \(error.message)"))
                }
            }
        }
        return problems
    }
}
