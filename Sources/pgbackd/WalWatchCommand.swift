import ArgumentParser
import Foundation
import Logging
import PGBackupCore

struct WalWatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-watch",
        abstract: "Ship spooled WAL files to the repository, in the foreground.",
        discussion: """
            Uploads every file in wal.spool_dir, oldest first, wal.parallel_uploads at a time, \
            verifies each with HEAD and only then deletes it from the spool. Without --once it \
            rescans the spool every second until SIGINT or SIGTERM (inotify comes later).
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Ship what is spooled now, then exit (non-zero if anything was left behind).")
    var once = false

    func run() async throws {
        try await runReportingErrors {
            let (configuration, logger, repository) = try await common.openRepository()
            let shipper = WALShipper(
                spool: WALSpool(configuration.wal),
                archive: WALArchive(repository: repository, level: configuration.compression.level, logger: logger),
                parallelUploads: configuration.wal.parallelUploads,
                alerts: AlertDispatcher(configuration: configuration.alerts, logger: logger),
                logger: logger)
            let once = self.once, stanza = configuration.repository.stanza
            let result: WALShipper.PassResult
            do {
                result = try await withSignalCancellation { try await shipper.run(once: once, stanza: stanza) }
            } catch is Interrupted {
                // A stop request: uploads in flight were aborted, their files stay spooled.
                logger.notice("WAL watcher stopped by a signal")
                return
            }
            FileHandle.standardError.write(Data("wal-watch: \(result.shipped.count) shipped, \(result.alreadyArchived.count) already archived, \(result.conflicts.count) conflicting, \(result.failures.count) failed\n".utf8))
            if let conflict = result.conflicts.first { throw conflict.error }
            if let failure = result.failures.first { throw failure.error }
        }
    }
}
