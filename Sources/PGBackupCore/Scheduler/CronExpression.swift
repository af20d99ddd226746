import Foundation

/// A schedule: a 5-field cron expression (`minute hour day-of-month month day-of-week`) as
/// Vixie cron reads it, or pgbackd's `@every <n>s|m|h` extension.
///
/// Fields take `*`, numbers, lists (`1,15`), ranges (`1-5`), steps (`*/15`, `10-50/20`, `5/10`
/// meaning `5-max/10`) and names (`jan`–`dec`, `sun`–`sat`; day of week 0 and 7 are Sunday).
/// When both day of month and day of week are restricted (neither starts with `*`), a day
/// matches if either does, as in Vixie cron. `@hourly`, `@daily` (`@midnight`), `@weekly`,
/// `@monthly`, `@yearly` (`@annually`) are the usual shorthands.
///
/// `@every 30s` (or `15m`, `2h`) is a fixed-interval schedule, a pgbackd extension of the syntax
/// (like systemd's `OnUnitActiveSec=`) for jobs that run every few seconds or minutes rather than
/// at wall-clock times. It fires at every multiple of the interval since the Unix epoch, whatever
/// the time zone, so its times do not move when the daemon restarts: `@every 15m` fires at :00,
/// :15, :30 and :45; an interval that does not divide a day drifts across the clock day by day.
///
/// Times are wall-clock times in the schedule's time zone. A wall time that does not exist (the
/// hour skipped when DST starts) is skipped; a wall time that happens twice (the hour repeated
/// when DST ends) fires once, at its first occurrence.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    enum Kind: Equatable {
        case fields(minutes: Set<Int>, hours: Set<Int>, daysOfMonth: Set<Int>, months: Set<Int>, daysOfWeek: Set<Int>,
                    domRestricted: Bool, dowRestricted: Bool)
        case every(seconds: Int)
    }
    let kind: Kind

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public enum Code: String, Sendable, CaseIterable { case invalidExpression }
        /// Always ``Code/invalidExpression``: the configuration reader turns it into a
        /// ``ConfigurationError`` naming the key.
        public var code: Code { .invalidExpression }
        public var description: String
    }

    static let shorthands = [
        "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
    ]
    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public init(_ text: String) throws {
        description = text
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed.hasPrefix("@every") {
            let amount = trimmed.dropFirst("@every".count).trimmingCharacters(in: .whitespaces)
            guard let unit = amount.last, let multiplier = ["s": 1, "m": 60, "h": 3600][String(unit)],
                  let number = Int(amount.dropLast()), number > 0, number <= 86_400 * 366 / multiplier else {
                throw ParseError(description: "expected '@every <n>s', '<n>m' or '<n>h' with n > 0, got \"\(text)\"")
            }
            kind = .every(seconds: number * multiplier)
            return
        }
        let expanded: String
        if trimmed.hasPrefix("@") {
            guard let fields = Self.shorthands[trimmed] else {
                throw ParseError(description: "unknown shorthand \"\(text)\"; known: \(Self.shorthands.keys.sorted().joined(separator: ", ")), @every <n>s|m|h")
            }
            expanded = fields
        } else {
            expanded = trimmed
        }
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(description: "expected 5 fields (minute hour day-of-month month day-of-week), got \(fields.count) in \"\(text)\"")
        }
        let minutes = try Self.field(fields[0], name: "minute", 0...59, names: [])
        let hours = try Self.field(fields[1], name: "hour", 0...23, names: [])
        let days = try Self.field(fields[2], name: "day of month", 1...31, names: [])
        let months = try Self.field(fields[3], name: "month", 1...12, names: Self.monthNames, nameBase: 1)
        var weekdays = try Self.field(fields[4], name: "day of week", 0...7, names: Self.dayNames)
        if weekdays.remove(7) != nil { weekdays.insert(0) }
        kind = .fields(minutes: minutes, hours: hours, daysOfMonth: days, months: months, daysOfWeek: weekdays,
                       domRestricted: !fields[2].hasPrefix("*"), dowRestricted: !fields[4].hasPrefix("*"))
    }

    static func field(_ text: String, name: String, _ range: ClosedRange<Int>, names: [String], nameBase: Int = 0) throws -> Set<Int> {
        func fail(_ why: String) -> ParseError {
            ParseError(description: "\(name) field \"\(text)\": \(why)")
        }
        func value(_ token: Substring) throws -> Int {
            if let number = Int(token) {
                guard range.contains(number) else { throw fail("\(number) is outside \(range.lowerBound)-\(range.upperBound)") }
                return number
            }
            if let index = names.firstIndex(of: String(token)) { return index + nameBase }
            throw fail("\"\(token)\" is not a number\(names.isEmpty ? "" : " or a name (\(names.joined(separator: ", ")))")")
        }
        var result = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw fail("empty list element") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw fail("more than one '/' in \"\(part)\"") }
            var step = 1
            if pieces.count == 2 {
                guard let number = Int(pieces[1]), number > 0 else { throw fail("step \"\(pieces[1])\" is not a positive number") }
                step = number
            }
            let base = pieces[0]
            let lower: Int, upper: Int
            if base == "*" {
                (lower, upper) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                lower = try value(base[..<dash])
                upper = try value(base[base.index(after: dash)...])
                guard lower <= upper else { throw fail("range \(base) runs backwards") }
            } else {
                lower = try value(base)
                upper = pieces.count == 2 ? range.upperBound : lower
            }
            result.formUnion(stride(from: lower, through: upper, by: step))
        }
        return result
    }

    // MARK: Next fire time

    /// The first time strictly after `date` at which this schedule fires in `timeZone`; nil only
    /// when nothing matches within 30 years (e.g. `0 0 30 2 *`).
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        switch kind {
        case .every(let seconds):
            let now = date.timeIntervalSince1970
            return Date(timeIntervalSince1970: (floor(now / Double(seconds)) + 1) * Double(seconds))
        case let .fields(minutes, hours, daysOfMonth, months, daysOfWeek, domRestricted, dowRestricted):
            let after = Int(floor(date.timeIntervalSince1970))
            // The wall clock at `date`, as seconds of a zone-less calendar.
            let wall = after + timeZone.secondsFromGMT(for: date)
            let startMinute = Int((Double(wall) / 60).rounded(.down)) + 1
            var day = Self.floorDiv(startMinute, 1440)
            let sortedHours = hours.sorted(), sortedMinutes = minutes.sorted()
            for _ in 0..<(366 * 30) {
                defer { day += 1 }
                let (_, month, dayOfMonth) = Self.civil(fromDays: day)
                guard months.contains(month) else { continue }
                let weekday = ((day % 7) + 11) % 7 // 1970-01-01 was a Thursday (4)
                let domMatch = daysOfMonth.contains(dayOfMonth), dowMatch = daysOfWeek.contains(weekday)
                let dayMatches = domRestricted && dowRestricted ? (domMatch || dowMatch) : (domMatch && dowMatch)
                guard dayMatches else { continue }
                for hour in sortedHours {
                    for minute in sortedMinutes {
                        let candidate = day * 1440 + hour * 60 + minute
                        guard candidate >= startMinute else { continue }
                        // Fire at the first occurrence of this wall time, if it exists and is still ahead.
                        if let instant = Self.instants(wallSeconds: candidate * 60, in: timeZone).first, instant > date {
                            return instant
                        }
                    }
                }
            }
            return nil
        }
    }

    /// The instants whose wall clock in `timeZone` reads `wallSeconds`: none in a DST gap, two in
    /// a repeated hour, earliest first.
    static func instants(wallSeconds: Int, in timeZone: TimeZone) -> [Date] {
        var offsets = Set<Int>()
        for probe in [-43_200, 43_200] {
            offsets.insert(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(wallSeconds + probe))))
        }
        return offsets.compactMap { offset -> Date? in
            let instant = Date(timeIntervalSince1970: Double(wallSeconds - offset))
            return timeZone.secondsFromGMT(for: instant) == offset ? instant : nil
        }.sorted()
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { Int((Double(a) / Double(b)).rounded(.down)) }

    /// (year, month, day) of a day number counted from 1970-01-01 (H. Hinnant's algorithm).
    static func civil(fromDays days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
