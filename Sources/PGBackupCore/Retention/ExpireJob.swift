import Foundation
import Logging
import ObjectStorage

/// `pgbackd expire` and the scheduled retention job: removes the backups ``RetentionPolicy``
/// expires, the WAL no kept base backup needs, and what interrupted runs left behind.
///
/// Deletion order makes an interruption at any point harmless:
/// 1. per expired backup (oldest first) its manifest first, so it stops being listed before any
///    artifact goes, then its artifacts and drill reports;
/// 2. WAL, judged from the catalog as it is *after* step 1 (so a backup kept because a lease
///    appeared meanwhile still has its WAL), oldest segment first, so what is left is contiguous;
/// 3. objects under `backups/<id>/` and `drills/<id>/` with no manifest and older than a day
///    (an interrupted backup, or leftovers of an interrupted expire), stale leases, and
///    incomplete uploads started more than a day ago.
public struct ExpireJob: Sendable {
    /// Uncommitted objects and uploads younger than this may belong to a backup still running.
    public static let orphanAge: TimeInterval = 24 * 3600

    public struct Result: Sendable, Encodable {
        public var dryRun: Bool
        public var now: Date
        /// Every backup of the catalog, oldest first, with the rules that keep it (none: expired).
        public var backups: [RetentionPolicy.Decision]
        /// Backups removed (in a dry run: that would be removed).
        public var expired: [String]
        /// Expired by the rules, but a lease appeared before its manifest was deleted: kept.
        public var skippedInUse: [String]
        public var wal: RetentionPolicy.WALPlan
        /// Objects without a committed manifest, older than a day.
        public var orphans: [String]
        public var staleLeases: [String]
        /// Incomplete uploads aborted; nil in a dry run (storage cannot list them without aborting).
        public var abortedUploads: Int?
        public var deletedObjects: Int
    }

    let rules: RetentionConfiguration
    let repository: Repository
    let logger: Logger

    public init(rules: RetentionConfiguration, repository: Repository, logger: Logger) {
        self.rules = rules
        self.repository = repository
        self.logger = logger
    }

