import PostgresClient

/// One named check of a drill: passed or not, its figures, and the rows that prove a failure.
public struct CheckResult: Codable, Sendable, Equatable {
    /// `artifacts`, `restore`, `referential`, `content-size`, `row-counts`, `objects`, `sql:<name>`.
    public var name: String
    public var passed: Bool
    /// One sentence: what was checked and what was found.
    public var summary: String
    /// Counts that describe the outcome, e.g. `foreign_keys`, `orphan_rows`.
    public var figures: [String: Int64]
    /// Up to a few rows each failure is shown by (a primary key, a size, a count pair…).
    public var evidence: [[String: String]]
    /// The drill host could not verify this (an extension it lacks): not passed, and not a
    /// finding about the backup either. Absent (nil) for every other check.
    public var unverifiable: Bool? = nil

    public init(name: String, passed: Bool, summary: String, figures: [String: Int64] = [:], evidence: [[String: String]] = [],
                unverifiable: Bool? = nil) {
        self.name = name
        self.passed = passed
        self.summary = summary
        self.figures = figures
        self.evidence = evidence
        self.unverifiable = unverifiable
    }
}

/// SQL identifier quoting for names the server gave us.
func quoteIdentifier(_ name: String) -> String {
    "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
}

/// A `concat_ws` expression that renders several columns of alias `alias` as one text value;
/// a NULL shows as `NULL` (a partly NULL key is the evidence under MATCH FULL).
func renderColumns(_ columns: [String], alias: String) -> String {
    columns.isEmpty ? "\(alias).ctid::pg_catalog.text"
        : "pg_catalog.concat_ws(', ', " + columns.map { "coalesce(\(alias).\(quoteIdentifier($0))::pg_catalog.text, 'NULL')" }.joined(separator: ", ") + ")"
}

/// The primary key's columns of a (quoted) table, in key order; empty when it has none, and
/// evidence then shows rows by `ctid`.
func primaryKeyColumns(of quotedTable: String, _ connection: PostgresConnection) async throws -> [String] {
    try await connection.query("""
        select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
        where i.indrelid = $1::regclass and i.indisprimary order by array_position(i.indkey, a.attnum)
        """, [quotedTable]).rows.compactMap { $0[0] }
}
