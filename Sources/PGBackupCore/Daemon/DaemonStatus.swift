import Encryption
import Foundation
import ObjectStorage

/// What `pgbackd status` shows, gathered in its own process: the daemon's state file, the
/// schedules of the configuration, the WAL spool (read directly) and the repository.
public struct DaemonStatus: Codable, Sendable {
    public struct Job: Codable, Sendable {
        public var job: String
        public var schedule: String?
        public var nextRun: Date?
        public var lastRun: JobRun?
        public var lastSuccess: JobRun?
        public var lastFailure: JobRun?
    }
    public struct WAL: Codable, Sendable {
        public var spoolDirectory: String
        public var spooledFiles: Int
        public var spoolBytes: Int64
        public var oldestSpooled: String?
        /// Age of the oldest spooled file, in seconds: how far archiving is behind.
        public var lagSeconds: Double?
        /// The newest segment in the repository.
        public var lastArchived: String?
        public var lastArchivedAt: Date?
    }
    public var stanza: String
    public var repository: String
    public var stateFile: String
    /// false when the state file is missing and this view was rebuilt from the repository.
    public var stateFilePresent: Bool
    public var time: Date
    public var timeZone: String
    public var jobs: [Job]
    public var wal: WAL
    /// The newest backup that passed a drill, and that drill.
    public var verifiedBackupId: String?
    public var verifiedDrillId: String?
    public var verifiedAt: Date?
    /// The newest drill, passed or not, and how long its restores took: this host's recovery
    /// time for that backup.
    public var lastDrill: LastDrill?
    /// Whether the repository is encrypted, and under which repository key (its fingerprint,
    /// never the key): nil when it is not.
    public var encryptionKey: String?

    public struct LastDrill: Codable, Sendable {
        public var drillId: String
        public var backupId: String
        public var passed: Bool
        public var finishedAt: Date
        /// All databases together; nil for reports written before it was recorded.
        public var restoreSeconds: Double?
        /// Per database.
        public var databaseRestoreSeconds: [String: Double]
    }

    public static func gather(configuration: Configuration, repository: Repository, now: Date = Date()) async throws -> DaemonStatus {
        let directory = configuration.daemon.stateDirectory
        let recorded = try DaemonState.load(stateDirectory: directory)
        let state: DaemonState
        if let recorded { state = recorded } else { state = try await DaemonState.rebuild(from: repository, now: now) }
        let next = SchedulePlan(configuration.schedule).nextRuns(after: now)
        let jobs = JobKind.allCases.map { kind in
            let history = state.history(kind)
            return Job(job: kind.rawValue, schedule: configuration.schedule.jobs[kind]?.description, nextRun: next[kind],
                       lastRun: history.lastRun, lastSuccess: history.lastSuccess, lastFailure: history.lastFailure)
        }
        let spool = WALSpool(configuration.wal)
        let pending = try await spool.pending()
        let oldest = pending.min { $0.modified < $1.modified }
        var lastArchived: (WALFileName, Date?)?
        for object in try await repository.storage.list(prefix: repository.walPrefix) {
            guard let file = repository.layout.walObjectName(ofKey: object.key)?.file, file.segment != nil else { continue }
            if lastArchived == nil || lastArchived!.0 < file { lastArchived = (file, object.lastModified) }
        }
        let wal = WAL(spoolDirectory: spool.directory, spooledFiles: pending.count, spoolBytes: pending.reduce(0) { $0 + $1.size },
                      oldestSpooled: oldest?.file.name, lagSeconds: oldest.map { max(now.timeIntervalSince($0.modified), 0) },
                      lastArchived: lastArchived?.0.name, lastArchivedAt: lastArchived?.1)
        let reports = try await repository.drillReports()
        let verified = try await repository.newestPassedDrill(in: reports)
        var newest: DrillReport?
        // A damaged report must not hide the rest of the status; it shows as no last drill.
        if let key = reports.last { newest = try? await repository.drillReport(key) }
        let lastDrill = newest.map { report in
            LastDrill(drillId: report.drillId, backupId: report.backupId, passed: report.passed, finishedAt: report.finishedAt,
                      restoreSeconds: report.restoreSeconds,
                      databaseRestoreSeconds: Dictionary(report.databases.map { ($0.name, $0.restoreSeconds) }, uniquingKeysWith: { first, _ in first }))
        }
        return DaemonStatus(stanza: configuration.repository.stanza, repository: RepositoryFactory.describe(configuration),
                            stateFile: DaemonState.path(stateDirectory: directory), stateFilePresent: recorded != nil, time: now,
                            timeZone: configuration.schedule.timeZone.identifier, jobs: jobs, wal: wal,
                            verifiedBackupId: verified?.backupId, verifiedDrillId: verified?.drillId, verifiedAt: verified?.finishedAt,
                            lastDrill: lastDrill, encryptionKey: repository.encryptionKeys.first?.fingerprint)
    }
}