    public func run(now: Date, dryRun: Bool = false) async throws -> Result {
        var logger = logger
        logger[metadataKey: "retention.dry_run"] = "\(dryRun)"
        let storage = repository.storage
        let catalog = try await repository.backups()
        let leases = try await liveLeaseRecords(now: now)
        let decisions = RetentionPolicy(rules: rules).evaluate(catalog, leases: leases, now: now)
        let backupObjects = Dictionary(grouping: try await storage.list(prefix: repository.backupsPrefix)) { repository.layout.backupId(ofKey: $0.key) ?? "" }
        var result = Result(dryRun: dryRun, now: now, backups: decisions, expired: [], skippedInUse: [],
                            wal: RetentionPolicy.WALPlan(expired: [], note: ""), orphans: [], staleLeases: [], abortedUploads: nil, deletedObjects: 0)

        // 1. Expired backups: manifest first.
        for decision in decisions where !decision.keep {
            var logger = logger
            logger[metadataKey: "retention.backup_id"] = "\(decision.backupId)"
            if dryRun {
                result.expired.append(decision.backupId)
                continue
            }
            // A restore or drill may have taken a lease since the catalog was read.
            if try await liveLeaseRecords(now: now, backupId: decision.backupId).isEmpty == false {
                logger.notice("backup expired by the rules but now in use: kept")
                result.skippedInUse.append(decision.backupId)
                continue
            }
            try await storage.delete(key: repository.manifestKey(decision.backupId))
            result.deletedObjects += 1
            let manifestKey = repository.manifestKey(decision.backupId)
            for object in backupObjects[decision.backupId] ?? [] where object.key != manifestKey {
                try await storage.delete(key: object.key)
                result.deletedObjects += 1
            }
            for object in try await storage.list(prefix: repository.layout.drillReportsPrefix(backupId: decision.backupId)) {
                try await storage.delete(key: object.key)
                result.deletedObjects += 1
            }
            // Last, once nothing of the backup needs them: its data keys (encrypted stanzas).
            if let scope = repository.layout.encryptionScope(ofKey: manifestKey) {
                for object in try await storage.list(prefix: repository.layout.wrappedKeysPrefix(scope: scope)) {
                    try await storage.delete(key: object.key)
                    result.deletedObjects += 1
                }
            }
            result.expired.append(decision.backupId)
            logger.info("backup expired", metadata: ["retention.kind": "\(decision.kind.rawValue)"])
        }

        // 2. WAL, from the base backups that are still there (dry run: that would still be there).
        let keptBases: [Manifest]
        if dryRun {
            let kept = Set(decisions.filter(\.keep).map(\.backupId))
            keptBases = catalog.filter { $0.kind == .base && kept.contains($0.backupId) }
        } else {
            keptBases = try await repository.backups().filter { $0.kind == .base }
        }
        result.wal = RetentionPolicy.walToExpire(archived: try await storage.list(prefix: repository.walPrefix),
                                                 layout: repository.layout, keptBases: keptBases)
        logger.info("WAL retention", metadata: ["retention.wal_note": "\(result.wal.note)", "retention.wal_expired": "\(result.wal.expired.count)"])
        if !dryRun {
            for key in result.wal.expired {
                try await storage.delete(key: key)
                result.deletedObjects += 1
            }
        }

        // 3. Leftovers: objects without a manifest, older than a day.
        let cutoff = now.addingTimeInterval(-Self.orphanAge)
        let remaining = dryRun
            ? backupObjects.filter { id, _ in !result.expired.contains(id) }
            : Dictionary(grouping: try await storage.list(prefix: repository.backupsPrefix)) { repository.layout.backupId(ofKey: $0.key) ?? "" }
        var committed: Set<String> = []
        for (id, objects) in remaining where objects.contains(where: { $0.key == repository.manifestKey(id) }) { committed.insert(id) }
        /// Removes (or, dry, lists) the groups of a backup id that never committed, all older than a day.
        func removeUncommitted(_ groups: [String: [ObjectInfo]]) async throws {
            for (id, objects) in groups.sorted(by: { $0.key < $1.key })
            where !id.isEmpty && !committed.contains(id) && !(dryRun && result.expired.contains(id)) && objects.allSatisfy({ ($0.lastModified ?? now) < cutoff }) {
                for object in objects.sorted(by: { $0.key < $1.key }) {
                    result.orphans.append(object.key)
                    if !dryRun {
                        try await storage.delete(key: object.key)
                        result.deletedObjects += 1
                    }
                }
            }
        }
        let drillObjects = Dictionary(grouping: try await storage.list(prefix: repository.layout.drillsPrefix)) { repository.layout.backupId(ofKey: $0.key) ?? "" }
        try await removeUncommitted(remaining.merging(drillObjects, uniquingKeysWith: +))
        // The data keys of backups that never committed (encrypted stanzas), once their objects
        // are gone: last, as for an expired backup.
        let backupKeys = repository.layout.wrappedKeysPrefix(scope: RepositoryLayout.backupsScopePrefix)
        try await removeUncommitted(Dictionary(grouping: try await storage.list(prefix: backupKeys)) { object in
            object.key.dropFirst(backupKeys.count).split(separator: "/").first.map(String.init) ?? ""
        })
        if !result.orphans.isEmpty { logger.info("objects without a manifest removed", metadata: ["retention.orphans": "\(result.orphans.count)"]) }

        for (object, record) in try await BackupLease.all(in: repository) {
            let heartbeat = record?.heartbeatAt ?? object.lastModified ?? now
            guard heartbeat < cutoff else { continue }
            result.staleLeases.append(object.key)
            if !dryRun {
                try await storage.delete(key: object.key)
                result.deletedObjects += 1
            }
        }
        if !dryRun {
            result.abortedUploads = try await storage.abortIncompleteUploads(prefix: repository.layout.stanzaPrefix, startedBefore: cutoff)
        }
        logger.info(dryRun ? "expire dry run done" : "expire done", metadata: [
            "retention.expired": "\(result.expired.count)", "retention.deleted_objects": "\(result.deletedObjects)",
        ])
        return result
    }

    /// Live leases (of one backup, or all). An unreadable lease object counts as live while the
    /// object itself is younger than the lease TTL: better to keep a backup one run longer.
    private func liveLeaseRecords(now: Date, backupId: String? = nil) async throws -> [BackupLease.Record] {
        try await BackupLease.all(in: repository).compactMap { object, record -> BackupLease.Record? in
            let record = record ?? BackupLease.Record(
                backupId: repository.layout.lease(ofKey: object.key)?.backupId ?? "", leaseId: "", purpose: "unknown", host: "", pid: 0,
                acquiredAt: object.lastModified ?? now, heartbeatAt: object.lastModified ?? now)
            guard record.isLive(at: now), backupId == nil || record.backupId == backupId else { return nil }
            return record
        }
    }
}
