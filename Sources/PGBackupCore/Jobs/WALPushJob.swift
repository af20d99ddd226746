import Foundation
import Logging

/// `pgbackd wal-push %p`, PostgreSQL's archive_command. Not a ``Job``: PostgreSQL's archiver
/// waits on it for every segment, so it keeps no record and, in spool mode, never touches the
/// repository. Its policy: a conflict (the name archived with other content) raises
/// `wal.conflict`, a full spool `spool.full`; any other failure only exits non-zero, and
/// PostgreSQL retries the segment (the watcher's `wal.lag` and `storage.unreachable` say why).
public struct WALPushJob: Sendable {
    public var configuration: Configuration
    public var logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run(path: String) async throws {
        do {
            switch configuration.wal.mode {
            case .spool:
                let outcome = try await WALSpool(configuration.wal).push(source: path)
                logger.debug("WAL file spooled", metadata: ["wal.path": "\(path)", "wal.outcome": "\(outcome)"])
            case .sync:
                // No marker check: archive_command may run as another user than the backups
                // that wrote repository.json; the watcher, backups and check verify the key.
                let repository = try await RepositoryFactory.open(configuration, logger: logger, checkingEncryption: false)
                let archive = WALArchive(repository: repository, level: configuration.compression.level, logger: logger)
                // The network may hang: SIGTERM stops the upload cleanly instead of killing it.
                let outcome = try await withSignalCancellation { try await archive.push(path: path) }
                logger.debug("WAL file archived", metadata: ["wal.path": "\(path)", "wal.outcome": "\(outcome)"])
            }
        } catch let error as WALError where error.code == .conflict || error.code == .spoolFull {
            let name = (path as NSString).lastPathComponent
            let summary = error.code == .conflict
                ? "wal-push of \(name) refused: the name is already spooled or archived with different content"
                : "wal-push of \(name) refused: the WAL spool \(configuration.wal.spoolDirectory) is full (wal.max_spool_mib, or its file system); PostgreSQL keeps the WAL in pg_wal"
            await AlertDispatcher(configuration: configuration.alerts, logger: logger).send(AlertEvent(
                event: error.code == .conflict ? .walConflict : .spoolFull, stanza: configuration.repository.stanza,
                summary: summary, error: "\(error)", outcome: .failed))
            throw error
        }
    }
}
