import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

@Suite struct ExpireJobTests {
    static let logger = Logger(label: "test")

    struct Fixture {
        let storage = SimulatedStorage()
        let repository: Repository
        let catalog: [Manifest]
        let options: Synthetic.Options
        let now: Date

        init(options: Synthetic.Options) async throws {
            self.options = options
            repository = Repository(storage: storage, stanza: "main")
            catalog = Synthetic.catalog(options)
            now = Synthetic.date(day: options.days, hour: 0)
            try await Synthetic.seed(storage, repository: repository, catalog: catalog, options: options)
            storage.now = now
        }

        func expire(_ rules: RetentionConfiguration, dryRun: Bool = false) async throws -> ExpireJob.Result {
            try await ExpireJob(rules: rules, repository: repository, logger: ExpireJobTests.logger).run(now: now, dryRun: dryRun)
        }

        /// What `list`, `drill` and `wal-check` need: every listed backup has all its artifacts,
        /// and the WAL archive brings every base backup to the newest WAL without a gap.
        func assertRepositoryIsSound(_ context: String) async throws {
            for manifest in try await repository.backups() {
                for artifact in manifest.artifacts {
                    let head = try await storage.head(key: repository.key(relative: artifact.key))
                    #expect(head?.size == artifact.storedSize, "\(context): \(manifest.backupId) lost \(artifact.key)")
                }
            }
            let report = try await WALCheck(repository: repository).run()
            #expect(report.isComplete, "\(context): gaps \(report.gaps) missing history \(report.missingHistory)")
            #expect(report.backups.allSatisfy { $0.consistent && $0.recoverableToLatest }, "\(context)")
        }

        /// Independently computed: the WAL files left when `kept` are the base backups kept.
        func expectedWAL(keptBases: [Manifest]) -> Set<String> {
            let oldest = keptBases.map { ($0.wal!.timeline, WALFileName($0.wal!.startSegment)!.segmentNumber(segmentSize: Synthetic.segmentSize)!) }.min { $0 < $1 }!
            return Set(Synthetic.walFiles(options, bases: catalog.filter { $0.kind == .base }).filter { file in
                file.kind == .history || file.timeline > oldest.0 || file.segmentNumber(segmentSize: Synthetic.segmentSize)! >= oldest.1
            }.map { Synthetic.walKey(repository, $0) })
        }
    }

