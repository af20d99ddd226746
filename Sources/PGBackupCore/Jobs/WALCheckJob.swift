import Foundation

/// `pgbackd wal-check` and the daemon's `wal_check` job. It only reads, so it keeps no record:
/// a killed check loses nothing and the next one checks again.
public struct WALCheckJob: Job {
    public init() {}

    public var kind: JobKind { .walCheck }
    public var keepsRecord: Bool { false }

    public func run(in context: JobContext) async throws -> WALCheck.Report {
        try await WALCheck(repository: context.repository).run()
    }

    public func outcome(of report: WALCheck.Report) -> JobOutcome { report.isComplete ? .succeeded : .checkFailed }

    public func event(for report: WALCheck.Report, in context: JobContext) -> AlertEvent? {
        report.isComplete ? nil : .walGap(report, stanza: context.stanza)
    }

    /// The report as an error, for callers that treat a gap as a failed run.
    public static func checkFailure(_ report: WALCheck.Report) -> JobCheckFailed? {
        guard !report.isComplete else { return nil }
        let problems = report.problems
        return JobCheckFailed(.walIncomplete, description: "the WAL archive has \(problems.count) problem(s): "
            + problems.prefix(3).joined(separator: "; ") + (problems.count > 3 ? "; …" : ""))
    }
}
