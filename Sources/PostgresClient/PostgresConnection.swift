import CLibPQ
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Logging
import OffloadedWork

/// One libpq connection. It owns its `PGconn` and closes it on deinit; every libpq call runs on
/// the connection's own serial queue, off Swift's cooperative pool, one at a time.
public final class PostgresConnection: Sendable {
    /// Only touched on `queue` (and in deinit, when nobody else can).
    nonisolated(unsafe) private let handle: OpaquePointer
    private let queue: DispatchQueue
    private let logger: Logger

    /// The server's `server_version_num`, e.g. 150018.
    public let serverVersionNumber: Int

    /// The server's major version, e.g. 15.
    public var serverMajorVersion: Int { serverVersionNumber / 10_000 }

    private init(handle: OpaquePointer, queue: DispatchQueue, logger: Logger) {
        self.handle = handle
        self.queue = queue
        self.logger = logger
        self.serverVersionNumber = Int(PQserverVersion(handle))
    }

    deinit {
        PQfinish(handle)
    }

    /// Connects with a libpq conninfo string (`host=… port=… dbname=…` or a `postgresql://` URI).
    /// Passwords come from `PGPASSFILE`/`~/.pgpass` or the environment, as with psql.
    public static func connect(conninfo: String, logger: Logger) async throws -> PostgresConnection {
        let queue = DispatchQueue(label: "pgbackd.libpq")
        let handle = try await offload(on: queue) { () throws -> OpaqueHandle in
            guard let conn = PQconnectdb(conninfo) else {
                throw PostgresError(.connectionFailed, message: "libpq could not allocate a connection")
            }
            guard PQstatus(conn) == CONNECTION_OK else {
                let message = errorText(PQerrorMessage(conn))
                PQfinish(conn)
                throw PostgresError(isAuthenticationFailure(message) ? .authenticationFailed : .connectionFailed, message: message)
            }
            return OpaqueHandle(pointer: conn)
        }
        return PostgresConnection(handle: handle.pointer, queue: queue, logger: logger)
    }

    /// Runs a statement with text parameters (`$1`, `$2`, …), or without parameters any number of
    /// statements, and returns the (last) rows as text.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) async throws -> QueryResult {
        logger.trace("postgres query", metadata: ["postgres.query": "\(sql)"])
        return try await offload(on: queue) { [self] in
            try Self.execute(handle, sql, parameters)
        }
    }

    /// Runs exactly one statement, as written (comments, CTEs, a trailing semicolon), and reads
    /// its rows one at a time: the first `limit` are kept, the rest only counted, so a query that
    /// returns millions of rows costs no memory. The extended protocol refuses several statements.
    public func sample(_ sql: String, limit: Int) async throws -> (columns: [String], rows: [[String?]], total: Int64) {
        logger.trace("postgres query", metadata: ["postgres.query": "\(sql)"])
        return try await offload(on: queue) { [self] in
            try Self.sampleRows(handle, sql, limit: limit)
        }
    }

    private static func sampleRows(_ conn: OpaquePointer, _ sql: String, limit: Int) throws -> (columns: [String], rows: [[String?]], total: Int64) {
        guard PQsendQueryParams(conn, sql, 0, nil, nil, nil, nil, 0) == 1 else {
            throw PostgresError(PQstatus(conn) == CONNECTION_OK ? .queryFailed : .connectionLost, message: errorText(PQerrorMessage(conn)), query: sql)
        }
        _ = PQsetSingleRowMode(conn)
        var columns: [String] = []
        var rows: [[String?]] = []
        var total: Int64 = 0
        var failure: PostgresError?
        // Every result must be read, the failed one too, before the connection takes another query.
        while let result = PQgetResult(conn) {
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_SINGLE_TUPLE:
                total += 1
                if columns.isEmpty { columns = (0..<Int(PQnfields(result))).map { String(cString: PQfname(result, Int32($0))) } }
                if rows.count < limit {
                    rows.append((0..<Int(PQnfields(result))).map { column in
                        PQgetisnull(result, 0, Int32(column)) == 1 ? nil : String(cString: PQgetvalue(result, 0, Int32(column)))
                    })
                }
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
                if columns.isEmpty { columns = (0..<Int(PQnfields(result))).map { String(cString: PQfname(result, Int32($0))) } }
            default:
                if failure == nil { failure = error(from: result, conn, sql) }
            }
        }
        if let failure { throw failure }
        return (columns, rows, total)
    }

    private static func error(from result: OpaquePointer, _ conn: OpaquePointer, _ sql: String) -> PostgresError {
        let field = { (code: Character) -> String? in
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let lost = PQstatus(conn) != CONNECTION_OK
        return PostgresError(lost ? .connectionLost : .queryFailed,
                             message: field("M") ?? errorText(PQresultErrorMessage(result)),
                             sqlState: field("C"), detail: field("D"), hint: field("H"), query: sql)
    }

    private static func execute(_ conn: OpaquePointer, _ sql: String, _ parameters: [String?]) throws -> QueryResult {
        let cStrings = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { cStrings.forEach { free($0) } }
        // Without parameters the simple query protocol runs, which also takes several statements.
        let result: OpaquePointer? = parameters.isEmpty ? PQexec(conn, sql) : cStrings.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in
                PQexecParams(conn, sql, Int32(parameters.count), nil, values.baseAddress, nil, nil, 0)
            }
        }
        guard let result else {
            throw PostgresError(PQstatus(conn) == CONNECTION_OK ? .queryFailed : .connectionLost,
                                message: errorText(PQerrorMessage(conn)), query: sql)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
            break
        default:
            throw error(from: result, conn, sql)
        }
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            rows.append((0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1 ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            })
        }
        let affected = String(cString: PQcmdTuples(result))
        return QueryResult(columns: columns, rows: rows, affectedRows: Int(affected))
    }
}

/// Carries a `PGconn*` from the connect closure back to the caller, before an owner exists.
private struct OpaqueHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// libpq gives no SQLSTATE for a refused connection, only its text; these are the server's
/// (28000, 28P01, 42501 at connect) and libpq's own words for it, in PostgreSQL 14 to 18.
func isAuthenticationFailure(_ message: String) -> Bool {
    ["authentication failed for user", "no password supplied", "pg_hba.conf rejects connection", "no pg_hba.conf entry for",
     "permission denied for database", "is not permitted to log in", "password authentication failed"].contains { message.contains($0) }
        || (message.contains("role \"") && message.contains("\" does not exist"))
}

func errorText(_ text: UnsafePointer<CChar>?) -> String {
    guard let text else { return "unknown libpq error" }
    return String(cString: text).trimmingWhitespace()
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        return String(scalars)
    }
}
