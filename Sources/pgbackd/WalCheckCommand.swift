import ArgumentParser
import Foundation
import PGBackupCore

struct WalCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-check",
        abstract: "Check that the WAL archive can bring every base backup to the newest archived WAL.",
        discussion: """
            Lists the archive and reports, per timeline, the segments from each base backup's \
            start to the newest archived one that are missing, and timelines without their \
            history file. Exits 1 and raises wal.gap when anything is missing: recovery would \
            stop at the first gap without an error.
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let runner = try await common.jobRunner()
            let repository = runner.repository
            let report = try await withSignalCancellation { try await runner.run(WALCheckJob()) }
            if json {
                try printJSON(report)
            } else {
                if report.timelines.isEmpty { print("no WAL archived in stanza '\(repository.stanza)'") }
                printTable(header: ["TIMELINE", "FIRST", "LAST", "SEGMENTS", "HISTORY"], rows: report.timelines.map {
                    ["\($0.timeline)", $0.firstSegment, $0.lastSegment, "\($0.segments)", $0.timeline == 1 ? "-" : ($0.hasHistory ? "yes" : "MISSING")]
                })
                for backup in report.backups {
                    let state = !backup.consistent ? "NOT CONSISTENT (WAL between its start and stop is missing)"
                        : backup.recoverableToLatest ? "recoverable to the newest WAL" : "consistent, but a gap stops recovery before the newest WAL"
                    print("\(backup.backupId): \(backup.startSegment)..\(backup.stopSegment) \(state)")
                }
                for gap in report.gaps { print("GAP on timeline \(gap.timeline): \(gap)") }
                for timeline in report.missingHistory { print("MISSING \(WALFileName.segment(timeline: timeline, number: 0, segmentSize: report.segmentSize).timelineHex).history") }
                for duplicate in report.ambiguous { print("AMBIGUOUS \(duplicate) — wal-fetch will refuse it; keep the one this cluster archived") }
                for same in report.sameContent { print("MISNAMED \(same) — wal-fetch refuses a segment whose page header is another's; move the misnamed object out") }
            }
            if let failure = WALCheckJob.checkFailure(report) { throw ExitCode(ExitStatus(failure).rawValue) }
        }
    }
}
