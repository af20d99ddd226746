import Foundation
import ObjectStorage
import PGBackdSupport
#if canImport(Glibc)
import Glibc
#endif

/// One run of a scheduled job.
public struct JobRun: Codable, Sendable, Equatable {
    public typealias Outcome = JobOutcome
    public var start: Date
    public var end: Date
    public var outcome: Outcome
    /// Why it failed (or was cancelled).
    public var error: String?
    /// The backup it made (backup, base_backup) or drilled (drill).
    public var backupId: String?
    /// Drills: the report's id.
    public var drillId: String?

    public init(start: Date, end: Date, outcome: Outcome, error: String? = nil, backupId: String? = nil, drillId: String? = nil) {
        self.start = start
        self.end = end
        self.outcome = outcome
        self.error = error
        self.backupId = backupId
        self.drillId = drillId
    }
}

/// What the daemon remembers between starts: `<state_dir>/state.json`. Lost or deleted, it is
/// rebuilt from the repository (backups, drill reports); it only ever adds convenience.
public struct DaemonState: Codable, Sendable, Equatable {
    public struct JobHistory: Codable, Sendable, Equatable {
        public var lastRun: JobRun?
        public var lastSuccess: JobRun?
        public var lastFailure: JobRun?
        public init() {}
    }

    public static let currentVersion = 1
    public var version = Self.currentVersion
    public var jobs: [String: JobHistory] = [:]
    /// Set when this state was rebuilt from the repository rather than recorded.
    public var rebuiltAt: Date?

    public init() {}

    public func history(_ kind: JobKind) -> JobHistory { jobs[kind.rawValue] ?? JobHistory() }

    public mutating func record(_ kind: JobKind, _ run: JobRun) {
        var history = self.history(kind)
        history.lastRun = run
        if run.outcome == .succeeded { history.lastSuccess = run } else { history.lastFailure = run }
        jobs[kind.rawValue] = history
    }

    // MARK: File

    public static func path(stateDirectory: String) -> String { "\(stateDirectory)/state.json" }

    /// The state in `stateDirectory`, or nil when there is none.
    public static func load(stateDirectory: String) throws -> DaemonState? {
        let path = path(stateDirectory: stateDirectory)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try RepositoryJSON.decoder().decode(DaemonState.self, from: data)
    }

    /// Writes atomically: a temp file in the same directory, fsynced, renamed over state.json,
    /// then the directory fsynced. A crash leaves the old file or the new one, never half of one.
    public func save(stateDirectory: String) throws {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        let bytes = Array(try RepositoryJSON.encoder().encode(self))
        try DurableFile.replace(Self.path(stateDirectory: stateDirectory), with: bytes, mode: 0o644,
                                temporaryPath: "\(stateDirectory)/.state.json.\(getpid()).tmp")
    }

    // MARK: Rebuilding

    /// What the repository tells about past runs: the newest backup of each kind (a success of
    /// `backup` or `base_backup`) and the newest drill report (success or failure of `drill`).
    public static func rebuild(from repository: Repository, now: Date = Date()) async throws -> DaemonState {
        var state = DaemonState()
        state.rebuiltAt = now
        let backups = try await repository.backups()
        for (kind, backupKind) in [(JobKind.backup, BackupKind.logical), (.baseBackup, .base)] {
            if let newest = backups.last(where: { $0.kind == backupKind }) {
                state.record(kind, JobRun(start: newest.startedAt, end: newest.finishedAt, outcome: .succeeded, backupId: newest.backupId))
            }
        }
        let reports = try await repository.drillReports()
        if let newest = reports.last, let report = try? await repository.drillReport(newest) {
            state.record(.drill, report.jobRun)
        }
        if let passed = try await repository.newestPassedDrill(in: reports) {
            state.record(.drill, passed.jobRun)
            if let newest = reports.last, newest.drillId != passed.drillId, let report = try? await repository.drillReport(newest) {
                state.record(.drill, report.jobRun)
            }
        }
        return state
    }
}

extension DrillReport {
    var jobRun: JobRun {
        JobRun(start: startedAt, end: finishedAt, outcome: passed ? .succeeded : .failed,
               error: passed ? nil : "\(failures.count) check(s) failed", backupId: backupId, drillId: drillId)
    }
}

/// A drill report's place in the repository.
public struct DrillReportKey: Sendable, Hashable {
    public var backupId: String
    public var drillId: String
    public var key: String
}

extension Repository {
    /// Every drill report, oldest first (drill ids sort by time).
    public func drillReports() async throws -> [DrillReportKey] {
        try await storage.list(prefix: layout.drillsPrefix).compactMap { object -> DrillReportKey? in
            guard let report = layout.drillReport(ofKey: object.key) else { return nil }
            return DrillReportKey(backupId: report.backupId, drillId: report.drillId, key: object.key)
        }.sorted { ($0.drillId, $0.backupId) < ($1.drillId, $1.backupId) }
    }

    public func drillReport(_ key: DrillReportKey) async throws -> DrillReport {
        try DrillReport.decode(try await storage.getAll(key: key.key))
    }

    /// The newest drill that passed, reading reports newest first (at most `limit` of them).
    public func newestPassedDrill(in reports: [DrillReportKey]? = nil, limit: Int = 50) async throws -> DrillReport? {
        let all: [DrillReportKey]
        if let reports { all = reports } else { all = try await drillReports() }
        for key in all.reversed().prefix(limit) {
            if let report = try? await drillReport(key), report.passed { return report }
        }
        return nil
    }
}
