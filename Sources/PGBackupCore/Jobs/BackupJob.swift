import Foundation

/// `pgbackd backup` and the daemon's `backup` and `base_backup` jobs.
public struct BackupJob: Job {
    public enum Kind: Sendable, Equatable {
        /// pg_dump of these databases (empty: `postgres.databases`, else all), plus globals.
        case logical(databases: [String])
        /// pg_basebackup of the whole cluster.
        case base
    }

    public var type: Kind
    public var progress: (@Sendable (BackupProgress) -> Void)?

    public init(_ type: Kind, progress: (@Sendable (BackupProgress) -> Void)? = nil) {
        self.type = type
        self.progress = progress
    }

    public var kind: JobKind { type == .base ? .baseBackup : .backup }

    public func run(in context: JobContext) async throws -> Manifest {
        switch type {
        case .logical(let databases):
            try await LogicalBackup(configuration: context.configuration, repository: context.repository, logger: context.logger, progress: progress)
                .run(databases: databases)
        case .base:
            try await BaseBackup(configuration: context.configuration, repository: context.repository, logger: context.logger, progress: progress)
                .run()
        }
    }

    public func outcome(of output: Manifest) -> JobOutcome { .succeeded }

    public func event(for output: Manifest, in context: JobContext) -> AlertEvent? { .backup(output) }

    public func record(_ output: Manifest, in context: JobContext, metrics: DaemonMetrics) async {
        metrics.backupCommitted(output)
    }
}
