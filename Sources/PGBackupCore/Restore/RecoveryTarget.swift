import Foundation

/// Where point-in-time recovery stops: PostgreSQL's `recovery_target_*` settings.
public enum RecoveryTarget: Sendable, Equatable, CustomStringConvertible {
    /// `recovery_target_time`, passed through as written (anything PostgreSQL takes).
    case time(String)
    case lsn(WALPosition)
    case xid(String)
    /// As soon as the base backup is consistent (`recovery_target = 'immediate'`).
    case immediate
    /// Replay everything archived, then promote.
    case latest

    public var description: String {
        switch self {
        case .time(let time): "time \(time)"
        case .lsn(let lsn): "LSN \(lsn)"
        case .xid(let xid): "transaction \(xid)"
        case .immediate: "the end of the backup (immediate)"
        case .latest: "the end of the archived WAL (latest)"
        }
    }

    /// The settings that select this target; `recovery_target_action` is added by the caller
    /// because `latest` has none (recovery promotes when the archive runs out).
    var settings: [(String, String)] {
        switch self {
        case .time(let time): [("recovery_target_time", time)]
        case .lsn(let lsn): [("recovery_target_lsn", lsn.description)]
        case .xid(let xid): [("recovery_target_xid", xid)]
        case .immediate: [("recovery_target", "immediate")]
        case .latest: []
        }
    }

    /// The instant a `time` target names, when it is written the way `select now()` prints
    /// times (`2026-11-25 09:00:00.5+00`) or as ISO 8601; nil otherwise. Used only to pick the
    /// base backup; PostgreSQL interprets the text itself.
    public var instant: Date? {
        guard case .time(let text) = self else { return nil }
        return Self.parseTimestamp(text)
    }

    static func parseTimestamp(_ text: String) -> Date? {
        // yyyy-mm-dd[ T]hh:mm:ss[.fraction](Z|UTC|±hh[:mm|mm])
        let pattern = #"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)\s*$"#
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text))
        else { return nil }
        func group(_ index: Int) -> String? {
            guard let range = Range(match.range(at: index), in: text) else { return nil }
            return String(text[range])
        }
        var components = DateComponents()
        components.year = Int(group(1)!)
        components.month = Int(group(2)!)
        components.day = Int(group(3)!)
        components.hour = Int(group(4)!)
        components.minute = Int(group(5)!)
        components.second = Int(group(6)!)
        let zone = group(8)!
        var offsetSeconds = 0
        if zone != "Z" && zone != "UTC" {
            let sign = zone.hasPrefix("-") ? -1 : 1
            let digits = zone.dropFirst().replacingOccurrences(of: ":", with: "")
            let hours = Int(digits.prefix(2)) ?? 0, minutes = Int(digits.dropFirst(2)) ?? 0
            offsetSeconds = sign * (hours * 3600 + minutes * 60)
        }
        var calendar = Calendar(identifier: .gregorian)
        guard let utc = TimeZone(identifier: "UTC") else { return nil }
        calendar.timeZone = utc
        guard let whole = calendar.date(from: components) else { return nil }
        let fraction = group(7).flatMap { Double("0" + $0) } ?? 0
        return whole.addingTimeInterval(fraction - Double(offsetSeconds))
    }
}
