import Compression
import Foundation
import Logging
import ObjectStorage
import PGBackdSupport
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
        let id = try await repository.beginBackup(kind: .base, systemIdentifier: server.info.systemIdentifier, startedAt: startedAt, logger: logger)
        var logger = logger
        logger[metadataKey: "backup.id"] = "\(id)"
        logger.info("base backup started")

        var writer = try await ArtifactWriter(repository: repository, relativeKey: RepositoryLayout.baseTarArtifact(backupId: id), content: .baseTar, database: nil, compression: configuration.compression)
        var stored: Artifact?
        do {
            let tarStartedAt = Date()
            var lastReport = Date.distantPast
            let progress = self.progress
            // The WAL positions are read from the tar itself: backup_label and backup_manifest.
            var capture = TarMemberCapture(wanted: ["backup_label", "backup_manifest"])
            try await streamChildOutput(
                program: pgBasebackup,
                arguments: ["--pgdata=-", "--format=tar", "--wal-method=none", "--checkpoint=fast",
                            "--label=pgbackd \(id)", "--no-password"],
                environment: server.childEnvironment(database: nil), logger: logger, blockSize: writer.blockSize,
                whenIdle: { try await writer.flush() }
            ) { chunk in
                capture.consume(chunk)
                try await writer.write(chunk)
                if let progress, Date().timeIntervalSince(lastReport) >= 0.5 {
                    lastReport = Date()
                    progress(BackupProgress(database: "base backup", rawBytes: writer.rawSize, startedAt: tarStartedAt))
                }
            }
            let positions = try Self.walPositions(label: capture.captured["backup_label"], manifest: capture.captured["backup_manifest"])
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
                compression: CompressionInfo(algorithm: "gzip", level: configuration.compression.level, engine: writer.engine.rawValue),
                artifacts: [stored!], databases: [], wal: wal)
            return try await repository.commitBackup(manifest, logger: logger)
        } catch {
            await repository.discardBackup(id, kind: .base, stored: stored.map { [$0] } ?? [], after: error, logger: logger)
            if stored == nil { await writer.abort() }
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

    /// The start LSN and timeline from `backup_label` (`START WAL LOCATION: 0/2000028 (file …)`,
    /// `START TIMELINE: 1`) and the stop LSN from `backup_manifest`'s last `WAL-Ranges` entry.
    static func walPositions(label: [UInt8]?, manifest: [UInt8]?) throws -> WALPositions {
        guard let label else {
            throw BackupError(.failed, message: "the tar from pg_basebackup has no backup_label: it is not a base backup this pgbackd understands")
        }
        var start: WALPosition?, timeline: UInt32?
        for line in String(decoding: label, as: UTF8.self).split(whereSeparator: \.isNewline) {
            if line.hasPrefix("START WAL LOCATION: ") {
                start = line.dropFirst("START WAL LOCATION: ".count).split(separator: " ").first.flatMap { WALPosition($0) }
            } else if line.hasPrefix("START TIMELINE: ") {
                timeline = UInt32(line.dropFirst("START TIMELINE: ".count).trimmingCharacters(in: .whitespaces))
            }
        }
        guard let manifest,
              let document = try? JSONSerialization.jsonObject(with: Data(manifest)) as? [String: Any],
              let ranges = document["WAL-Ranges"] as? [[String: Any]],
              let stop = (ranges.last?["End-LSN"] as? String).flatMap({ WALPosition($0) })
        else {
            throw BackupError(.failed, message: "the tar from pg_basebackup has no readable backup_manifest with WAL-Ranges, so the backup's stop position is unknown; PostgreSQL 13 or later writes one")
        }
        guard let start, let timeline else {
            throw BackupError(.failed, message: "backup_label from pg_basebackup has no START WAL LOCATION or START TIMELINE")
        }
        return WALPositions(start: start, stop: stop, timeline: timeline)
    }

    /// In spool mode the server counts a segment archived once it is spooled; the backup counts
    /// only what is in the repository. It ships the spool itself while waiting, so it does not
    /// depend on a watcher running (one that does ship it first is fine: pushes are idempotent).
    private func waitUntilArchived(_ segment: WALFileName, logger: Logger) async throws {
        let timeout = Duration.seconds(configuration.wal.maxLagSeconds)
        let deadline = ContinuousClock.now + timeout
        let shipper: WALShipper? = configuration.wal.mode == .spool
            ? WALShipper(spool: WALSpool(configuration.wal),
                         archive: WALArchive(repository: repository, level: configuration.compression.level, logger: logger),
                         parallelUploads: configuration.wal.parallelUploads,
                         alerts: AlertDispatcher(configuration: configuration.alerts, logger: logger), logger: logger)
            : nil
        // Archived means an object of that name, whatever the checksum in it: one LIST.
        while true {
            if try await !repository.walObjects(for: segment).isEmpty { return }
            if let shipper, FileManager.default.fileExists(atPath: configuration.wal.spoolDirectory + "/" + segment.name) {
                // Failures stay in the spool and are retried on the next round.
                _ = try? await shipper.pass()
                if try await !repository.walObjects(for: segment).isEmpty { return }
            }
            guard ContinuousClock.now < deadline else {
                throw BackupError(.walNotArchived, message: "WAL segment \(segment.name), the last one this base backup needs, did not reach the repository within wal.max_lag_seconds (\(configuration.wal.maxLagSeconds) s): check archive_command ('pgbackd wal-push %p'), the spool \(configuration.wal.spoolDirectory) and the storage; the backup was not committed")
            }
            try await Task.sleep(for: archivePollInterval)
        }
    }
}
