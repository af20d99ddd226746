import ArgumentParser
import Foundation
import PGBackupCore

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Restore a backup into scratch databases and check the data; exit 0 all passed, 1 a check failed, 3 not verifiable on this host.")

    @OptionGroup var common: CommonOptions

    @Argument(help: "Backup id, or 'latest'.")
    var backup: String = "latest"

    @Option(name: .customLong("database"), help: "Drill only this database (repeatable). Default: all in the backup.")
    var databases: [String] = []

    @Flag(help: "Keep the scratch databases for inspection; later drills leave them alone until --drop-kept.")
    var keep = false

    @Option(help: "Upgrade drill: restore into a throw-away cluster of this newer PostgreSQL major (default: drill.scratch_major).")
    var scratchMajor: Int?

    @Flag(help: "List the scratch databases on the drill server (kept ones, and any a running drill uses), then exit.")
    var listKept = false

    @Flag(help: "Drop the scratch databases that drills kept with --keep, then exit.")
    var dropKept = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        if listKept && dropKept { throw ValidationError("give one of --list-kept and --drop-kept") }
        if (listKept || dropKept) && (keep || !databases.isEmpty || backup != "latest" || scratchMajor != nil) {
            throw ValidationError("--list-kept and --drop-kept take no backup id, --database, --keep or --scratch-major")
        }
    }

    func run() async throws {
        try await runReportingErrors {
            let (configuration, logger, repository) = try await common.openRepository()
            let drill = Drill(configuration: configuration, repository: repository, logger: logger)
            if listKept {
                let scratch = try await drill.scratchDatabases()
                if json { try printJSON(scratch); return }
                if scratch.isEmpty { print("no scratch databases") }
                for database in scratch {
                    print("\(database.name)  \(formatBytes(database.bytes))  \(database.kept ? "kept" : "not kept: a running drill's, or an interrupted one's that the next drill drops")  \(database.comment)")
                }
                return
            }
            if dropKept {
                let dropped = try await drill.dropKeptScratchDatabases()
                if json { try printJSON(dropped); return }
                print(dropped.isEmpty ? "no kept scratch databases" : "dropped \(dropped.joined(separator: ", "))")
                return
            }
            let runner = JobRunner(configuration: configuration, repository: repository, logger: logger)
            let job = DrillJob(.backup(backup), databases: databases, keep: keep, scratchMajor: scratchMajor)
            let report = try await withSignalCancellation { try await runner.run(job) }
            if json {
                print(String(decoding: try report.encoded(), as: UTF8.self))
            } else {
                printReport(report)
            }
            if let failure = DrillJob.checkFailure(report) {
                // One line on stderr too, for cron mail and scripts that read only that.
                let summary = AlertEvent.drill(report, reportKey: nil).summary
                FileHandle.standardError.write(Data("pgbackd: drill: \(summary)\n".utf8))
                throw ExitCode(ExitStatus(failure).rawValue)
            }
        }
    }

    func printReport(_ report: DrillReport) {
        for line in DrillReportText.lines(report) { print(line) }
    }
}
