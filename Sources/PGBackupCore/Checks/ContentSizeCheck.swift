import PostgresClient

/// `[[checks.content_size]]` rules: rows whose column exceeds a size, biggest first, by primary key.
struct ContentSizeCheck {
    static let sampleLimit = 10

    let connection: PostgresConnection
    let rules: [ChecksConfiguration.ContentSizeRule]

    func run(database: String) async throws -> CheckResult? {
        var applicable: [(rule: ChecksConfiguration.ContentSizeRule, table: String, measure: String)] = []
        var evidence: [[String: String]] = []
        for rule in rules where rule.database == nil || rule.database == database {
            let parts = rule.table.split(separator: ".", maxSplits: 1).map(String.init)
            let found = try await connection.query("""
                select format('%I.%I', n.nspname, c.relname), a.atttypid::regtype::text
                from pg_class c join pg_namespace n on n.oid = c.relnamespace
                left join pg_attribute a on a.attrelid = c.oid and a.attname = $3 and a.attnum > 0 and not a.attisdropped
                where n.nspname = $1 and c.relname = $2
                """, [parts[0], parts[1], rule.column]).rows.first
            guard let found, let table = found[0] else { continue }
            guard let type = found[1] else {
                evidence.append(["rule": "\(rule.table).\(rule.column)", "problem": "table \(rule.table) has no column \(rule.column): fix the [[checks.content_size]] rule"])
                continue
            }
            let column = "c.\(quoteIdentifier(rule.column))"
            // octet_length takes text or bytea; other types (jsonb) are measured as their text form.
            let operand = ["bytea", "text", "character varying", "character"].contains(type) || rule.measure == .pgColumnSize ? column : "\(column)::text"
            applicable.append((rule, table, "\(rule.measure.rawValue)(\(operand))"))
        }
        guard !applicable.isEmpty || !evidence.isEmpty else { return nil }

        var offending: Int64 = 0
        for (rule, table, measure) in applicable {
            // One scan: the window count sees every offending row before the limit applies.
            let primaryKey = try await primaryKeyColumns(of: table, connection)
            let rows = try await connection.query("""
                select \(renderColumns(primaryKey, alias: "c")), \(measure) as bytes, count(*) over () from \(table) c
                where \(measure) > \(rule.maxBytes) order by bytes desc limit \(Self.sampleLimit)
                """).rows
            guard let first = rows.first else { continue }
            offending += Int64(first[2] ?? "0") ?? 0
            evidence += rows.map { ["rule": "\(rule.table).\(rule.column) <= \(rule.maxBytes) (\(rule.measure.rawValue))", "row": $0[0] ?? "", "bytes": $0[1] ?? ""] }
        }
        let ruleNames = applicable.map { "\($0.rule.table).\($0.rule.column) <= \($0.rule.maxBytes) B" }.joined(separator: ", ")
        return CheckResult(name: "content-size", passed: evidence.isEmpty,
                           summary: offending == 0 ? "no row over its limit (\(ruleNames))" : "\(offending) row(s) over their limit (\(ruleNames))",
                           figures: ["rules": Int64(applicable.count), "rows_over_limit": offending], evidence: evidence)
    }
}
