import Foundation

/// What a drill found, stored as `drills/<backup-id>/<drill-id>.json` next to the backup.
public struct DrillReport: Codable, Sendable {
    public var drillId: String
    public var backupId: String
    public var stanza: String
    public var host: String
    public var startedAt: Date
    public var finishedAt: Date
    /// True when every check of every database passed.
    public var passed: Bool
    /// `passed`; `failed`: a check found a problem with the backup; `unverifiable`: nothing
    /// failed, but this drill host could not check everything (an extension it lacks). Absent in
    /// reports written before it was recorded.
    public var verdict: Verdict? = nil

    public enum Verdict: String, Codable, Sendable {
        case passed, failed, unverifiable
    }
    /// Checks about the backup as a whole (its artifacts).
    public var checks: [CheckResult]
    public var databases: [DatabaseDrill]
    /// How long the restores took, all databases together: the recovery time this backup gives
    /// (its RTO) on this host. Absent in reports written before it was recorded.
    public var restoreSeconds: Double? = nil
    /// The backed-up server's version and the drill server's (`server_version_num`): an upgrade
    /// drill's pair. Absent in reports written before it was recorded.
    public var servers: ServerPair? = nil

    public struct ServerPair: Codable, Sendable, Equatable {
        public var source: Int
        public var scratch: Int

        /// `15.18 → 18.6`.
        public var description: String { "\(Self.text(source)) → \(Self.text(scratch))" }
        public var isUpgrade: Bool { scratch / 10_000 > source / 10_000 }

        static func text(_ number: Int) -> String { "\(number / 10_000).\(number % 100)" }
    }

    public struct DatabaseDrill: Codable, Sendable {
        public var name: String
        /// Where it was restored; dropped after the drill unless `--keep`.
        public var scratchDatabase: String
        public var kept: Bool
        public var restoreSeconds: Double
        public var checkSeconds: Double
        public var checks: [CheckResult]
    }

    /// What the checks add up to: a finding about the backup outranks what the host could not verify.
    public var computedVerdict: Verdict {
        let failed = failures
        if failed.isEmpty { return .passed }
        return failed.allSatisfy { $0.check.unverifiable == true } ? .unverifiable : .failed
    }

    /// Sets ``passed`` and ``verdict`` from the checks.
    mutating func settle() {
        passed = failures.isEmpty
        verdict = computedVerdict
    }

    /// Every failed check, with the database it belongs to.
    public var failures: [(database: String?, check: CheckResult)] {
        checks.filter { !$0.passed }.map { (nil, $0) } + databases.flatMap { database in database.checks.filter { !$0.passed }.map { (database.name, $0) } }
    }

    public func encoded() throws -> [UInt8] { Array(try RepositoryJSON.encoder().encode(self)) }

    public static func decode(_ bytes: [UInt8]) throws -> DrillReport {
        try RepositoryJSON.decoder().decode(DrillReport.self, from: Data(bytes))
    }
}
