import Foundation
import ObjectStorage
@testable import PGBackupCore
import Testing

/// The rules over two simulated years: one logical backup a day (two on every fifth day), one
/// base backup a week. Expected sets are computed here from day numbers, not with the calendar
/// code under test.
@Suite struct RetentionPolicyTests {
    static let catalog = Synthetic.catalog()
    static let now = Synthetic.date(day: 730, hour: 0)

    /// Days since 1970-01-01 (UTC) of a backup.
    static func dayNumber(_ date: Date) -> Int { Int((date.timeIntervalSince1970 / 86_400).rounded(.down)) }
    /// ISO weeks run Monday to Sunday; 1970-01-01 was a Thursday, so day -3 was a Monday.
    static func weekNumber(_ date: Date) -> Int { Int((Double(dayNumber(date) + 3) / 7).rounded(.down)) }
    /// year * 12 + month, from the day number (H. Hinnant's civil_from_days).
    static func monthNumber(_ date: Date) -> Int {
        let z = dayNumber(date) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return year * 12 + month
    }

    /// The newest backup of each of the `count` newest buckets.
    static func newestPerBucket(_ backups: [Manifest], count: Int, bucket: (Date) -> Int) -> Set<String> {
        let groups = Dictionary(grouping: backups) { bucket($0.startedAt) }
        let newestBuckets = groups.keys.sorted(by: >).prefix(count)
        return Set(newestBuckets.map { key in groups[key]!.max { $0.startedAt < $1.startedAt }!.backupId })
    }

    static func newest(_ backups: [Manifest], _ count: Int) -> Set<String> {
        Set(backups.sorted { $0.startedAt > $1.startedAt }.prefix(count).map(\.backupId))
    }

    static func expected(_ rules: RetentionConfiguration, kind: BackupKind, catalog: [Manifest] = catalog) -> Set<String> {
        let backups = catalog.filter { $0.kind == kind }
        return newest(backups, rules.keepLast)
            .union(newest(backups, rules.minKeep))
            .union(newestPerBucket(backups, count: rules.keepDaily, bucket: dayNumber))
            .union(newestPerBucket(backups, count: rules.keepWeekly, bucket: weekNumber))
            .union(newestPerBucket(backups, count: rules.keepMonthly, bucket: monthNumber))
    }

    static func kept(_ rules: RetentionConfiguration, kind: BackupKind, leases: [BackupLease.Record] = []) -> Set<String> {
        Set(RetentionPolicy(rules: rules).evaluate(catalog, leases: leases, now: now).filter { $0.keep && $0.kind == kind }.map(\.backupId))
    }

    static let only: [(String, RetentionConfiguration)] = [
        ("keep_last", RetentionConfiguration(keepLast: 9, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, minKeep: 1)),
        ("keep_daily", RetentionConfiguration(keepLast: 0, keepDaily: 20, keepWeekly: 0, keepMonthly: 0, minKeep: 1)),
        ("keep_weekly", RetentionConfiguration(keepLast: 0, keepDaily: 0, keepWeekly: 10, keepMonthly: 0, minKeep: 1)),
        ("keep_monthly", RetentionConfiguration(keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 30, minKeep: 1)),
        ("defaults", RetentionConfiguration()),
        ("combined", RetentionConfiguration(keepLast: 3, keepDaily: 10, keepWeekly: 6, keepMonthly: 18, minKeep: 2)),
    ]

    @Test(arguments: only.map(\.0))
    func eachRuleAndTheirCombinationKeepExactlyTheExpectedBackups(name: String) {
        let rules = Self.only.first { $0.0 == name }!.1
        for kind in [BackupKind.logical, .base] {
            let expected = Self.expected(rules, kind: kind)
            #expect(Self.kept(rules, kind: kind) == expected, "\(name), \(kind)")
            #expect(!expected.isEmpty)
        }
    }

    @Test func ruleCountsOnThisCatalog() {
        // Spot checks of the independent computation itself.
        let logical = Self.catalog.filter { $0.kind == .logical }
        #expect(Self.newestPerBucket(logical, count: 20, bucket: Self.dayNumber).count == 20)
        // Keep 30 months over 24 months of backups: every month, 24 of them.
        #expect(Self.expected(Self.only[3].1, kind: .logical).count == 24)
        #expect(Self.expected(Self.only[3].1, kind: .base).count == 24)
        // A day with two backups keeps its 14:00 one under keep_daily.
        let daily = Self.kept(Self.only[1].1, kind: .logical)
        let twice = Synthetic.logical(day: 728, hour: 14).backupId
        #expect(daily.contains(twice))
        #expect(!daily.contains(Synthetic.logical(day: 728, hour: 2).backupId))
    }

    @Test func weeklyFollowsISOWeeksAcrossTheYearEnd() {
        // 2025-12-29 (Monday) to 2026-01-04 (Sunday) is ISO week 2026-W01.
        let monday = Date(timeIntervalSince1970: 1_766_966_400)
        #expect(RetentionPolicy.isoWeek(monday) == "2026-W01")
        #expect(RetentionPolicy.isoWeek(monday.addingTimeInterval(-1)) == "2025-W52")
        #expect(RetentionPolicy.isoWeek(monday.addingTimeInterval(7 * 86_400 - 1)) == "2026-W01")
        #expect(RetentionPolicy.day(monday.addingTimeInterval(-1)) == "2025-12-28")
        #expect(RetentionPolicy.month(monday.addingTimeInterval(3 * 86_400)) == "2026-01")
    }

