/// A file PostgreSQL archives: a WAL segment (`000000010000000A000000FF`: timeline, log, segment
/// in 8 upper-case hex digits each), a timeline history file (`00000002.history`), a backup label
/// (`<segment>.<offset>.backup`) or a partial segment left by a promotion (`<segment>.partial`).
public struct WALFileName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case segment, history, backup, partial
    }

    /// The name as PostgreSQL writes it.
    public let name: String
    public let kind: Kind
    public let timeline: UInt32
    /// The segment's log and segment numbers; nil for a history file.
    public let log: UInt32?
    public let segment: UInt32?

    /// Parses a bare file name (no directory); nil for anything PostgreSQL would not archive.
    public init?(_ name: String) {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        func hex(_ text: Substring) -> UInt32? {
            guard text.count == 8, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x46).contains($0) }) else { return nil }
            return UInt32(text, radix: 16)
        }
        func segmentParts(_ text: String) -> (UInt32, UInt32, UInt32)? {
            guard text.utf8.count == 24 else { return nil }
            let a = text.startIndex, b = text.index(a, offsetBy: 8), c = text.index(b, offsetBy: 8)
            guard let t = hex(text[a..<b]), let l = hex(text[b..<c]), let s = hex(text[c...]) else { return nil }
            return (t, l, s)
        }
        switch parts.count {
        case 1:
            guard let (t, l, s) = segmentParts(parts[0]) else { return nil }
            self.init(name: name, kind: .segment, timeline: t, log: l, segment: s)
        case 2 where parts[1] == "history":
            guard let t = hex(Substring(parts[0])) else { return nil }
            self.init(name: name, kind: .history, timeline: t, log: nil, segment: nil)
        case 2 where parts[1] == "partial":
            guard let (t, l, s) = segmentParts(parts[0]) else { return nil }
            self.init(name: name, kind: .partial, timeline: t, log: l, segment: s)
        case 3 where parts[2] == "backup":
            guard let (t, l, s) = segmentParts(parts[0]), hex(Substring(parts[1])) != nil else { return nil }
            self.init(name: name, kind: .backup, timeline: t, log: l, segment: s)
        default:
            return nil
        }
    }

    private init(name: String, kind: Kind, timeline: UInt32, log: UInt32?, segment: UInt32?) {
        self.name = name
        self.kind = kind
        self.timeline = timeline
        self.log = log
        self.segment = segment
    }

    /// The timeline as PostgreSQL spells it in file names: `00000001`.
    public var timelineHex: String { Self.hex8(timeline) }

    public var description: String { name }

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// Shipping order, oldest first: by timeline, a timeline's history file before its segments
    /// (recovery reads it first to follow the switch), then by name, which for segments is LSN order.
    public static func < (lhs: WALFileName, rhs: WALFileName) -> Bool {
        if lhs.timeline != rhs.timeline { return lhs.timeline < rhs.timeline }
        let lhsHistory = lhs.kind == .history, rhsHistory = rhs.kind == .history
        if lhsHistory != rhsHistory { return lhsHistory }
        return lhs.name < rhs.name
    }
}
