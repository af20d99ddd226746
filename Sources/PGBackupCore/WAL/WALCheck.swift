import Foundation
import ObjectStorage

/// `pgbackd wal-check`: can every base backup still be recovered to the newest archived WAL?
/// That needs, on the backup's timeline, every segment from its start segment to the newest one
/// archived, and on each later timeline its history file and every segment from its first to its
/// newest. A missing segment ends recovery early without an error, so gaps are found here, not
/// at restore time.
public struct WALCheck: Sendable {
    /// Missing segments `first...last` (inclusive) on `timeline`.
    public struct Gap: Sendable, Equatable, Encodable, CustomStringConvertible {
        public var timeline: UInt32
        public var first: String
        public var last: String
        public var count: UInt64
        public var description: String {
            count == 1 ? "\(first) is missing" : "\(count) segments missing, \(first) to \(last)"
        }
    }

    public struct Timeline: Sendable, Equatable, Encodable {
        public var timeline: UInt32
        public var firstSegment: String
        public var lastSegment: String
        public var segments: Int
        /// Timelines after the first one need `<timeline>.history` to be followed.
        public var hasHistory: Bool
    }

    public struct BackupCoverage: Sendable, Equatable, Encodable {
        public var backupId: String
        public var timeline: UInt32
        public var startSegment: String
        public var stopSegment: String
        /// Every segment from start to stop is archived: the backup can be made consistent.
        public var consistent: Bool
        /// No gap between the backup's start and the newest WAL on its timeline.
        public var recoverableToLatest: Bool
    }

    public struct Report: Sendable, Equatable, Encodable {
        public var segmentSize: Int
        public var timelines: [Timeline]
        public var gaps: [Gap]
        /// Timelines with segments but no history file.
        public var missingHistory: [UInt32]
        public var backups: [BackupCoverage]
        /// Files archived under more than one object (two writers): wal-fetch refuses to choose,
        /// so recovery stops there as at a gap.
        public var ambiguous: [Ambiguous] = []
        /// Segments archived with one content (the same SHA-256 in their object names): no two
        /// segments hold the same bytes (each page names its own address), so all but one of
        /// them hold another segment's WAL under a wrong name; wal-fetch refuses it.
        public var sameContent: [SameContent] = []
        public var isComplete: Bool { gaps.isEmpty && missingHistory.isEmpty && ambiguous.isEmpty && sameContent.isEmpty }

        /// One line per problem: gaps, missing history files, files archived twice.
        public var problems: [String] {
            gaps.map { "timeline \($0.timeline): \($0)" } + missingHistory.map { "history file of timeline \($0) is missing" }
                + ambiguous.map(\.description) + sameContent.map(\.description)
        }
    }

    public struct SameContent: Sendable, Equatable, Encodable, CustomStringConvertible {
        public var sha256: String
        public var keys: [String]
        public var description: String {
            "\(keys.count) segments are archived with the same content (SHA-256 \(sha256)): \(keys.joined(separator: ", ")); a segment's bytes are stored under another segment's name"
        }
    }

    public struct Ambiguous: Sendable, Equatable, Encodable, CustomStringConvertible {
        public var file: String
        public var keys: [String]
        public var description: String { "\(file) is archived as \(keys.count) objects (\(keys.joined(separator: ", ")))" }
    }

    public let repository: Repository

    public init(repository: Repository) {
        self.repository = repository
    }

    public func run() async throws -> Report {
        let objects = try await repository.storage.list(prefix: repository.walPrefix)
        // Both naming styles (with and without the checksum); only names count for gaps.
        var keysByFile: [WALFileName: [String]] = [:]
        var segmentKeysBySHA: [String: [String]] = [:]
        for object in objects {
            guard let name = repository.layout.walObjectName(ofKey: object.key) else { continue }
            keysByFile[name.file, default: []].append(object.key)
            if name.file.kind == .segment, let sha256 = name.sha256 { segmentKeysBySHA[sha256, default: []].append(object.key) }
        }
        let bases = try await repository.backups().filter { $0.kind == .base && $0.wal != nil }
        var report = Self.analyze(archived: Array(keysByFile.keys), bases: bases)
        report.ambiguous = keysByFile.filter { $0.value.count > 1 }.sorted { $0.key < $1.key }
            .map { Ambiguous(file: $0.key.name, keys: $0.value.sorted()) }
        report.sameContent = segmentKeysBySHA.filter { $0.value.count > 1 }.sorted { $0.key < $1.key }
            .map { SameContent(sha256: $0.key, keys: $0.value.sorted()) }
        return report
    }

