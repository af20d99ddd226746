/// A statement's rows, every value in PostgreSQL's text form (nil for NULL).
public struct QueryResult: Sendable {
    public var columns: [String]
    public var rows: [[String?]]
    /// The row count of INSERT/UPDATE/DELETE, when the command reports one.
    public var affectedRows: Int?

    public init(columns: [String], rows: [[String?]], affectedRows: Int? = nil) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }

    /// The single value of a one-row, one-column result.
    public var scalar: String? { rows.first?.first ?? nil }

    /// Rows as dictionaries keyed by column name.
    public var namedRows: [[String: String?]] {
        rows.map { Dictionary(uniqueKeysWithValues: zip(columns, $0)) }
    }
}
