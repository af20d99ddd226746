import ArgumentParser
import Foundation
import Logging
import PGBackupCore

struct WalPushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-push",
        abstract: "Archive one WAL file: archive_command = 'pgbackd wal-push %p'.",
        discussion: """
            In spool mode (the default) the file is copied into wal.spool_dir and fsynced, and the \
            watcher ships it; the network is never touched. In sync mode it is compressed, \
            uploaded and verified before exit 0. A name already spooled or archived with the same \
            content succeeds; with other content it fails and raises wal.conflict.
            """)

    @OptionGroup var common: CommonOptions

    @Argument(help: "The WAL file (PostgreSQL's %p, relative to the data directory).")
    var path: String

    func run() async throws {
        try await runReportingErrors {
            let configuration = try common.loadConfiguration()
            let logger = common.makeLogger()
            let path = self.path
            do {
                switch configuration.wal.mode {
                case .spool:
                    // No repository, no storage: PostgreSQL must never wait on the network.
                    let outcome = try await WALSpool(configuration.wal).push(source: path)
                    logger.debug("WAL file spooled", metadata: ["wal.path": "\(path)", "wal.outcome": "\(outcome)"])
                case .sync:
                    let repository = try await RepositoryFactory.open(configuration, logger: logger)
                    let archive = WALArchive(repository: repository, level: configuration.compression.level, logger: logger)
                    let outcome = try await withSignalCancellation { try await archive.push(path: path) }
                    logger.debug("WAL file archived", metadata: ["wal.path": "\(path)", "wal.outcome": "\(outcome)"])
                }
            } catch let error as WALError where error.code == .conflict || error.code == .spoolFull {
                let alerts = AlertDispatcher(configuration: configuration.alerts, logger: logger)
                let name = (path as NSString).lastPathComponent
                let summary = error.code == .conflict
                    ? "wal-push of \(name) refused: the name is already spooled or archived with different content"
                    : "wal-push of \(name) refused: the WAL spool \(configuration.wal.spoolDirectory) is full; PostgreSQL keeps the WAL in pg_wal"
                await alerts.send(AlertEvent(event: error.code == .conflict ? .walConflict : .spoolFull,
                                             stanza: configuration.repository.stanza, summary: summary, error: "\(error)"))
                throw error
            }
        }
    }
}
