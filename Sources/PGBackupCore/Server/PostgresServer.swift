import Foundation
import Logging
import PostgresClient

/// A PostgreSQL server pgbackd works on (the one backed up, a drill's, a restore's target): its
/// identity, its databases and the client programs that match it.
struct PostgresServer {
    let conninfo: Conninfo
    let connection: PostgresConnection
    let configuration: PostgresConfiguration
    let info: ServerInfo

    static func connect(_ configuration: PostgresConfiguration, logger: Logger) async throws -> PostgresServer {
        let conninfo = try Conninfo(configuration.conninfo)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(conninfo: configuration.conninfo, logger: logger)
        } catch let error as PostgresError where error.code == .authenticationFailed {
            throw BackupError(.insufficientPrivilege, message: "PostgreSQL refused the login with \(configuration.conninfoSetting) \"\(redacted(conninfo))\" (\(error.message)); fix the user or the password (PGPASSFILE, mode 0600), the pg_hba.conf entry, or GRANT CONNECT on the database")
        } catch let error as PostgresError {
            throw BackupError(.databaseUnreachable, message: "cannot connect to PostgreSQL with \(configuration.conninfoSetting) \"\(redacted(conninfo))\" (\(error.message)); check that the server runs and \(configuration.conninfoSetting)")
        }
        let version = try await connection.query("select version()").scalar ?? ""
        let systemIdentifier: String
        do {
            systemIdentifier = try await connection.query("select system_identifier::text from pg_control_system()").scalar ?? ""
        } catch let error as PostgresError where error.sqlState == "42501" {
            throw BackupError(.insufficientPrivilege, message: "the role cannot read pg_control_system(); connect as a superuser or grant EXECUTE on pg_control_system() to the backup role")
        }
        let info = ServerInfo(versionNumber: connection.serverVersionNumber, version: version, systemIdentifier: systemIdentifier, timeline: nil)
        return PostgresServer(conninfo: conninfo, connection: connection, configuration: configuration, info: info)
    }

    /// A session on another database of the same server, as the same role.
    func connect(database: String, logger: Logger) async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(conninfo: conninfo.with(database: database), logger: logger)
        } catch let error as PostgresError {
            throw BackupError(error.code == .authenticationFailed ? .insufficientPrivilege : .databaseUnreachable,
                              message: "cannot connect to database \"\(database)\" with \(configuration.conninfoSetting) (\(error.message))")
        }
    }

    /// The conninfo without its password, for messages.
    static func redacted(_ conninfo: Conninfo) -> String {
        conninfo.settings.filter { $0.key != "password" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// The databases to back up: the requested ones (each must exist), else the configured ones,
    /// else every database that accepts connections, templates excluded.
    func databases(requested: [String]) async throws -> [String] {
        let available = try await connection.query("select datname from pg_database where datallowconn and not datistemplate order by 1").rows.compactMap { $0[0] }
        let wanted = requested.isEmpty ? configuration.databases : requested
        if wanted.isEmpty { return available }
        for name in wanted where !available.contains(name) {
            throw BackupError(.databaseNotFound, message: "database \"\(name)\" does not exist on the server or does not accept connections; the server has: \(available.joined(separator: ", "))")
        }
        return wanted
    }

    /// The path of a program (pg_dump, pg_dumpall, pg_restore, psql, pg_basebackup) for this
    /// server: of its major, or a newer one where that works (``PostgresInstalls``).
    func tool(_ name: String) async throws -> String {
        try await PostgresInstalls.program(name, forServerMajor: info.versionNumber / 10_000, configured: configuration.binDirectory,
                                           setting: configuration.binDirectorySetting)
    }

    /// Environment for a child program connecting to `database`: the conninfo's settings as
    /// PG* variables, so no password reaches an argument list.
    func childEnvironment(database: String?) -> [String: String] {
        var environment = conninfo.environment()
        if let database { environment["PGDATABASE"] = database }
        return environment
    }
}
