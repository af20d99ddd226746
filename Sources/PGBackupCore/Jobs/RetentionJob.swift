import Foundation

/// `pgbackd expire` and the daemon's `retention` job: ``ExpireJob`` under the job policy. A dry
/// run changes nothing and keeps no record.
public struct RetentionJob: Job {
    public var dryRun: Bool
    public var now: @Sendable () -> Date

    public init(dryRun: Bool = false, now: @escaping @Sendable () -> Date = { Date() }) {
        self.dryRun = dryRun
        self.now = now
    }

    public var kind: JobKind { .retention }
    public var keepsRecord: Bool { !dryRun }

    public func run(in context: JobContext) async throws -> ExpireJob.Result {
        try await ExpireJob(rules: context.configuration.retention, repository: context.repository, logger: context.logger)
            .run(now: now(), dryRun: dryRun)
    }

    public func outcome(of output: ExpireJob.Result) -> JobOutcome { .succeeded }
    /// Removing what no rule keeps is routine: only a failure is news.
    public func event(for output: ExpireJob.Result, in context: JobContext) -> AlertEvent? { nil }
}
