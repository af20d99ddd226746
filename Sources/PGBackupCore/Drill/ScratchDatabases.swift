import Foundation
import Logging
import PostgresClient

/// Scratch databases for drills. Each is named `pgbackd_drill_…` and, while a drill uses it, its
/// session holds an advisory lock on the name. A scratch database whose lock anyone can take
/// belongs to a drill that died (SIGKILL, power loss) and is dropped by the next drill.
struct ScratchDatabases {
    static let prefix = "pgbackd_drill_"
    let connection: PostgresConnection
    let logger: Logger

    /// Creates a scratch database and takes its lock on this session.
    func create(drillId: String, index: Int) async throws -> String {
        let name = Self.prefix + drillId.lowercased().filter { $0.isLetter || $0.isNumber } + "_\(index)"
        try await lock(name, wait: true)
        try await connection.query("create database \(quoteIdentifier(name)) template template0")
        try await connection.query("comment on database \(quoteIdentifier(name)) is 'pgbackd drill \(drillId): dropped when the drill ends'")
        return name
    }

    func drop(_ name: String) async throws {
        try await connection.query("drop database if exists \(quoteIdentifier(name)) with (force)")
        try await connection.query("select pg_advisory_unlock(hashtext($1))", [name])
    }

    /// Drops every scratch database whose drill is gone. Returns their names.
    func dropStale() async throws -> [String] {
        let names = try await connection.query("select datname from pg_database where datname like 'pgbackd\\_drill\\_%' order by 1").rows.compactMap { $0[0] }
        var dropped: [String] = []
        for name in names where try await lock(name, wait: false) {
            logger.notice("dropping a scratch database left by an interrupted drill", metadata: ["drill.scratch": "\(name)"])
            try await drop(name)
            dropped.append(name)
        }
        return dropped
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
