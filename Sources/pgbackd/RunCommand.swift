import ArgumentParser
import PGBackupCore

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: scheduled backups, drills and retention, the WAL watcher; for systemd Type=notify.",
        discussion: """
            Takes the repository's lock (one daemon per repository on this host), tells systemd \
            READY=1 once the repository is reachable, runs [schedule]'s jobs and ships the WAL \
            spool. SIGHUP reloads the configuration (an invalid one is rejected and the old one \
            kept); SIGTERM or SIGINT stops: running jobs get daemon.stop_timeout_seconds to \
            finish, then are cancelled and commit nothing.
            """)

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try await runReportingErrors {
            try await Daemon.run(configuration: try common.loadConfiguration(), logger: common.makeLogger())
        }
    }
}
