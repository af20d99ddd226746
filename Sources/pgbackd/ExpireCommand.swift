import ArgumentParser
import Foundation
import PGBackupCore

struct ExpireCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expire",
        abstract: "Remove backups and WAL that [retention] no longer keeps, and leftovers of interrupted runs.",
        discussion: """
            Applies keep_last, keep_daily, keep_weekly, keep_monthly and min_keep to logical and \
            base backups separately; a backup in use by a running restore or drill is kept. WAL \
            before the start of the oldest kept base backup goes; objects without a manifest and \
            incomplete uploads older than a day go too. --dry-run prints what would go and why \
            every kept backup is kept, and deletes nothing.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print what would be removed, remove nothing.")
    var dryRun = false

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let runner = try await common.jobRunner()
            let job = RetentionJob(dryRun: dryRun)
            let result = try await withSignalCancellation { try await runner.run(job) }
            if json {
                try printJSON(result)
                return
            }
            let verb = dryRun ? "would be removed" : "removed"
            printTable(header: ["BACKUP", "KIND", "ACTION", "WHY"], rows: result.backups.map { decision in
                let skipped = result.skippedInUse.contains(decision.backupId)
                let action = decision.keep || skipped ? "keep" : (dryRun ? "would expire" : "expired")
                let why = skipped ? "in_use (lease taken during this run)"
                    : decision.keep ? decision.reasons.map(\.rawValue).joined(separator: ",") : "no rule keeps it"
                return [decision.backupId, decision.kind.rawValue, action, why]
            })
            print("backups: \(result.expired.count) \(verb), \(result.backups.count - result.expired.count) kept")
            print("WAL: \(result.wal.note); \(result.wal.expired.count) file(s) \(verb)")
            for key in result.wal.expired where dryRun { print("  \(key)") }
            print("objects without a manifest (older than a day): \(result.orphans.count) \(verb)")
            for key in result.orphans { print("  \(key)") }
            if !result.staleLeases.isEmpty { print("stale leases: \(result.staleLeases.count) \(verb)") }
            if let aborted = result.abortedUploads {
                print("incomplete uploads aborted: \(aborted)")
            } else {
                print("incomplete uploads started more than a day ago would be aborted")
            }
        }
    }
}
