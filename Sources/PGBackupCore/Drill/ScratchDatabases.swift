import Foundation
import Logging
import PostgresClient

/// Scratch databases for drills. Each is named `pgbackd_drill_…` and, while a drill uses it, its
/// session holds an advisory lock on the name. A scratch database whose lock anyone can take
/// belongs to a drill that died (SIGKILL, power loss) and is dropped by the next drill, unless
/// its drill kept it (`--keep`, marked in the database's comment): those stay until
/// `pgbackd drill --drop-kept`, and `--list-kept` shows them.
struct ScratchDatabases {
    static let prefix = "pgbackd_drill_"
    static let keptMarker = "kept by pgbackd drill --keep"
    let connection: PostgresConnection
    let logger: Logger

    /// Creates a scratch database and takes its lock on this session.
    func create(drillId: String, index: Int) async throws -> String {
        let name = Self.prefix + drillId.lowercased().filter { $0.isLetter || $0.isNumber } + "_\(index)"
        try await lock(name, wait: true)
        try await connection.query("create database \(quoteIdentifier(name)) template template0")
        try await connection.query("comment on database \(quoteIdentifier(name)) is 'pgbackd drill \(drillId): dropped when the drill ends'")
        logger.info("scratch database created", metadata: ["drill.scratch": "\(name)"])
        return name
    }

    /// Keeps a scratch database past its drill, and past the next drill's clean-up.
    func keep(_ name: String, drillId: String, backupId: String) async throws {
        let comment = "pgbackd drill \(drillId) of backup \(backupId): \(Self.keptMarker); drop with pgbackd drill --drop-kept"
        try await connection.query(try await connection.query("select pg_catalog.format('comment on database %I is %L', $1::text, $2::text)", [name, comment]).scalar ?? "")
        try await connection.query("select pg_advisory_unlock(hashtext($1))", [name])
    }

    func drop(_ name: String) async throws {
        try await connection.query("drop database if exists \(quoteIdentifier(name)) with (force)")
        try await connection.query("select pg_advisory_unlock(hashtext($1))", [name])
    }

    /// Makes this session's backend stop within a second once its client is gone: a drill
    /// killed mid-statement (CREATE DATABASE, a row count) would otherwise leave its backend
    /// running that statement to the end, holding the scratch database's lock, and the next drill
    /// would take the database for a running drill's.
    func watchClient() async throws {
        guard let version = Int(try await connection.query("select current_setting('server_version_num')").scalar ?? ""), version >= 140_000 else { return }
        try await connection.query("select pg_catalog.set_config('client_connection_check_interval', '1000', false)")
    }

    /// Drops every scratch database whose drill is gone and did not keep it. Returns their names.
    func dropStale() async throws -> [String] {
        var dropped: [String] = []
        for scratch in try await all() where !scratch.kept {
            guard try await lock(scratch.name, wait: false) else { continue }
            logger.notice("dropping a scratch database left by an interrupted drill", metadata: ["drill.scratch": "\(scratch.name)"])
            try await drop(scratch.name)
            dropped.append(scratch.name)
        }
        return dropped
    }

    /// Drops the kept scratch databases (none a running drill holds). Returns their names.
    func dropKept() async throws -> [String] {
        var dropped: [String] = []
        for scratch in try await all() where scratch.kept {
            guard try await lock(scratch.name, wait: false) else { continue }
            try await drop(scratch.name)
            dropped.append(scratch.name)
        }
        return dropped
    }

    func all() async throws -> [KeptScratchDatabase] {
        try await connection.query("""
            select datname::text, coalesce(pg_catalog.shobj_description(oid, 'pg_database'), ''), pg_catalog.pg_database_size(oid)::text
            from pg_catalog.pg_database where datname like 'pgbackd\\_drill\\_%' order by 1
            """).rows.compactMap { row in
            guard let name = row[0] else { return nil }
            let comment = row[1] ?? ""
            return KeptScratchDatabase(name: name, comment: comment, bytes: Int64(row[2] ?? "") ?? 0, kept: comment.contains(Self.keptMarker))
        }
    }

    @discardableResult
    private func lock(_ name: String, wait: Bool) async throws -> Bool {
        if wait {
            try await connection.query("select pg_advisory_lock(hashtext($1))", [name])
            return true
        }
        return try await connection.query("select pg_try_advisory_lock(hashtext($1))", [name]).scalar == "t"
    }
}

/// A scratch database on the drill server, for `pgbackd drill --list-kept`.
public struct KeptScratchDatabase: Sendable, Encodable {
    public var name: String
    /// Which drill made it, of which backup.
    public var comment: String
    public var bytes: Int64
    public var kept: Bool
}
