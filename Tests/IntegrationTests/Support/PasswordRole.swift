import Foundation
import Logging
import PostgresClient
import Synchronization
import Testing

/// A LOGIN role that must give its password (scram-sha-256), on the shared test cluster whose
/// pg_hba.conf trusts everyone else: for tests of non-superuser, password-authenticated
/// deployments. Its pg_hba.conf lines name the role alone, so other tests are untouched.
struct PasswordRole {
    let name: String
    let password: String
    let postgres: TestServices.Postgres

    /// pg_hba.conf is shared by every test of the process: one edit at a time.
    private static let hbaLock = Mutex(())

    static func create(_ postgres: TestServices.Postgres, attributes: String = "") async throws -> PasswordRole {
        let role = PasswordRole(name: "pgbackd_pw_\(UUID().uuidString.prefix(8).lowercased())", password: "pw-\(UUID().uuidString)", postgres: postgres)
        let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test"))
        try await admin.query("create role \(role.name) login password '\(role.password)' \(attributes)")
        try await role.editHBA(admin) { lines in
            ["host all \(role.name) 0.0.0.0/0 scram-sha-256", "host all \(role.name) ::/0 scram-sha-256", "local all \(role.name) scram-sha-256"] + lines
        }
        // The postmaster reloads asynchronously: wait until a session without the password is refused.
        let refused = try await eventually(attempts: 100) {
            do {
                _ = try await PostgresConnection.connect(conninfo: "host=\(postgres.host) port=\(postgres.port) user=\(role.name) dbname=postgres", logger: Logger(label: "test"))
                return false
            } catch let error as PostgresError {
                return error.code == .authenticationFailed
            }
        }
        try #require(refused, "pg_hba.conf did not start asking \(role.name) for a password")
        return role
    }

    /// A conninfo for the test's own sessions as this role (the password inline: tests only).
    func conninfo(database: String) -> String {
        "host=\(postgres.host) port=\(postgres.port) user=\(name) password=\(password) dbname=\(Conninfo.quote(database))"
    }

    /// A PGPASSFILE (mode 0600, as libpq insists) holding `password`.
    func passfile(in directory: String, password: String? = nil) throws -> String {
        let path = "\(directory)/pgpass-\(UUID().uuidString.prefix(6))"
        try "*:*:*:\(name):\(password ?? self.password)\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
        return path
    }

    /// Removes the role's pg_hba.conf lines and the role (and what it owns).
    func drop() async {
        guard let admin = try? await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test")) else { return }
        try? await editHBA(admin) { lines in lines.filter { !$0.contains(" \(name) ") } }
        for database in (try? await admin.query("select datname from pg_database where datallowconn").rows.compactMap { $0[0] }) ?? [] {
            if let session = try? await PostgresConnection.connect(conninfo: postgres.conninfo(database: database), logger: Logger(label: "test")) {
                _ = try? await session.query("drop owned by \(name) cascade")
            }
        }
        _ = try? await admin.query("drop role if exists \(name)")
    }

    private func editHBA(_ admin: PostgresConnection, _ edit: ([String]) -> [String]) async throws {
        let file = try #require(try await admin.query("show hba_file").scalar)
        try Self.hbaLock.withLock { _ in
            let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            // Written in place: the file keeps its owner (postgres) and mode.
            try edit(lines).joined(separator: "\n").write(toFile: file, atomically: false, encoding: .utf8)
        }
        try await admin.query("select pg_reload_conf()")
    }
}
