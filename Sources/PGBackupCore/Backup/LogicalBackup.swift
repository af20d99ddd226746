import Compression
import Foundation
import Logging
import ObjectStorage
import PGBackdSupport
import PostgresClient

/// Progress of a running backup, for the TTY progress line.
public struct BackupProgress: Sendable {
    public var database: String
    public var rawBytes: Int64
    public var startedAt: Date
}

/// `pgbackd backup` for logical dumps: one `pg_dump -Fc -Z0` per database in an exported
/// snapshot, plus `pg_dumpall --globals-only`, each streamed through gzip into the repository;
/// the manifest is written last and is the commit point.
public struct LogicalBackup: Sendable {
    public let configuration: Configuration
    public let repository: Repository
    public let logger: Logger
    public var progress: (@Sendable (BackupProgress) -> Void)?
    /// The clock, replaceable so tests can force id collisions.
    var now: @Sendable () -> Date = { Date() }

    public init(configuration: Configuration, repository: Repository, logger: Logger, progress: (@Sendable (BackupProgress) -> Void)? = nil) {
        self.configuration = configuration
        self.repository = repository
        self.logger = logger
        self.progress = progress
    }

    /// Runs the backup and returns its committed manifest. On any failure, including
    /// cancellation, every object it stored is removed again and no manifest exists.
    public func run(databases requested: [String] = []) async throws -> Manifest {
        let startedAt = now()
        let server = try await PostgresServer.connect(configuration.postgres, logger: logger)
        let databases = try await server.databases(requested: requested)
        let pgDump = try await server.tool("pg_dump")
        let pgDumpall = try await server.tool("pg_dumpall")
        // Privileges first: a backup that would fail half-way for want of a grant fails here,
        // with the grant named, before anything is stored.
        let privileges = try await BackupPrivileges.probe(server)
        for database in databases {
            try await BackupPrivileges.check(database: database, connection: try await server.connect(database: database, logger: logger))
        }
        if !privileges.canReadRolePasswords {
            logger.notice("the backup role cannot read pg_authid; roles are backed up without their passwords", metadata: ["backup.role": "\(privileges.role)"])
        }
        let id = try await repository.beginBackup(kind: .logical, systemIdentifier: server.info.systemIdentifier, startedAt: startedAt, logger: logger)
        var logger = logger
        logger[metadataKey: "backup.id"] = "\(id)"
        logger.info("backup started", metadata: ["backup.databases": "\(databases.joined(separator: ","))"])

        var artifacts: [Artifact] = []
        var snapshots: [DatabaseSnapshot] = []
        do {
            artifacts.append(try await dumpGlobals(id: id, pgDumpall: pgDumpall, server: server, rolePasswords: privileges.canReadRolePasswords, logger: logger))
            for database in databases {
                let (artifact, snapshot) = try await dumpDatabase(database, id: id, pgDump: pgDump, server: server, logger: logger)
                artifacts.append(artifact)
                snapshots.append(snapshot)
            }
            let manifest = Manifest(
                formatVersion: Manifest.currentFormatVersion, backupId: id, kind: .logical, stanza: repository.stanza,
                startedAt: startedAt, finishedAt: now(), pgbackdVersion: PGBackd.version, server: server.info,
                compression: CompressionInfo(algorithm: "gzip", level: configuration.compression.level,
                                             engine: configuration.compression.effectiveEngine.rawValue),
                artifacts: artifacts, databases: snapshots, rolePasswords: privileges.canReadRolePasswords)
            return try await repository.commitBackup(manifest, logger: logger)
        } catch {
            await repository.discardBackup(id, kind: .logical, stored: artifacts, after: error, logger: logger)
            throw error
        }
    }

    private func dumpGlobals(id: String, pgDumpall: String, server: PostgresServer, rolePasswords: Bool, logger: Logger) async throws -> Artifact {
        var writer = try await ArtifactWriter(repository: repository, relativeKey: RepositoryLayout.globalsArtifact(backupId: id), content: .globals, database: nil, compression: configuration.compression)
        do {
            try await streamChildOutput(program: pgDumpall, arguments: ["--globals-only", "--no-password"] + (rolePasswords ? [] : ["--no-role-passwords"]),
                                        environment: server.childEnvironment(database: nil), logger: logger, blockSize: writer.blockSize,
                                        whenIdle: { try await writer.flush() }) { chunk in
                try await writer.write(chunk)
            }
            return try await writer.commit()
        } catch {
            await writer.abort()
            throw error
        }
    }

    private func dumpDatabase(_ database: String, id: String, pgDump: String, server: PostgresServer, logger: Logger) async throws -> (Artifact, DatabaseSnapshot) {
        var logger = logger
        logger[metadataKey: "backup.database"] = "\(database)"
        let connection = try await server.connect(database: database, logger: logger)
        try await SnapshotCatalog.pinSessionSettings(connection)
        // The dump and the row counts must see the same data: pg_dump imports this snapshot.
        try await connection.query("begin transaction isolation level repeatable read, read only")
        guard let snapshot = try await connection.query("select pg_export_snapshot()").scalar else {
            throw BackupError(.failed, message: "pg_export_snapshot() returned nothing in database \"\(database)\"")
        }
        let key = RepositoryLayout.dumpArtifact(backupId: id, database: database)
        var writer = try await ArtifactWriter(repository: repository, relativeKey: key, content: .databaseDump, database: database, compression: configuration.compression)
        let startedAt = Date()
        do {
            async let catalog = (SnapshotCatalog.rowCounts(connection), SnapshotCatalog.foreignKeys(connection), SnapshotCatalog.census(connection),
                                 DatabaseProperties.read(database: database, connection), SnapshotCatalog.largeObjectCount(connection),
                                 SnapshotCatalog.extensions(connection))
            var lastReport = Date.distantPast
            try await streamChildOutput(program: pgDump,
                                        arguments: ["--format=custom", "--compress=0", "--snapshot=\(snapshot)", "--no-password"],
                                        environment: server.childEnvironment(database: database), logger: logger, blockSize: writer.blockSize,
                                        whenIdle: { try await writer.flush() }) { chunk in
                try await writer.write(chunk)
                if let progress, Date().timeIntervalSince(lastReport) >= 0.5 {
                    lastReport = Date()
                    progress(BackupProgress(database: database, rawBytes: writer.rawSize, startedAt: startedAt))
                }
            }
            let (rowCounts, foreignKeys, census, properties, largeObjects, extensions) = try await catalog
            let artifact = try await writer.commit()
            try await connection.query("commit")
            logger.info("database dumped", metadata: ["backup.raw_bytes": "\(artifact.rawSize)", "backup.stored_bytes": "\(artifact.storedSize)", "backup.tables": "\(rowCounts.count)"])
            return (artifact, DatabaseSnapshot(name: database, snapshot: snapshot, rowCounts: rowCounts, foreignKeys: foreignKeys, objects: census,
                                               properties: properties, largeObjects: largeObjects, extensions: extensions))
        } catch {
            await writer.abort()
            throw error
        }
    }
}

public enum PGBackd {
    public static let version = "0.1.0"

    /// This binary's absolute path, for commands PostgreSQL runs later on its behalf
    /// (a restored cluster's restore_command).
    public static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
