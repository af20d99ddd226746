import Foundation
import Logging
import ObjectStorage
import PostgresClient

/// `pgbackd backup --type base`: the whole cluster as one tar from `pg_basebackup -Ft -X none
/// -D -`, streamed through gzip into the repository like a dump. The WAL it needs comes from
/// the archive, so the manifest (the commit point) is written only once the backup's last
/// segment is in the repository: a committed base backup can always be made consistent.
public struct BaseBackup: Sendable {
    public let configuration: Configuration
    public let repository: Repository
    public let logger: Logger
    public var progress: (@Sendable (BackupProgress) -> Void)?
    /// How often the repository is asked for the stop segment while waiting for it.
    var archivePollInterval: Duration = .milliseconds(500)

    public init(configuration: Configuration, repository: Repository, logger: Logger, progress: (@Sendable (BackupProgress) -> Void)? = nil) {
        self.configuration = configuration
        self.repository = repository
        self.logger = logger
        self.progress = progress
    }

    /// Runs the backup and returns its committed manifest. On any failure, including
    /// cancellation, the stored tar is removed again and no manifest exists.
    public func run() async throws -> Manifest {
        let startedAt = Date()
        let server = try await PostgresServer.connect(configuration.postgres, logger: logger)
        try await Self.checkArchiving(server.connection)
        let segmentSize = try await Self.walSegmentSize(server.connection)
        let pgBasebackup = try await server.tool("pg_basebackup")
        try await repository.ensureMarker(systemIdentifier: server.info.systemIdentifier)
        let aborted = try await repository.storage.abortIncompleteUploads(prefix: repository.backupsPrefix, startedBefore: startedAt)
        if aborted > 0 {
            logger.notice("removed incomplete uploads left by an interrupted run", metadata: ["backup.aborted_uploads": "\(aborted)"])
        }
        let id = try await repository.newBackupID(startedAt, kind: .base)
        var logger = logger
        logger[metadataKey: "backup.id"] = "\(id)"
        logger.info("base backup started")

        var writer = try await ArtifactWriter(repository: repository, relativeKey: "backups/\(id)/base.tar.gz", content: .baseTar, database: nil, compression: configuration.compression)
        var stored: Artifact?
        do {
            var environment = server.childEnvironment(database: nil)
            // pg_basebackup's --verbose lines are parsed for the WAL positions: keep them in English.
            environment["LC_ALL"] = "C"
            environment["LC_MESSAGES"] = "C"
            let tarStartedAt = Date()
            var lastReport = Date.distantPast
            let progress = self.progress
            let messages = try await streamChildOutput(
                program: pgBasebackup,
                arguments: ["--pgdata=-", "--format=tar", "--wal-method=none", "--checkpoint=fast",
                            "--label=pgbackd \(id)", "--no-password", "--verbose"],
                environment: environment, logger: logger
            ) { chunk in
                try await writer.write(chunk)
                if let progress, Date().timeIntervalSince(lastReport) >= 0.5 {
                    lastReport = Date()
                    progress(BackupProgress(database: "base backup", rawBytes: writer.rawSize, startedAt: tarStartedAt))
                }
            }
            let positions = try Self.walPositions(fromVerboseOutput: messages)
            stored = try await writer.commit()
            let wal = WALRange(
                timeline: positions.timeline, startLSN: positions.start.description, stopLSN: positions.stop.description,
                segmentSize: segmentSize,
                startSegment: positions.start.segment(timeline: positions.timeline, segmentSize: segmentSize).name,
                stopSegment: positions.stop.previousByteSegment(timeline: positions.timeline, segmentSize: segmentSize).name)
            logger.info("base backup streamed; waiting for its last WAL segment in the repository", metadata: [
                "backup.start_lsn": "\(wal.startLSN)", "backup.stop_lsn": "\(wal.stopLSN)", "backup.stop_segment": "\(wal.stopSegment)",
            ])
            try await waitUntilArchived(WALFileName(wal.stopSegment)!, logger: logger)
            var serverInfo = server.info
            serverInfo.timeline = Int(positions.timeline)
            let manifest = Manifest(
                formatVersion: Manifest.currentFormatVersion, backupId: id, kind: .base, stanza: repository.stanza,
                startedAt: startedAt, finishedAt: Date(), pgbackdVersion: PGBackd.version, server: serverInfo,
                compression: CompressionInfo(algorithm: "gzip", level: configuration.compression.level),
                artifacts: [stored!], databases: [], wal: wal)
            try Task.checkCancellation()
            try await repository.storage.put(key: repository.manifestKey(id), bytes: try manifest.encoded())
            logger.info("base backup committed", metadata: ["backup.raw_bytes": "\(manifest.rawSize)", "backup.stored_bytes": "\(manifest.storedSize)"])
            return manifest
        } catch {
            logger.error("base backup failed; removing what it stored", metadata: ["backup.error": "\(error)"])
            if let stored {
                try? await repository.storage.delete(key: repository.key(relative: stored.key))
            } else {
                await writer.abort()
            }
            throw error
        }
    }

