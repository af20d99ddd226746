/// A position in the WAL (an LSN), as PostgreSQL prints it: `16/B374D848`.
public struct WALPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// Parses `X/Y` (each up to 8 hex digits, either case); nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
              let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16)
        else { return nil }
        value = high << 32 | low
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: WALPosition, rhs: WALPosition) -> Bool { lhs.value < rhs.value }

    /// The segment holding this position.
    public func segment(timeline: UInt32, segmentSize: Int) -> WALFileName {
        WALFileName.segment(timeline: timeline, number: value / UInt64(segmentSize), segmentSize: segmentSize)
    }

    /// The segment holding the byte just before this position: a backup that stops exactly on a
    /// segment boundary needs the previous segment, not the next one (PostgreSQL's XLByteToPrevSeg).
    public func previousByteSegment(timeline: UInt32, segmentSize: Int) -> WALFileName {
        WALFileName.segment(timeline: timeline, number: (max(value, 1) - 1) / UInt64(segmentSize), segmentSize: segmentSize)
    }
}

extension WALFileName {
    /// Segments per 4 GiB "log" file number: the middle 8 hex digits count these.
    static func segmentsPerLog(segmentSize: Int) -> UInt64 { 0x1_0000_0000 / UInt64(segmentSize) }

    /// The segment with absolute number `number` (LSN / segment size) on `timeline`.
    public static func segment(timeline: UInt32, number: UInt64, segmentSize: Int) -> WALFileName {
        let perLog = segmentsPerLog(segmentSize: segmentSize)
        let name = hex8(timeline) + hex8(UInt32(number / perLog)) + hex8(UInt32(number % perLog))
        return WALFileName(name)!
    }

    /// The absolute segment number (LSN / segment size) of a segment, partial segment or backup
    /// label; nil for a history file.
    public func segmentNumber(segmentSize: Int) -> UInt64? {
        guard let log, let segment else { return nil }
        return UInt64(log) * Self.segmentsPerLog(segmentSize: segmentSize) + UInt64(segment)
    }
}
