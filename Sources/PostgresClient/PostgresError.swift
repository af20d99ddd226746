/// A libpq failure: what kind (``Code``), the server's SQLSTATE when there is one, and its text.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        /// Could not connect: server down, wrong host/port, authentication refused.
        case connectionFailed
        /// The server rejected a statement.
        case queryFailed
        /// The server refused who we are: wrong password, no pg_hba.conf entry, no such role, no
        /// CONNECT privilege. Told apart from an unreachable server because the fix differs.
        case authenticationFailed
        /// The connection broke while in use.
        case connectionLost
        /// The conninfo string itself does not parse.
        case invalidConninfo
        public var description: String { rawValue }
    }

    public var code: Code
    /// The five-character SQLSTATE, e.g. `42P01` for an undefined table.
    public var sqlState: String?
    /// libpq's primary message, trimmed; libpq never puts the password into it.
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The statement, when the failure came from one.
    public var query: String?

    public init(_ code: Code, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil, query: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.query = query
    }

    public var description: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += ". \(detail)" }
        if let hint { text += " Hint: \(hint)" }
        return text
    }
}
