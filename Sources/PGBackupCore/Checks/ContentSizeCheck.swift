import PostgresClient

/// `[[checks.content_size]]` rules: rows whose column exceeds a size, biggest first, by primary key.
struct ContentSizeCheck {
    static let sampleLimit = 10

    let connection: PostgresConnection
    let rules: [ChecksConfiguration.ContentSizeRule]

    func run(database: String) async throws -> CheckResult? {
        var applicable: [(ChecksConfiguration.ContentSizeRule, String)] = []
        for rule in rules where rule.database == nil || rule.database == database {
            let parts = rule.table.split(separator: ".", maxSplits: 1).map(String.init)
            let quoted = try await connection.query("""
                select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = $1 and c.relname = $2
                """, [parts[0], parts[1]]).scalar
            if let quoted { applicable.append((rule, quoted)) }
        }
        guard !applicable.isEmpty else { return nil }

        var evidence: [[String: String]] = []
        var offending: Int64 = 0
        for (rule, table) in applicable {
            let measure = "\(rule.measure.rawValue)(c.\(quoteIdentifier(rule.column)))"
            let count = Int64(try await connection.query("select count(*) from \(table) c where \(measure) > \(rule.maxBytes)").scalar ?? "0") ?? 0
            guard count > 0 else { continue }
            offending += count
            let primaryKey = try await connection.query("""
                select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
                where i.indrelid = $1::regclass and i.indisprimary order by array_position(i.indkey, a.attnum)
                """, [table]).rows.compactMap { $0[0] }
            let rows = try await connection.query("""
                select \(renderColumns(primaryKey, alias: "c")), \(measure) from \(table) c where \(measure) > \(rule.maxBytes)
                order by 2 desc limit \(Self.sampleLimit)
                """).rows
            evidence += rows.map { ["rule": "\(rule.table).\(rule.column) <= \(rule.maxBytes) (\(rule.measure.rawValue))", "row": $0[0] ?? "", "bytes": $0[1] ?? ""] }
        }
        let ruleNames = applicable.map { "\($0.0.table).\($0.0.column) <= \($0.0.maxBytes) B" }.joined(separator: ", ")
        return CheckResult(name: "content-size", passed: offending == 0,
                           summary: offending == 0 ? "no row over its limit (\(ruleNames))" : "\(offending) row(s) over their limit (\(ruleNames))",
                           figures: ["rules": Int64(applicable.count), "rows_over_limit": offending], evidence: evidence)
    }
}
