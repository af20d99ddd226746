import Foundation

/// `[drill]`: where restores and drills happen.
public struct DrillConfiguration: Sendable {
    /// Server for scratch databases. Default: `postgres.conninfo` (the backed-up server).
    public var conninfo: String?
    /// `pg_restore -j`. Default 2.
    public var jobs: Int
    /// Where dumps are staged for pg_restore, which needs a seekable file. Default `/var/tmp`.
    public var stagingDirectory: String
    /// `statement_timeout` for each check query, in seconds. Default 3600.
    public var checkTimeoutSeconds: Int
    /// Restores (all databases of a drill together) slower than this fail the drill's
    /// `restore-time` check: the recovery time objective slipped. Default: not checked.
    public var maxRestoreSeconds: Int?
    /// Drill logical backups in a throw-away cluster of this (newer) major, made with initdb
    /// under `staging_dir`: an upgrade drill. Default: none (scratch databases on `conninfo`).
    public var scratchMajor: Int?
    /// Where the programs of the drill server's major are (pg_restore; initdb and pg_ctl for
    /// `scratch_major`). Default: found among the installs (`/usr/lib/postgresql/<major>/bin`, …).
    public var binDirectory: String?
    /// pg_amcheck over each scratch database of a logical drill too (base drills always run it).
    /// Default false.
    public var amcheck: Bool
    /// How a logical drill's scratch database compresses TOAST values while pg_restore loads
    /// them: `lz4` (default) where the server has it, several times cheaper than pglz (the
    /// restore of a TOAST-heavy table is bound by that compression); `server` leaves the
    /// server's default. Values read back are the same either way; a drill whose checks measure
    /// stored sizes (a `pg_column_size` rule, an SQL check calling a size function) uses the
    /// server's default regardless, so those sizes are what production stores.
    public var toastCompression: ToastCompression

    public enum ToastCompression: String, Sendable {
        case lz4
        case server
    }

    init(_ reader: TOMLReader?) throws {
        conninfo = try reader?.string("conninfo")
        jobs = try reader?.int("jobs", in: 1...64, default: 2) ?? 2
        stagingDirectory = try reader?.string("staging_dir", default: "/var/tmp") ?? "/var/tmp"
        checkTimeoutSeconds = try reader?.int("check_timeout_seconds", in: 1...86_400, default: 3600) ?? 3600
        maxRestoreSeconds = try reader?.int("max_restore_seconds", in: 1...604_800)
        scratchMajor = try reader?.int("scratch_major", in: 10...99)
        binDirectory = try reader?.string("bin_dir")
        amcheck = try reader?.bool("amcheck", default: false) ?? false
        toastCompression = ToastCompression(rawValue: try reader?.oneOf("toast_compression", ["lz4", "server"], default: "lz4") ?? "lz4")!
        if let reader {
            guard stagingDirectory.hasPrefix("/") else {
                throw reader.error(.invalidValue, "staging_dir", "expected an absolute directory path, got \"\(stagingDirectory)\"")
            }
            if let binDirectory, !binDirectory.hasPrefix("/") {
                throw reader.error(.invalidValue, "bin_dir", "expected an absolute directory path, got \"\(binDirectory)\"")
            }
            if scratchMajor != nil, conninfo != nil {
                throw reader.error(.invalidValue, "scratch_major", "give either drill.conninfo (a server of your own) or drill.scratch_major (a throw-away cluster pgbackd makes), not both")
            }
            try reader.rejectUnknownKeys()
        }
    }
}

/// `[checks]`: the drill's configurable integrity checks.
public struct ChecksConfiguration: Sendable {
    public struct ContentSizeRule: Sendable, Equatable {
        /// `schema.table`; a bare name means `public`.
        public var table: String
        public var column: String
        public var maxBytes: Int64
        public enum Measure: String, Sendable { case pgColumnSize = "pg_column_size", octetLength = "octet_length" }
        /// `octet_length` (default: the bytes the application stored, as text for non-text
        /// types) or `pg_column_size` (the stored size, after TOAST compression: a 1.6 MB
        /// entry of repetitive JSON can be stored in 100 kB).
        public var measure: Measure
        /// Only for this database; default: every database that has the table.
        public var database: String?
    }

    public struct SQLCheck: Sendable, Equatable {
        public var name: String
        /// The database to run it in; default every backed-up database.
        public var database: String?
        /// Must return no rows; the first rows it returns are the evidence.
        public var query: String
    }

    public var contentSize: [ContentSizeRule]
    public var sql: [SQLCheck]

    init(_ reader: TOMLReader?) throws {
        guard let reader else {
            contentSize = []
            sql = []
            return
        }
        contentSize = try reader.tables("content_size").map { rule in
            let table = try rule.string("table") ?? ""
            let column = try rule.string("column") ?? ""
            guard !table.isEmpty else { throw rule.error(.missingKey, "table", "a content_size rule needs table = \"schema.table\"") }
            guard !column.isEmpty else { throw rule.error(.missingKey, "column", "a content_size rule needs column = \"...\"") }
            let max = try rule.int("max_bytes", in: 1...Int.max) ?? 0
            guard max > 0 else { throw rule.error(.missingKey, "max_bytes", "a content_size rule needs max_bytes (e.g. 1048576 for 1 MiB)") }
            let measure = ContentSizeRule.Measure(rawValue: try rule.oneOf("measure", ["octet_length", "pg_column_size"], default: "octet_length"))!
            let database = try rule.string("database")
            try rule.rejectUnknownKeys()
            return ContentSizeRule(table: table.contains(".") ? table : "public.\(table)", column: column, maxBytes: Int64(max), measure: measure, database: database)
        }
        sql = try reader.tables("sql").map { check in
            let name = try check.string("name") ?? ""
            let query = try check.string("query") ?? ""
            guard !name.isEmpty else { throw check.error(.missingKey, "name", "an sql check needs a name") }
            guard !query.isEmpty else { throw check.error(.missingKey, "query", "an sql check needs a query that returns no rows when all is well") }
            let database = try check.string("database")
            try check.rejectUnknownKeys()
            return SQLCheck(name: name, database: database, query: query)
        }
        let names = sql.map(\.name)
        if let duplicate = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw reader.error(.invalidValue, "sql", "two sql checks are named \"\(duplicate)\"; names must be unique")
        }
        try reader.rejectUnknownKeys()
    }
}
