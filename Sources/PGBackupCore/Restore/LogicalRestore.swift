import Foundation
import Logging
import PostgresClient

/// Why a restore refused or failed.
public struct RestoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        case targetNotEmpty
        case databaseNotInBackup
        case pgRestoreFailed
        /// Point-in-time restore was asked of a logical backup.
        case notABaseBackup
        /// The recovery target cannot be used (unparseable, or before every base backup).
        case invalidTarget
        /// The database's owner, comment, privileges or settings could not be restored.
        case propertiesFailed
        /// The base backup's files could not be laid out (tar, ownership).
        case extractFailed
        public var description: String { rawValue }
    }
    public var code: Code
    public var message: String
    public var description: String { message }
}

/// `pgbackd restore ID --database NAME --target-db NEW`: one database from a logical backup into
/// a database on the configured server.
public struct LogicalRestore: Sendable {
    public struct Request: Sendable {
        public var backup: String
        public var database: String
        public var target: String
        public var jobs: Int?
        public var force = false
        public var globals = false
        public var noOwner = false

        public init(backup: String, database: String, target: String, jobs: Int? = nil, force: Bool = false, globals: Bool = false, noOwner: Bool = false) {
            self.backup = backup
            self.database = database
            self.target = target
            self.jobs = jobs
            self.force = force
            self.globals = globals
            self.noOwner = noOwner
        }
    }

    public struct Result: Sendable, Encodable {
        public var backupId: String
        public var database: String
        public var target: String
        public var rawBytes: Int64
        public var seconds: Double
        public var globalsErrors: [String]
        /// Settings of other roles in the database that the restoring role may not make, and
        /// settings of roles this server lacks (with --no-owner): said, not silently dropped.
        public var settingsNotRestored: [String] = []
    }

    let configuration: Configuration
    let repository: Repository
    let logger: Logger

    public init(configuration: Configuration, repository: Repository, logger: Logger) {
        self.configuration = configuration
        self.repository = repository
        self.logger = logger
    }

    public func run(_ request: Request) async throws -> Result {
        try await BackupLease(repository: repository, purpose: "restore", logger: logger).withLease(resolving: request.backup) { backupId in
            var request = request
            request.backup = backupId
            return try await runLeased(request)
        }
    }

    private func runLeased(_ request: Request) async throws -> Result {
        let manifest = try await repository.manifest(request.backup)
        let artifact = try Self.dump(of: request.database, in: manifest)
        let server = try await PostgresServer.connect(configuration.postgres, logger: logger)
        // Everything that can refuse the restore does so before anything is created: the
        // target's state, then the dump itself, verified while it is staged.
        let target = try await inspectTarget(request, server: server)
        let restorer = DumpRestorer(repository: repository, server: server, stagingDirectory: configuration.drill.stagingDirectory,
                                    jobs: request.jobs ?? configuration.drill.jobs, logger: logger)
        let staged = try await restorer.stage(artifact)
        defer { staged.remove() }

        var globalsErrors: [String] = []
        if request.globals, let globals = manifest.artifacts.first(where: { $0.content == .globals }) {
            globalsErrors = try await restorer.restoreGlobals(globals).errors
        }
        if target != .empty { try await createTarget(request, dropFirst: target == .notEmpty, server: server) }
        do {
            let outcome = try await restorer.restore(staged, into: request.target, options: .init(noOwner: request.noOwner, exitOnError: true))
            guard outcome.succeeded else {
                throw RestoreError(code: .pgRestoreFailed, message: "pg_restore into \"\(request.target)\" failed (\(outcome.status)): \(outcome.errors.prefix(3).joined(separator: " / "))")
            }
            let snapshot = manifest.databases.first { $0.name == request.database }
            var notRestored: [String] = []
            if let properties = snapshot?.properties {
                notRestored = try await apply(properties, to: request.target, noOwner: request.noOwner, server: server)
            }
            return Result(backupId: manifest.backupId, database: request.database, target: request.target,
                          rawBytes: outcome.rawBytes, seconds: outcome.seconds, globalsErrors: globalsErrors, settingsNotRestored: notRestored)
        } catch {
            await removeFailedTarget(request.target, createdHere: target != .empty, server: server)
            throw error
        }
    }

