import ArgumentParser
import Foundation
import PGBackupCore

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the daemon's jobs (last success, last failure, next run), WAL archiving and the newest verified backup.",
        discussion: """
            Reads the daemon's state file (daemon.state_dir/state.json; rebuilt from the \
            repository when missing), the WAL spool and the repository. Needs no running daemon.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let (configuration, _, repository) = try await common.openRepository()
            let status = try await DaemonStatus.gather(configuration: configuration, repository: repository)
            if json {
                try printJSON(status)
                return
            }
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = configuration.schedule.timeZone
            formatter.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
            let show = { (date: Date?) in date.map { formatter.string(from: $0) } ?? "-" }
            print("stanza \(status.stanza) in \(status.repository)")
            print("encryption: \(status.encryptionKey.map { "on, repository key \($0)" } ?? "off")")
            if !status.stateFilePresent { print("(no state file at \(status.stateFile): rebuilt from the repository)") }
            for job in status.jobs {
                print("")
                print("\(job.job): \(job.schedule.map { "\"\($0)\"" } ?? "not scheduled")")
                print("  next run      \(show(job.nextRun))")
                print("  last success  \(show(job.lastSuccess?.end))\(job.lastSuccess?.backupId.map { "  \($0)" } ?? "")")
                if let failure = job.lastFailure {
                    print("  last failure  \(show(failure.end))  \(failure.outcome.rawValue): \(failure.error ?? "")")
                }
            }
            print("")
            print("WAL: last archived \(status.wal.lastArchived ?? "-"); spool \(status.wal.spooledFiles) file(s), \(formatBytes(status.wal.spoolBytes)); lag \(status.wal.lagSeconds.map { "\(Int($0)) s" } ?? "none")")
            print("newest verified backup: \(status.verifiedBackupId.map { "\($0) (drill \(status.verifiedDrillId ?? ""), \(show(status.verifiedAt)))" } ?? "none")")
            if let drill = status.lastDrill {
                let time = drill.restoreSeconds.map { String(format: "restore took %.1f s", $0) } ?? "restore time not recorded"
                print("last drill: \(drill.drillId) of \(drill.backupId), \(drill.passed ? "passed" : "failed") at \(show(drill.finishedAt)); \(time)")
            }
        }
    }
}