    /// The check itself, on names alone. The segment size comes from the base backups' manifests
    /// (PostgreSQL's default, 16 MiB, when there are none): names do not tell it.
    static func analyze(archived: [WALFileName], bases: [Manifest]) -> Report {
        let segmentSize = bases.last?.wal?.segmentSize ?? 16 << 20
        var segmentsByTimeline: [UInt32: Set<UInt64>] = [:]
        var histories: Set<UInt32> = []
        for file in archived {
            switch file.kind {
            case .segment:
                if let number = file.segmentNumber(segmentSize: segmentSize) { segmentsByTimeline[file.timeline, default: []].insert(number) }
            case .history:
                histories.insert(file.timeline)
            case .backup, .partial:
                break
            }
        }
        func name(_ timeline: UInt32, _ number: UInt64) -> String {
            WALFileName.segment(timeline: timeline, number: number, segmentSize: segmentSize).name
        }

        // Where each timeline's required range starts: its oldest base backup's start segment,
        // or for a timeline no backup started on, its first archived segment.
        var requiredStart: [UInt32: UInt64] = [:]
        for base in bases {
            guard let wal = base.wal, let start = WALFileName(wal.startSegment)?.segmentNumber(segmentSize: segmentSize) else { continue }
            requiredStart[wal.timeline] = min(requiredStart[wal.timeline] ?? start, start)
        }
        for (timeline, numbers) in segmentsByTimeline where requiredStart[timeline] == nil {
            requiredStart[timeline] = numbers.min()
        }

        var gaps: [Gap] = []
        var timelines: [Timeline] = []
        for timeline in requiredStart.keys.sorted() {
            let numbers = segmentsByTimeline[timeline] ?? []
            guard let start = requiredStart[timeline] else { continue }
            let end = max(numbers.max() ?? start, start)
            var missingFrom: UInt64?
            for number in start...end {
                if numbers.contains(number) {
                    if let from = missingFrom {
                        gaps.append(Gap(timeline: timeline, first: name(timeline, from), last: name(timeline, number - 1), count: number - from))
                        missingFrom = nil
                    }
                } else if missingFrom == nil {
                    missingFrom = number
                }
            }
            if let from = missingFrom {
                gaps.append(Gap(timeline: timeline, first: name(timeline, from), last: name(timeline, end), count: end - from + 1))
            }
            if let first = numbers.min(), let last = numbers.max() {
                timelines.append(Timeline(timeline: timeline, firstSegment: name(timeline, first), lastSegment: name(timeline, last),
                                          segments: numbers.count, hasHistory: timeline == 1 || histories.contains(timeline)))
            }
        }
        let missingHistory = segmentsByTimeline.keys.filter { $0 > 1 && !histories.contains($0) }.sorted()

        let backups = bases.compactMap { base -> BackupCoverage? in
            guard let wal = base.wal,
                  let start = WALFileName(wal.startSegment)?.segmentNumber(segmentSize: segmentSize),
                  let stop = WALFileName(wal.stopSegment)?.segmentNumber(segmentSize: segmentSize)
            else { return nil }
            let numbers = segmentsByTimeline[wal.timeline] ?? []
            let consistent = start <= stop && (start...stop).allSatisfy(numbers.contains)
            let newest = max(numbers.max() ?? stop, stop)
            let laterGaps = gaps.contains { gap in
                gap.timeline > wal.timeline
                    || (gap.timeline == wal.timeline && (WALFileName(gap.last)?.segmentNumber(segmentSize: segmentSize) ?? 0) >= start
                        && (WALFileName(gap.first)?.segmentNumber(segmentSize: segmentSize) ?? 0) <= newest)
            }
            return BackupCoverage(backupId: base.backupId, timeline: wal.timeline, startSegment: wal.startSegment, stopSegment: wal.stopSegment,
                                  consistent: consistent, recoverableToLatest: consistent && !laterGaps && missingHistory.isEmpty)
        }
        return Report(segmentSize: segmentSize, timelines: timelines, gaps: gaps, missingHistory: missingHistory, backups: backups)
    }
}