    /// Without archiving, a base backup can never be made consistent: refuse before copying.
    static func checkArchiving(_ connection: PostgresConnection) async throws {
        let settings = try await connection.query("""
            select current_setting('archive_mode'), current_setting('archive_command'),
                   coalesce(current_setting('archive_library', true), ''),
                   (select string_agg(spcname, ', ' order by spcname) from pg_tablespace where spcname not in ('pg_default', 'pg_global'))
            """).rows.first ?? []
        let mode = settings.first ?? nil, command = settings.count > 1 ? settings[1] : nil
        let library = settings.count > 2 ? settings[2] : nil, tablespaces = settings.count > 3 ? settings[3] : nil
        guard mode == "on" || mode == "always" else {
            throw BackupError(.serverNotReady, message: "archive_mode is \(mode ?? "unknown") on the server, so the WAL a base backup needs is never archived: set archive_mode = on and archive_command = 'pgbackd wal-push %p' in postgresql.conf and restart PostgreSQL")
        }
        guard !(command ?? "").isEmpty || !(library ?? "").isEmpty else {
            throw BackupError(.serverNotReady, message: "archive_command is empty on the server, so no WAL is archived: set archive_command = 'pgbackd wal-push %p' and reload PostgreSQL")
        }
        if let tablespaces, !tablespaces.isEmpty {
            throw BackupError(.serverNotReady, message: "the cluster has tablespaces outside the data directory (\(tablespaces)); base backups support the default tablespaces only for now: use logical backups for this cluster")
        }
    }

    static func walSegmentSize(_ connection: PostgresConnection) async throws -> Int {
        let row = try await connection.query("select setting, unit from pg_settings where name = 'wal_segment_size'").rows.first
        guard let setting = row?.first.flatMap({ $0 }).flatMap({ Int($0) }) else {
            throw BackupError(.failed, message: "could not read wal_segment_size from the server")
        }
        switch row?.count == 2 ? row?[1] : nil {
        case "8kB": return setting * 8192
        case "MB": return setting << 20
        default: return setting  // "B", PostgreSQL 11 and later
        }
    }

    struct WALPositions: Equatable {
        var start: WALPosition
        var stop: WALPosition
        var timeline: UInt32
    }

    /// Reads `write-ahead log start point: 0/2000028 on timeline 1` and `write-ahead log end
    /// point: 0/2000100` from pg_basebackup's `--verbose` output (run with LC_MESSAGES=C).
    static func walPositions(fromVerboseOutput output: String) throws -> WALPositions {
        var start: WALPosition?, stop: WALPosition?, timeline: UInt32?
        for line in output.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ")
            if line.contains("write-ahead log start point:"), let index = words.firstIndex(of: "point:"), index + 1 < words.count {
                start = WALPosition(words[index + 1])
                if let on = words.firstIndex(of: "timeline"), on + 1 < words.count { timeline = UInt32(words[on + 1]) }
            } else if line.contains("write-ahead log end point:"), let last = words.last {
                stop = WALPosition(last)
            }
        }
        guard let start, let stop, let timeline else {
            let tail = output.split(whereSeparator: \.isNewline).suffix(5).joined(separator: " / ")
            throw BackupError(.failed, message: "pg_basebackup finished but its output did not give the WAL start and end points (\(tail))")
        }
        return WALPositions(start: start, stop: stop, timeline: timeline)
    }

    /// In spool mode the server counts a segment archived once it is spooled; the backup counts
    /// only what is in the repository. It ships the spool itself while waiting, so it does not
    /// depend on a watcher running (one that does ship it first is fine: pushes are idempotent).
    private func waitUntilArchived(_ segment: WALFileName, logger: Logger) async throws {
        let key = repository.walKey(segment)
        let timeout = Duration.seconds(configuration.wal.maxLagSeconds)
        let deadline = ContinuousClock.now + timeout
        let shipper: WALShipper? = configuration.wal.mode == .spool
            ? WALShipper(spool: WALSpool(configuration.wal),
                         archive: WALArchive(repository: repository, level: configuration.compression.level, logger: logger),
                         parallelUploads: configuration.wal.parallelUploads,
                         alerts: AlertDispatcher(configuration: configuration.alerts, logger: logger), logger: logger)
            : nil
        while true {
            if try await repository.storage.head(key: key) != nil { return }
            if let shipper, FileManager.default.fileExists(atPath: configuration.wal.spoolDirectory + "/" + segment.name) {
                // Failures stay in the spool and are retried on the next round.
                _ = try? await shipper.pass()
                if try await repository.storage.head(key: key) != nil { return }
            }
            guard ContinuousClock.now < deadline else {
                throw BackupError(.walNotArchived, message: "WAL segment \(segment.name), the last one this base backup needs, did not reach the repository within wal.max_lag_seconds (\(configuration.wal.maxLagSeconds) s): check archive_command ('pgbackd wal-push %p'), the spool \(configuration.wal.spoolDirectory) and the storage; the backup was not committed")
            }
            try await Task.sleep(for: archivePollInterval)
        }
    }
}
