import PostgresClient

/// `[[checks.content_size]]` rules: rows whose column exceeds a size, biggest first, by primary key.
struct ContentSizeCheck {
    static let sampleLimit = 100

    let connection: PostgresConnection
    let rules: [ChecksConfiguration.ContentSizeRule]

    /// - Parameter tablesInBackup: every `schema.table` of every database in the backup (the
    ///   manifest's row counts): a rule without a `database` applies where its table is, and one
    ///   whose table is in no database at all names nothing real, which fails the check.
    func run(database: String, tablesInBackup: [String: Set<String>]) async throws -> CheckResult? {
        var applicable: [(rule: ChecksConfiguration.ContentSizeRule, table: String, measure: String)] = []
        var evidence: [[String: String]] = []
        var invalidRules: Int64 = 0
        for rule in rules where rule.database == nil || rule.database == database {
            let ruleName = Self.describe(rule)
            if rule.database == nil, tablesInBackup[database]?.contains(rule.table) != true,
               tablesInBackup.values.contains(where: { $0.contains(rule.table) }) {
                continue  // another database of the backup has the table
            }
            let parts = rule.table.split(separator: ".", maxSplits: 1).map(String.init)
            let found = try await connection.query("""
                select pg_catalog.format('%I.%I', n.nspname, c.relname), a.atttypid::pg_catalog.regtype::text
                from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = $3 and a.attnum > 0 and not a.attisdropped
                where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p', 'm', 'f', 'v')
                """, [parts[0], parts.count > 1 ? parts[1] : "", rule.column]).rows.first
            guard let found, let table = found[0] else {
                invalidRules += 1
                evidence.append(["rule": ruleName, "problem": "no table \(rule.table) in database \(database)\(rule.database == nil ? " or any other database of the backup" : ""): fix the [[checks.content_size]] rule"])
                continue
            }
            guard let type = found[1] else {
                invalidRules += 1
                evidence.append(["rule": ruleName, "problem": "table \(rule.table) has no column \(rule.column): fix the [[checks.content_size]] rule"])
                continue
            }
            let column = "c.\(quoteIdentifier(rule.column))"
            // octet_length takes text or bytea; other types (jsonb) are measured as their text form.
            let operand = ["bytea", "text", "character varying", "character"].contains(type) || rule.measure == .pgColumnSize ? column : "\(column)::pg_catalog.text"
            applicable.append((rule, table, "pg_catalog.\(rule.measure.rawValue)(\(operand))"))
        }
        guard !applicable.isEmpty || !evidence.isEmpty else { return nil }

        var offending: Int64 = 0
        for (rule, table, measure) in applicable {
            // One scan: the window count sees every offending row before the limit applies.
            let primaryKey = try await primaryKeyColumns(of: table, connection)
            let rows = try await connection.query("""
                select \(renderColumns(primaryKey, alias: "c")), \(measure) as bytes, pg_catalog.count(*) over () from \(table) c
                where \(measure) > \(rule.maxBytes) order by bytes desc limit \(Self.sampleLimit)
                """).rows
            guard let first = rows.first else { continue }
            let count = Int64(first[2] ?? "0") ?? 0
            offending += count
            let ruleName = Self.describe(rule)
            evidence.append(["rule": ruleName, "rows": String(count), "problem": "\(count) row(s) over \(rule.maxBytes) bytes"])
            evidence += rows.map { ["rule": ruleName, "row": $0[0] ?? "", "bytes": $0[1] ?? ""] }
        }
        let ruleNames = applicable.map { Self.describe($0.rule) }.joined(separator: ", ")
        var summary = offending == 0 ? "no row over its limit" : "\(offending) row(s) over their limit"
        if !ruleNames.isEmpty { summary += " (\(ruleNames))" }
        if invalidRules > 0 { summary += "; \(invalidRules) rule(s) name nothing in this database" }
        return CheckResult(name: "content-size", passed: evidence.isEmpty, summary: summary,
                           figures: ["rules": Int64(applicable.count), "rows_over_limit": offending, "rules_invalid": invalidRules],
                           evidence: evidence)
    }

    /// `public.journal_journalentry.content <= 1048576 B (octet_length)`: the report always says
    /// which size was measured, since the stored size of compressible content is much smaller.
    static func describe(_ rule: ChecksConfiguration.ContentSizeRule) -> String {
        "\(rule.table).\(rule.column) <= \(rule.maxBytes) B (\(rule.measure.rawValue))"
    }
}