    @Test func twoYearsUnderTheDefaultRules() async throws {
        let fixture = try await Fixture(options: Synthetic.Options())
        let rules = RetentionConfiguration()
        // An old base backup in use by a restore: it and the WAL from its start survive.
        let leased = fixture.catalog.first { $0.kind == .base && $0.startedAt > Synthetic.date(day: 200, hour: 0) }!
        let lease = BackupLease.Record(backupId: leased.backupId, leaseId: "l1", purpose: "restore", host: "h", pid: 1,
                                       acquiredAt: fixture.now.addingTimeInterval(-3600), heartbeatAt: fixture.now.addingTimeInterval(-30))
        let leaseKey = BackupLease.key(in: fixture.repository, backupId: leased.backupId, leaseId: "l1")
        try await fixture.storage.put(key: leaseKey, bytes: try BackupLease.encode(lease))
        // Leftovers: an interrupted backup two days old (goes) and one an hour old (stays).
        fixture.storage.now = fixture.now.addingTimeInterval(-2 * 86_400)
        try await fixture.storage.put(key: fixture.repository.key(relative: "backups/20261229T030000Z-logical/daylog.dump.gz"), bytes: [1])
        fixture.storage.now = fixture.now.addingTimeInterval(-3600)
        try await fixture.storage.put(key: fixture.repository.key(relative: "backups/20261231T230000Z-logical/daylog.dump.gz"), bytes: [1])
        fixture.storage.now = fixture.now

        let expectedLogical = RetentionPolicyTests.expected(rules, kind: .logical, catalog: fixture.catalog)
        let expectedBase = RetentionPolicyTests.expected(rules, kind: .base, catalog: fixture.catalog).union([leased.backupId])

        let before = try await fixture.storage.keys
        let dry = try await fixture.expire(rules, dryRun: true)
        #expect(try await fixture.storage.keys == before, "a dry run deletes nothing")
        #expect(Set(dry.expired) == Set(fixture.catalog.map(\.backupId)).subtracting(expectedLogical).subtracting(expectedBase))
        #expect(dry.orphans == ["main/backups/20261229T030000Z-logical/daylog.dump.gz"])

        let result = try await fixture.expire(rules)
        #expect(result.expired == dry.expired)
        #expect(result.wal.expired == dry.wal.expired)
        let remaining = try await fixture.repository.backups()
        #expect(Set(remaining.filter { $0.kind == .logical }.map(\.backupId)) == expectedLogical)
        #expect(Set(remaining.filter { $0.kind == .base }.map(\.backupId)) == expectedBase)
        #expect(remaining.first { $0.backupId == leased.backupId } != nil)

        // Nothing of an expired backup is left; kept ones keep their drill reports.
        let keys = try await fixture.storage.keys
        for id in result.expired {
            #expect(!keys.contains { $0.contains("/\(id)/") }, "\(id) left objects")
        }
        #expect(keys.contains(fixture.repository.drillReportKey(backupId: leased.backupId, drillId: "d1")))
        #expect(!keys.contains("main/backups/20261229T030000Z-logical/daylog.dump.gz"))
        #expect(keys.contains("main/backups/20261231T230000Z-logical/daylog.dump.gz"))
        #expect(keys.contains(leaseKey))

        // WAL: exactly what no kept base backup needs went.
        let wal = keys.filter { $0.hasPrefix(fixture.repository.walPrefix) }
        #expect(wal == fixture.expectedWAL(keptBases: remaining.filter { $0.kind == .base }))
        #expect(!result.wal.expired.isEmpty)
        #expect(result.wal.keepFromSegment == leased.wal!.startSegment)
        try await fixture.assertRepositoryIsSound("after expire")

        // A second run finds nothing more to do.
        let again = try await fixture.expire(rules)
        #expect(again.expired.isEmpty && again.wal.expired.isEmpty && again.orphans.isEmpty)
    }

    static func putOld(_ key: String, in fixture: Fixture) async throws {
        fixture.storage.now = Synthetic.epoch
        try await fixture.storage.put(key: key, bytes: [1])
        fixture.storage.now = fixture.now
    }

    /// Encrypted stanzas: the data keys of a backup that never committed go with its objects once
    /// a day old; those of a committed backup, and fresh ones, stay; an expired backup's go too.
    @Test func dataKeysOfUncommittedAndExpiredBackupsGo() async throws {
        let fixture = try await Fixture(options: Synthetic.Options(days: 30, withBases: false, timelineSwitchDay: nil))
        let layout = fixture.repository.layout
        let rules = RetentionConfiguration(keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, minKeep: 1)
        let newest = fixture.catalog.filter { $0.kind == .logical }.last!.backupId
        let oldest = fixture.catalog.filter { $0.kind == .logical }.first!.backupId
        let failed = "20250101T230000Z-logical", running = "20250102T230000Z-logical"
        func keyOf(_ id: String) -> String { layout.wrappedKeyKey(scope: "backups/\(id)", keyId: "0123456789abcdef") }
        for id in [newest, oldest, failed] { try await Self.putOld(keyOf(id), in: fixture) }
        try await fixture.storage.put(key: keyOf(running), bytes: [1]) // a backup being taken now
        let result = try await fixture.expire(rules)
        let left = try await fixture.storage.keys
        #expect(left.contains(keyOf(newest)), "the kept backup's data key stays")
        #expect(left.contains(keyOf(running)), "a fresh data key (a backup in progress) stays")
        #expect(!left.contains(keyOf(failed)) && result.orphans.contains(keyOf(failed)), "an uncommitted backup's old data key goes")
        #expect(!left.contains(keyOf(oldest)), "an expired backup's data key goes")
    }

