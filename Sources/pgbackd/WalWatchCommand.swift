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
            runs until SIGINT or SIGTERM: inotify wakes it when wal-push spools a file, and it \
            rescans the spool every wal.rescan_seconds. It raises wal.lag, storage.unreachable \
            and their resolved events, and wal.conflict once per conflicting file. On a stop \
            signal uploads in flight are aborted; their files stay spooled for the next run.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Ship what is spooled now, then exit (non-zero if anything was left behind).")
    var once = false

    /// How long a stop signal waits for the watcher to abort its uploads before cancelling it.
    static let shutdownGrace: Duration = .seconds(30)

    func run() async throws {
        try await runReportingErrors {
            let (configuration, logger, repository) = try await common.openRepository()
            logger.info("WAL watcher memory bound", metadata: [
                "wal.parallel_uploads": "\(configuration.wal.parallelUploads)",
                "wal.memory_bound_bytes": "\(WALShipper.memoryBound(configuration))",
            ])
            let watcher = WALWatcher(
                configuration: configuration, repository: repository,
                alerts: AlertDispatcher(configuration: configuration.alerts, logger: logger), logger: logger)
            guard once else {
                try await Daemon.runWALWatcher(watcher, logger: logger, grace: Self.shutdownGrace)
                return
            }
            let result: WALShipper.PassResult
            do {
                result = try await withSignalCancellation { try await watcher.runOnce() }
            } catch is JobCancelled {
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
