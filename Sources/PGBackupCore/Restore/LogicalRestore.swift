import Foundation
import Logging
import PostgresClient

/// Why a restore refused or failed.
public struct RestoreError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public static let targetNotEmpty = Code(name: "targetNotEmpty")
        public static let databaseNotInBackup = Code(name: "databaseNotInBackup")
        public static let pgRestoreFailed = Code(name: "pgRestoreFailed")
        /// Point-in-time restore was asked of a logical backup.
        public static let notABaseBackup = Code(name: "notABaseBackup")
        /// The recovery target cannot be used (unparseable, or before every base backup).
        public static let invalidTarget = Code(name: "invalidTarget")
        /// The base backup's files could not be laid out (tar, ownership).
        public static let extractFailed = Code(name: "extractFailed")
        public var description: String { name }
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
        try await prepareTarget(request, server: server)
        let restorer = DumpRestorer(repository: repository, server: server, stagingDirectory: configuration.drill.stagingDirectory,
                                    jobs: request.jobs ?? configuration.drill.jobs, logger: logger)
        var globalsErrors: [String] = []
        if request.globals, let globals = manifest.artifacts.first(where: { $0.content == .globals }) {
            globalsErrors = try await restorer.restoreGlobals(globals).errors
        }
        let outcome = try await restorer.restore(artifact, into: request.target, options: .init(noOwner: request.noOwner, exitOnError: true))
        guard outcome.succeeded else {
            throw RestoreError(code: .pgRestoreFailed, message: "pg_restore into \"\(request.target)\" failed (\(outcome.status)): \(outcome.errors.prefix(3).joined(separator: " / "))")
        }
        return Result(backupId: manifest.backupId, database: request.database, target: request.target,
                      rawBytes: outcome.rawBytes, seconds: outcome.seconds, globalsErrors: globalsErrors)
    }

    static func dump(of database: String, in manifest: Manifest) throws -> Artifact {
        guard let artifact = manifest.artifacts.first(where: { $0.content == .databaseDump && $0.database == database }) else {
            let held = manifest.artifacts.compactMap(\.database)
            throw RestoreError(code: .databaseNotInBackup, message: "backup \(manifest.backupId) holds no database \"\(database)\"; it holds: \(held.joined(separator: ", "))")
        }
        return artifact
    }

    /// Creates the target, or refuses a non-empty one unless `force`, which drops and recreates it.
    private func prepareTarget(_ request: Request, server: PostgresServer) async throws {
        let exists = try await server.connection.query("select 1 from pg_database where datname = $1", [request.target]).rows.count == 1
        if exists {
            let target = try await PostgresConnection.connect(conninfo: server.conninfo.with(database: request.target), logger: logger)
            let relations = Int(try await target.query("select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where \(SnapshotCatalog.userSchemas)").scalar ?? "0") ?? 0
            if relations > 0 {
                guard request.force else {
                    throw RestoreError(code: .targetNotEmpty, message: "database \"\(request.target)\" is not empty (\(relations) relations): choose another --target-db, or pass --force to drop and recreate it")
                }
                logger.warning("dropping the non-empty target database (--force)", metadata: ["restore.target": "\(request.target)"])
                try await server.connection.query(try await statement("drop database %I with (force)", request.target, server: server))
                try await server.connection.query(try await statement("create database %I template template0", request.target, server: server))
            }
        } else {
            try await server.connection.query(try await statement("create database %I template template0", request.target, server: server))
        }
    }

    /// Quotes an identifier with the server's own `format('%I')`.
    private func statement(_ format: String, _ identifier: String, server: PostgresServer) async throws -> String {
        try await server.connection.query("select format($1::text, $2::text)", [format, identifier]).scalar ?? ""
    }
}