    @Test func withoutABaseBackupAllWALIsKept() async throws {
        let fixture = try await Fixture(options: Synthetic.Options(days: 30, withBases: false, timelineSwitchDay: nil))
        let result = try await fixture.expire(RetentionConfiguration(keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, minKeep: 1))
        #expect(result.wal.expired.isEmpty)
        #expect(result.wal.note.contains("no base backup"))
        #expect(try await fixture.repository.backups().count == 1)
        #expect(try await fixture.storage.keys.filter { $0.hasPrefix("main/wal/") }.count == 30 * 4)
    }

    /// A kill at any point: the storage fails after the k-th delete, for every k. Each time the
    /// repository must be sound, and a second run must reach the same end state as an
    /// uninterrupted one.
    @Test func aKillAtAnyPointOfExpireIsHarmless() async throws {
        let options = Synthetic.Options(days: 50, secondLogicalEvery: 1000, timelineSwitchDay: 36)
        let rules = RetentionConfiguration(keepLast: 2, keepDaily: 5, keepWeekly: 2, keepMonthly: 1, minKeep: 2)
        let clean = try await Fixture(options: options)
        let orphan = clean.repository.key(relative: "backups/20250101T230000Z-logical/daylog.dump.gz")
        try await Self.putOld(orphan, in: clean)
        _ = try await clean.expire(rules)
        let endState = try await clean.storage.keys
        let totalDeletes = clean.storage.deletes
        #expect(totalDeletes > 150)
        #expect(!endState.contains(orphan))
        try await clean.assertRepositoryIsSound("uninterrupted")

        for k in 0..<totalDeletes {
            let fixture = try await Fixture(options: options)
            try await Self.putOld(orphan, in: fixture)
            fixture.storage.failAfterDeletes = k
            await #expect(throws: StorageError.self) { _ = try await fixture.expire(rules) }
            #expect(fixture.storage.deletes == k)
            try await fixture.assertRepositoryIsSound("killed after \(k) deletes")
            // Every backup the rules keep is still listed.
            let listed = Set(try await fixture.repository.backups().map(\.backupId))
            let kept = RetentionPolicyTests.expected(rules, kind: .logical, catalog: fixture.catalog)
                .union(RetentionPolicyTests.expected(rules, kind: .base, catalog: fixture.catalog))
            #expect(kept.isSubset(of: listed), "killed after \(k) deletes")

            fixture.storage.failAfterDeletes = nil
            _ = try await fixture.expire(rules)
            #expect(try await fixture.storage.keys == endState, "second run after a kill at \(k)")
        }
    }

    @Test func aLeaseIsWrittenWhileTheBodyRunsAndRemovedAfter() async throws {
        let storage = MemoryStorage()
        let repository = Repository(storage: storage, stanza: "main")
        let manifest = Synthetic.logical(day: 1, hour: 2)
        try await storage.put(key: repository.manifestKey(manifest.backupId), bytes: try manifest.encoded())
        let lease = BackupLease(repository: repository, purpose: "drill", logger: Self.logger)
        let seen = try await lease.withLease(resolving: "latest") { id in
            #expect(id == manifest.backupId)
            return try await BackupLease.all(in: repository).compactMap(\.record)
        }
        #expect(seen.map(\.backupId) == [manifest.backupId])
        #expect(seen.first?.purpose == "drill")
        #expect(seen.first?.isLive(at: Date()) == true)
        #expect(try await BackupLease.all(in: repository).isEmpty)
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await lease.withLease(manifest.backupId) { throw Boom() } }
        #expect(try await BackupLease.all(in: repository).isEmpty)
    }
}
