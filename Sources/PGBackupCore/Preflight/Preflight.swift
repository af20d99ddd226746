import Encryption
import Foundation
import Logging
import ObjectStorage
import PostgresClient

/// `pgbackd check`: everything a backup needs, tried without taking one, each problem with its fix.
public struct Preflight: Sendable {
    public struct Result: Sendable, Encodable {
        public var check: String
        public var passed: Bool
        /// Passed, but something will not work as the operator may expect (a drill host that
        /// lacks an extension): printed as `warn`, exit 0.
        public var warning = false
        /// What was found, or what is wrong and how to fix it.
        public var detail: String
        /// Kept for the exit code; not encoded.
        public var error: (any Error)? = nil

        enum CodingKeys: String, CodingKey { case check, passed, warning, detail }
    }

    let configuration: Configuration
    let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async -> [Result] {
        var results = [Result(check: "configuration", passed: true, detail: "\(configuration.file) is valid")]
        results += configuration.warnings.map { Result(check: "configuration", passed: true, warning: true, detail: $0) }
        var systemIdentifier: String?
        var extensionsInUse: [String: [String]] = [:]
        do {
            let server = try await PostgresServer.connect(configuration.postgres, logger: logger)
            systemIdentifier = server.info.systemIdentifier
            results.append(Result(check: "database", passed: true, detail: "connected: \(server.info.version.split(separator: ",").first ?? ""), system identifier \(server.info.systemIdentifier)"))
            var sessions: [(database: String, connection: PostgresConnection)] = []
            do {
                let databases = try await server.databases(requested: [])
                results.append(Result(check: "databases", passed: true, detail: "will back up: \(databases.joined(separator: ", "))"))
                for database in databases { sessions.append((database, try await server.connect(database: database, logger: logger))) }
            } catch {
                results.append(Result(check: "databases", passed: false, detail: "\(error)", error: error))
            }
            results.append(await privileges(server, sessions: sessions))
            for (database, connection) in sessions {
                for name in (try? await SnapshotCatalog.extensions(connection).keys.sorted()) ?? [] { extensionsInUse[name, default: []].append(database) }
            }
            if !configuration.checks.contentSize.isEmpty || !configuration.checks.sql.isEmpty {
                results.append(await rules(sessions))
            }
            for tool in ["pg_dump", "pg_dumpall", "pg_restore"] {
                do {
                    let path = try await server.tool(tool)
                    results.append(Result(check: tool, passed: true, detail: "\(path) matches the server's major version"))
                } catch {
                    results.append(Result(check: tool, passed: false, detail: "\(error)", error: error))
                }
            }
        } catch {
            results.append(Result(check: "database", passed: false, detail: "\(error)", error: error))
        }
        results += await drillServer(extensionsInUse: extensionsInUse)

        do {
            let repository = try await RepositoryFactory.open(configuration, logger: logger)
            let key = repository.layout.probeKey(UUID().uuidString)
            let probe = Array("pgbackd check \(Date())".utf8)
            try await repository.storage.put(key: key, bytes: probe)
            let readBack = try await repository.storage.getAll(key: key)
            try await repository.storage.delete(key: key)
            guard readBack == probe else {
                throw StorageError(.protocolError, key: key, message: "the repository returned different bytes than were written to \(key)")
            }
            results.append(Result(check: "repository", passed: true, detail: "\(RepositoryFactory.describe(configuration)) is writable and readable"))
            results.append(await encryption(repository))
            if let systemIdentifier {
                do {
                    try await repository.verifyMarker(systemIdentifier: systemIdentifier)
                    results.append(Result(check: "stanza", passed: true, detail: "stanza '\(repository.stanza)' belongs to this cluster (or is new)"))
                } catch {
                    results.append(Result(check: "stanza", passed: false, detail: "\(error)", error: error))
                }
            }
        } catch {
            results.append(Result(check: "repository", passed: false, detail: "\(RepositoryFactory.describe(configuration)): \(error)", error: error))
        }
        return results
    }

