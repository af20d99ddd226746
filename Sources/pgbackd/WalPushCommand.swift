import ArgumentParser
import Foundation
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
            let job = WALPushJob(configuration: try common.loadConfiguration(), logger: common.makeLogger())
            let path = self.path
            try await job.run(path: path)
        }
    }
}
