import Foundation
import ObjectStorage

/// Which backups and which WAL `pgbackd expire` keeps: pure functions of the catalog, the
/// leases and the clock, so every rule can be tested with a clock the test controls.
public struct RetentionPolicy: Sendable {
    /// Why a backup is kept. A backup kept by several rules lists each of them.
    public enum Reason: String, Sendable, Encodable, Comparable {
        case last
        case daily
        case weekly
        case monthly
        case minKeep = "min_keep"
        case inUse = "in_use"

        public static func < (lhs: Reason, rhs: Reason) -> Bool { lhs.order < rhs.order }
        private var order: Int { [.last, .daily, .weekly, .monthly, .minKeep, .inUse].firstIndex(of: self)! }
    }

    public struct Decision: Sendable, Encodable, Equatable {
        public var backupId: String
        public var kind: BackupKind
        public var startedAt: Date
        /// Empty: the backup expires.
        public var reasons: [Reason]
        public var keep: Bool { !reasons.isEmpty }
    }

    public let rules: RetentionConfiguration

    public init(rules: RetentionConfiguration) {
        self.rules = rules
    }

    /// One decision per backup, oldest first. Each kind is judged on its own backups.
    /// `leases` holding a live heartbeat at `now` keep their backup (``Reason/inUse``).
    public func evaluate(_ backups: [Manifest], leases: [BackupLease.Record], now: Date) -> [Decision] {
        let inUse = Set(leases.filter { $0.isLive(at: now) }.map(\.backupId))
        var decisions: [Decision] = []
        for kind in [BackupKind.logical, .base] {
            decisions += evaluate(backups.filter { $0.kind == kind }, inUse: inUse)
        }
        return decisions.sorted { ($0.startedAt, $0.backupId) < ($1.startedAt, $1.backupId) }
    }

    private func evaluate(_ backups: [Manifest], inUse: Set<String>) -> [Decision] {
        // Newest first; equal times fall back to the id, which sorts by time too.
        let newestFirst = backups.sorted { ($0.startedAt, $0.backupId) > ($1.startedAt, $1.backupId) }
        var reasons: [String: Set<Reason>] = [:]
        for backup in newestFirst.prefix(rules.keepLast) { reasons[backup.backupId, default: []].insert(.last) }
        for backup in newestFirst.prefix(rules.minKeep) { reasons[backup.backupId, default: []].insert(.minKeep) }
        for (reason, count, bucket) in [(Reason.daily, rules.keepDaily, Self.day), (.weekly, rules.keepWeekly, Self.isoWeek), (.monthly, rules.keepMonthly, Self.month)] {
            // The first backup seen in a bucket is that bucket's newest; take the first `count` buckets.
            var seen: Set<String> = []
            for backup in newestFirst where seen.count < count {
                if seen.insert(bucket(backup.startedAt)).inserted { reasons[backup.backupId, default: []].insert(reason) }
            }
        }
        for backup in newestFirst where inUse.contains(backup.backupId) { reasons[backup.backupId, default: []].insert(.inUse) }
        return newestFirst.map { Decision(backupId: $0.backupId, kind: $0.kind, startedAt: $0.startedAt, reasons: (reasons[$0.backupId] ?? []).sorted()) }
    }

    private static func calendar(_ identifier: Calendar.Identifier) -> Calendar {
        var calendar = Calendar(identifier: identifier)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    /// `2026-11-25`: UTC calendar day.
    static func day(_ date: Date) -> String {
        let c = calendar(.gregorian).dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }

    /// `2026-W48`: ISO 8601 week (Monday to Sunday, week 1 holds the year's first Thursday), UTC.
    static func isoWeek(_ date: Date) -> String {
        let c = calendar(.iso8601).dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
        return String(format: "%04d-W%02d", c.yearForWeekOfYear!, c.weekOfYear!)
    }

    /// `2026-11`: UTC calendar month.
    static func month(_ date: Date) -> String {
        let c = calendar(.gregorian).dateComponents([.year, .month], from: date)
        return String(format: "%04d-%02d", c.year!, c.month!)
    }

    // MARK: WAL

    /// The WAL objects expire may remove, given the base backups it keeps.
    public struct WALPlan: Sendable, Encodable, Equatable {
        /// Segments on this timeline (and earlier ones) before ``keepFromSegment`` go. Nil: all WAL is kept.
        public var keepFromTimeline: UInt32?
        public var keepFromSegment: String?
        /// Keys to delete, oldest first, so an interrupted run leaves a contiguous archive.
        public var expired: [String]
        /// Why WAL is kept or where the cut is, for humans.
        public var note: String
    }

    /// WAL no kept base backup can need: on the oldest kept base backup's timeline and earlier
    /// ones, segments (and `.backup`/`.partial` files) before its start segment. History files
    /// and everything on later timelines stay: recovery from a kept backup follows them to the
    /// newest WAL. Without a kept base backup nothing goes (a base backup may be about to start).
    public static func walToExpire(archived: [ObjectInfo], layout: RepositoryLayout, keptBases: [Manifest]) -> WALPlan {
        guard !keptBases.isEmpty else {
            return WALPlan(expired: [], note: "no base backup is kept: all WAL is kept")
        }
        let ranges = keptBases.compactMap(\.wal)
        guard ranges.count == keptBases.count else {
            let without = keptBases.filter { $0.wal == nil }.map(\.backupId)
            return WALPlan(expired: [], note: "base backup \(without.joined(separator: ", ")) records no WAL range: all WAL is kept")
        }
        let segmentSize = ranges[0].segmentSize
        var oldest: (timeline: UInt32, number: UInt64, name: String)?
        for range in ranges {
            guard let number = WALFileName(range.startSegment)?.segmentNumber(segmentSize: range.segmentSize) else {
                return WALPlan(expired: [], note: "start segment \(range.startSegment) of a kept base backup is not a WAL file name: all WAL is kept")
            }
            if oldest == nil || (range.timeline, number) < (oldest!.timeline, oldest!.number) {
                oldest = (range.timeline, number, range.startSegment)
            }
        }
        guard let oldest else { return WALPlan(expired: [], note: "all WAL is kept") }
        var expired: [(file: WALFileName, number: UInt64, key: String)] = []
        for object in archived {
            guard let file = layout.walObjectName(ofKey: object.key)?.file, file.kind != .history,
                  let number = file.segmentNumber(segmentSize: segmentSize)
            else { continue }
            if file.timeline <= oldest.timeline && number < oldest.number {
                expired.append((file, number, object.key))
            }
        }
        expired.sort { ($0.file.timeline, $0.number, $0.file.name) < ($1.file.timeline, $1.number, $1.file.name) }
        return WALPlan(keepFromTimeline: oldest.timeline, keepFromSegment: oldest.name, expired: expired.map(\.key),
                       note: "WAL from \(oldest.name) (timeline \(oldest.timeline)) on is kept, with every history file and later timeline")
    }
}