    /// Encrypted or not, under which key, and which old keys data keys still need.
    private func encryption(_ repository: Repository) async -> Result {
        guard let current = repository.encryptionKeys.first else {
            return Result(check: "encryption", passed: true, detail: "off: backups and WAL are stored unencrypted ([encryption] in docs/operations.md)")
        }
        do {
            let census = try await KeyRotation(repository: repository).census()
            let old = census.filter { $0.key != current.fingerprint }.sorted { $0.key < $1.key }
            guard old.isEmpty else {
                let list = old.map { "\($0.value) under \($0.key)" }.joined(separator: ", ")
                return Result(check: "encryption", passed: true, warning: true,
                              detail: "on, repository key \(current.fingerprint); data keys still wrapped under old keys: \(list): keep those key files in encryption.old_key_files until 'pgbackd rekey' has run")
            }
            return Result(check: "encryption", passed: true, detail: "on, repository key \(current.fingerprint); every data key (\(census[current.fingerprint] ?? 0)) is wrapped under it: old key files are no longer needed")
        } catch {
            return Result(check: "encryption", passed: false, detail: "\(error)", error: error)
        }
    }

    /// The probes `backup` runs before it stores anything, run the same way.
    private func privileges(_ server: PostgresServer, sessions: [(database: String, connection: PostgresConnection)]) async -> Result {
        do {
            let privileges = try await BackupPrivileges.probe(server)
            for (database, connection) in sessions {
                try await BackupPrivileges.check(database: database, connection: connection)
            }
            let passwords = privileges.canReadRolePasswords
                ? "role passwords included"
                : "roles backed up WITHOUT passwords (role \(privileges.role) cannot read pg_authid; connect as a superuser to include them)"
            return Result(check: "privileges", passed: true, detail: "role \(privileges.role) can read every table, sequence and large object; \(passwords)")
        } catch {
            return Result(check: "privileges", passed: false, detail: "\(error)", error: error)
        }
    }

    private func rules(_ sessions: [(database: String, connection: PostgresConnection)]) async -> Result {
        do {
            let problems = try await CheckRulesValidation(checks: configuration.checks, file: configuration.file).run(sessions: sessions)
            guard let first = problems.first else {
                return Result(check: "checks", passed: true, detail: "\(configuration.checks.contentSize.count) content-size rule(s) and \(configuration.checks.sql.count) SQL check(s) name real tables and columns")
            }
            return Result(check: "checks", passed: false, detail: problems.map(\.description).joined(separator: "; "), error: first)
        } catch {
            return Result(check: "checks", passed: false, detail: "\(error)", error: error)
        }
    }

    /// A drill creates scratch databases on `drill.conninfo` (default: the backed-up server),
    /// which needs every extension the backed-up databases use.
    private func drillServer(extensionsInUse: [String: [String]]) async -> [Result] {
        if let major = configuration.drill.scratchMajor {
            // The throw-away cluster is made at drill time; what it needs is its programs.
            do {
                var found: [String] = []
                for program in ["initdb", "pg_ctl", "pg_restore"] {
                    found.append(try await PostgresInstalls.program(program, forServerMajor: major, configured: configuration.drill.binDirectory, setting: "drill.bin_dir"))
                }
                return [Result(check: "drill", passed: true, detail: "upgrade drills into a throw-away PostgreSQL \(major) cluster with \(found.joined(separator: ", "))")]
            } catch {
                return [Result(check: "drill", passed: false, detail: "\(error)", error: error)]
            }
        }
        let postgres = Drill.drillServerConfiguration(configuration)
        do {
            let server = try await PostgresServer.connect(postgres, logger: logger)
            let row = try await server.connection.query("select current_user::text, rolsuper or rolcreatedb from pg_catalog.pg_roles where rolname = current_user").rows.first
            guard row?[1] == "t" else {
                let role = row?[0] ?? "the role"
                let error = BackupError(.insufficientPrivilege, message: "role \(role) on \(postgres.conninfoSetting) cannot create the drill's scratch databases: ALTER ROLE \(role) CREATEDB, or set drill.conninfo to a role that can")
                return [Result(check: "drill", passed: false, detail: "\(error)", error: error)]
            }
            let pgRestore = try await server.tool("pg_restore")
            var results = [Result(check: "drill", passed: true, detail: "role \(row?[0] ?? "") may create scratch databases; \(pgRestore) matches the server")]
            let host = try await DrillHostExtensions.read(server.connection)
            let missing = host.missing(extensionsInUse.mapValues { _ in "" })
            if !missing.isEmpty {
                let named = missing.map { "\($0) (package \(DrillHostExtensions.package(for: $0, major: host.major)), used by \(extensionsInUse[$0, default: []].joined(separator: ", ")))" }
                results.append(Result(check: "extensions", passed: true, warning: true,
                                      detail: "the drill server lacks \(named.joined(separator: "; ")): drills of those databases will say they cannot be verified on this host until it is installed"))
            }
            return results
        } catch {
            return [Result(check: "drill", passed: false, detail: "\(error)", error: error)]
        }
    }
}