    /// What a failed restore leaves: nothing, when it made the database itself.
    private func removeFailedTarget(_ name: String, createdHere: Bool, server: PostgresServer) async {
        guard createdHere else {
            logger.error("restore failed; the target database existed before and keeps what pg_restore put into it", metadata: ["restore.target": "\(name)"])
            return
        }
        do {
            try await server.connection.query(try await statement("drop database if exists %I with (force)", name, server: server))
            logger.notice("restore failed; dropped the database it had created", metadata: ["restore.target": "\(name)"])
        } catch {
            logger.error("restore failed, and dropping the database it created failed too", metadata: ["restore.target": "\(name)", "restore.error": "\(error)"])
        }
    }

    /// The source database's owner, comment, privileges and settings, onto the target. They are
    /// part of what an application needs (its `search_path`), so one that fails fails the restore,
    /// except another role's settings the restoring role may not make, which are reported.
    /// - Returns: what was left out (see ``Result/settingsNotRestored``).
    private func apply(_ properties: DatabaseProperties, to target: String, noOwner: Bool, server: PostgresServer) async throws -> [String] {
        // Without --no-owner every role must exist, as pg_restore itself requires; with it (a
        // server without the source's roles) settings of missing roles are left out, and said so.
        let parts: DatabaseProperties.Parts = noOwner ? [.comment, .settings, .connectionLimit] : .all
        let roles = noOwner ? Set(try await server.connection.query("select rolname::text from pg_catalog.pg_roles").rows.compactMap { $0[0] }) : nil
        let (statements, skipped) = try await properties.statements(for: target, parts: parts, existingRoles: roles, server.connection)
        var notRestored = skipped
        for sql in statements {
            do {
                try await server.connection.query(sql)
            } catch let error as PostgresError where error.sqlState == "42501" && sql.hasPrefix("alter role") {
                // Another role's settings need superuser (or CREATEROLE); the database is still
                // the source's in everything that makes it work.
                notRestored.append("\(sql) (\(error.message): restore as a superuser to include it)")
            } catch let error as PostgresError {
                let fix = error.message.contains("does not exist") ? " (restore the roles first with --globals, or pass --no-owner)"
                    : error.sqlState == "42501" ? " (restore as a superuser, or pass --no-owner to leave owner and privileges out)" : ""
                throw RestoreError(code: .propertiesFailed, message: "restoring the properties of database \"\(target)\" failed at \"\(sql)\": \(error.message)\(fix)")
            }
        }
        for entry in notRestored {
            logger.warning("a database setting was not restored", metadata: ["restore.target": "\(target)", "restore.skipped": "\(entry)"])
        }
        return notRestored
    }

    private enum TargetState { case missing, empty, notEmpty }

    /// Refuses a non-empty target unless `force`.
    private func inspectTarget(_ request: Request, server: PostgresServer) async throws -> TargetState {
        let exists = try await server.connection.query("select 1 from pg_database where datname = $1", [request.target]).rows.count == 1
        guard exists else { return .missing }
        let target = try await server.connect(database: request.target, logger: logger)
        let relations = Int(try await target.query("select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where \(SnapshotCatalog.userSchemas)").scalar ?? "0") ?? 0
        guard relations > 0 else { return .empty }
        guard request.force else {
            throw RestoreError(code: .targetNotEmpty, message: "database \"\(request.target)\" is not empty (\(relations) relations): choose another --target-db, or pass --force to drop and recreate it")
        }
        return .notEmpty
    }

    private func createTarget(_ request: Request, dropFirst: Bool, server: PostgresServer) async throws {
        if dropFirst {
            logger.warning("dropping the non-empty target database (--force)", metadata: ["restore.target": "\(request.target)"])
            try await server.connection.query(try await statement("drop database %I with (force)", request.target, server: server))
        }
        try await server.connection.query(try await statement("create database %I template template0", request.target, server: server))
    }

    static func dump(of database: String, in manifest: Manifest) throws -> Artifact {
        guard let artifact = manifest.artifacts.first(where: { $0.content == .databaseDump && $0.database == database }) else {
            let held = manifest.artifacts.compactMap(\.database)
            throw RestoreError(code: .databaseNotInBackup, message: "backup \(manifest.backupId) holds no database \"\(database)\"; it holds: \(held.joined(separator: ", "))")
        }
        return artifact
    }

    /// Quotes an identifier with the server's own `format('%I')`.
    private func statement(_ format: String, _ identifier: String, server: PostgresServer) async throws -> String {
        try await server.connection.query("select format($1::text, $2::text)", [format, identifier]).scalar ?? ""
    }
}