    @Test func minKeepHoldsWhateverTheRulesSay() {
        let none = RetentionConfiguration(keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, minKeep: 3)
        for kind in [BackupKind.logical, .base] {
            #expect(Self.kept(none, kind: kind) == Self.newest(Self.catalog.filter { $0.kind == kind }, 3))
        }
        // One backup of a kind, rules that keep nothing: it stays.
        let single = [Synthetic.logical(day: 1, hour: 2)]
        let decisions = RetentionPolicy(rules: RetentionConfiguration(keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, minKeep: 1))
            .evaluate(single, leases: [], now: Self.now)
        #expect(decisions.map(\.reasons) == [[.minKeep]])
    }

    @Test func aBackupWithALiveLeaseIsKeptAndAStaleLeaseIsNot() {
        let rules = RetentionConfiguration()
        let old = Synthetic.logical(day: 10, hour: 2).backupId
        #expect(!Self.kept(rules, kind: .logical).contains(old))
        func lease(heartbeatAgo: TimeInterval) -> BackupLease.Record {
            BackupLease.Record(backupId: old, leaseId: "l", purpose: "drill", host: "h", pid: 1,
                               acquiredAt: Self.now.addingTimeInterval(-7200), heartbeatAt: Self.now.addingTimeInterval(-heartbeatAgo))
        }
        let live = RetentionPolicy(rules: rules).evaluate(Self.catalog, leases: [lease(heartbeatAgo: 60)], now: Self.now)
        #expect(live.first { $0.backupId == old }?.reasons == [.inUse])
        #expect(Self.kept(rules, kind: .logical, leases: [lease(heartbeatAgo: 60)]) == Self.expected(rules, kind: .logical).union([old]))
        #expect(!Self.kept(rules, kind: .logical, leases: [lease(heartbeatAgo: BackupLease.ttl + 1)]).contains(old))
    }

    @Test func everyKeptBackupSaysWhy() {
        let decisions = RetentionPolicy(rules: RetentionConfiguration()).evaluate(Self.catalog, leases: [], now: Self.now)
        let newest = decisions.filter { $0.kind == .logical }.last!
        #expect(newest.reasons == [.last, .daily, .weekly, .monthly, .minKeep])
        #expect(decisions.map(\.startedAt) == decisions.map(\.startedAt).sorted())
        #expect(decisions.count == Self.catalog.count)
    }

    // MARK: WAL

    @Test func walBeforeTheOldestKeptBaseBackupGoesOldestFirst() {
        let options = Synthetic.Options(days: 40, timelineSwitchDay: 30)
        let repository = Repository(storage: SimulatedStorage(), stanza: "main")
        let catalog = Synthetic.catalog(options)
        let bases = catalog.filter { $0.kind == .base }
        let archived = Synthetic.walFiles(options, bases: bases).map { ObjectInfo(key: Synthetic.walKey(repository, $0), size: 1) }
        // Oldest kept base on timeline 1 (day 18, start segment 73): timeline 2 stays whole.
        let kept = bases.filter { $0.startedAt >= Synthetic.date(day: 18, hour: 0) }
        let plan = RetentionPolicy.walToExpire(archived: archived, layout: repository.layout, keptBases: kept)
        #expect(plan.keepFromSegment == Synthetic.segmentName(1, 73))
        #expect(plan.expired.count == 73 + 2) // segments 0...72 and the .backup labels of days 4 and 11
        #expect(plan.expired.first == Synthetic.walKey(repository, WALFileName(Synthetic.segmentName(1, 0))!))
        #expect(plan.expired.last == Synthetic.walKey(repository, WALFileName(Synthetic.segmentName(1, 72))!), "both naming styles expire")
        #expect(plan.expired.last?.hasSuffix("-\(WALObjectName.sha256(of: Synthetic.walContent(WALFileName(Synthetic.segmentName(1, 72))!))).gz") == true)
        #expect(plan.expired.allSatisfy { $0.contains("/wal/00000001/") })
        #expect(!plan.expired.contains { $0.contains(".history") })

        // Oldest kept base on timeline 2: timeline 1 goes entirely, timeline 2 up to its start.
        let onTwo = bases.filter { $0.wal!.timeline == 2 }
        let second = RetentionPolicy.walToExpire(archived: archived, layout: repository.layout, keptBases: onTwo)
        let start = 4 * 32 + 1 // first base on timeline 2: day 32
        #expect(second.keepFromSegment == Synthetic.segmentName(2, start))
        let expectedTL1 = archived.filter { $0.key.contains("/wal/00000001/") && !$0.key.contains(".history") }.count
        let expectedTL2 = start - 4 * 30 // timeline 2 begins at segment 120
        #expect(second.expired.count == expectedTL1 + expectedTL2)
        #expect(second.expired.contains(Synthetic.walKey(repository, WALFileName("00000002.history")!)) == false)

        let none = RetentionPolicy.walToExpire(archived: archived, layout: repository.layout, keptBases: [])
        #expect(none.expired.isEmpty)
        #expect(none.note.contains("no base backup"))
    }
}
