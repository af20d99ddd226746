import Foundation
@testable import PGBackupCore
import Testing

struct CronExpressionTests {
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
    static let utc = TimeZone(identifier: "UTC")!

    /// `2026-03-29T01:30:00Z`-style instants.
    static func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text)!
    }

    static func iso(_ date: Date?) -> String {
        guard let date else { return "nil" }
        return ISO8601DateFormatter().string(from: date)
    }

    func next(_ expression: String, after: String, _ zone: TimeZone = utc) throws -> String {
        Self.iso(try CronExpression(expression).next(after: Self.date(after), in: zone))
    }

    func firings(_ expression: String, from: String, count: Int, _ zone: TimeZone) throws -> [String] {
        let cron = try CronExpression(expression)
        var current = Self.date(from)
        var result: [String] = []
        for _ in 0..<count {
            guard let next = cron.next(after: current, in: zone) else { break }
            result.append(Self.iso(next))
            current = next
        }
        return result
    }

    @Test func everyMinuteIsStrictlyAfter() throws {
        #expect(try next("* * * * *", after: "2026-11-25T10:00:00Z") == "2026-11-25T10:01:00Z")
        #expect(try next("* * * * *", after: "2026-11-25T10:00:59Z") == "2026-11-25T10:01:00Z")
    }

    @Test func dailyAtTwo() throws {
        #expect(try next("0 2 * * *", after: "2026-11-25T01:59:00Z") == "2026-11-25T02:00:00Z")
        #expect(try next("0 2 * * *", after: "2026-11-25T02:00:00Z") == "2026-11-26T02:00:00Z")
    }

    @Test func stepsListsAndRanges() throws {
        #expect(try firings("*/20 * * * *", from: "2026-11-25T10:05:00Z", count: 4, Self.utc)
                == ["2026-11-25T10:20:00Z", "2026-11-25T10:40:00Z", "2026-11-25T11:00:00Z", "2026-11-25T11:20:00Z"])
        #expect(try firings("10-50/20 9,17 * * *", from: "2026-11-25T00:00:00Z", count: 4, Self.utc)
                == ["2026-11-25T09:10:00Z", "2026-11-25T09:30:00Z", "2026-11-25T09:50:00Z", "2026-11-25T17:10:00Z"])
        // `a/n` runs from a to the field's maximum.
        #expect(try firings("45/5 0 * * *", from: "2026-11-25T00:00:00Z", count: 4, Self.utc)
                == ["2026-11-25T00:45:00Z", "2026-11-25T00:50:00Z", "2026-11-25T00:55:00Z", "2026-11-26T00:45:00Z"])
    }

    @Test func namesForMonthsAndWeekdays() throws {
        // 2026-11-25 is a Wednesday.
        #expect(try next("0 8 * * mon-fri", after: "2026-11-27T09:00:00Z") == "2026-11-30T08:00:00Z")
        #expect(try next("0 0 1 jan *", after: "2026-11-25T00:00:00Z") == "2027-01-01T00:00:00Z")
        #expect(try next("0 0 * * SUN", after: "2026-11-25T00:00:00Z") == "2026-11-29T00:00:00Z")
        // 7 is Sunday too.
        #expect(try next("0 0 * * 7", after: "2026-11-25T00:00:00Z") == "2026-11-29T00:00:00Z")
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothAreRestricted() throws {
        // The 1st or any Friday, whichever comes first (Vixie cron).
        #expect(try firings("0 0 1 * fri", from: "2026-11-25T00:00:00Z", count: 3, Self.utc)
                == ["2026-11-27T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-04T00:00:00Z"])
        // Day of week `*`: only the day of month counts.
        #expect(try next("0 0 1 * *", after: "2026-11-25T00:00:00Z") == "2026-12-01T00:00:00Z")
        // A stepped star still counts as unrestricted: every day of month, Fridays only.
        #expect(try next("0 0 */1 * fri", after: "2026-11-25T00:00:00Z") == "2026-11-27T00:00:00Z")
    }

    @Test func february29() throws {
        #expect(try next("0 12 29 2 *", after: "2026-11-25T00:00:00Z") == "2028-02-29T12:00:00Z")
        #expect(try next("0 12 29 2 *", after: "2028-02-29T12:00:00Z") == "2032-02-29T12:00:00Z")
        // 2100 is no leap year.
        #expect(try next("0 12 29 2 *", after: "2096-03-01T00:00:00Z") == "2104-02-29T12:00:00Z")
        #expect(try CronExpression("0 0 30 2 *").next(after: Self.date("2026-01-01T00:00:00Z"), in: Self.utc) == nil)
    }

    @Test func springForwardSkipsTheMissingHourInBerlin() throws {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
        #expect(try firings("30 2 * * *", from: "2026-03-27T12:00:00Z", count: 3, Self.berlin)
                == ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"])
        // Every 30 minutes around the gap: 01:30 CET, then 03:00 CEST.
        #expect(try firings("*/30 * * * *", from: "2026-03-29T00:15:00Z", count: 3, Self.berlin)
                == ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"])
        #expect(try next("0 3 * * *", after: "2026-03-28T12:00:00Z", Self.berlin) == "2026-03-29T01:00:00Z")
    }

    @Test func fallBackFiresOnceInTheRepeatedHourInBerlin() throws {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, fires once (the first).
        #expect(try firings("30 2 * * *", from: "2026-10-24T12:00:00Z", count: 2, Self.berlin)
                == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
        // Asked from inside the second pass of the hour, the next one is after it.
        #expect(try next("30 2 * * *", after: "2026-10-25T01:10:00Z", Self.berlin) == "2026-10-26T01:30:00Z")
        #expect(try next("0 3 * * *", after: "2026-10-25T00:00:00Z", Self.berlin) == "2026-10-25T02:00:00Z")
    }

    @Test func dailyInBerlinCrossesTheYear() throws {
        #expect(try firings("0 2 * * *", from: "2026-12-30T12:00:00Z", count: 3, Self.berlin)
                == ["2026-12-31T01:00:00Z", "2027-01-01T01:00:00Z", "2027-01-02T01:00:00Z"])
    }

    @Test func shorthandsAndEvery() throws {
        #expect(try next("@daily", after: "2026-11-25T10:00:00Z") == "2026-11-26T00:00:00Z")
        #expect(try next("@hourly", after: "2026-11-25T10:00:00Z") == "2026-11-25T11:00:00Z")
        #expect(try next("@weekly", after: "2026-11-25T10:00:00Z") == "2026-11-29T00:00:00Z")
        #expect(try next("@every 5s", after: "2026-11-25T10:00:03Z") == "2026-11-25T10:00:05Z")
        #expect(try next("@every 5s", after: "2026-11-25T10:00:05Z") == "2026-11-25T10:00:10Z")
        #expect(try next("@every 2m", after: "2026-11-25T10:01:00Z", Self.berlin) == "2026-11-25T10:02:00Z")
    }

    @Test(arguments: [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "60 is outside 0-59"),
        ("* 24 * * *", "outside 0-23"),
        ("* * 0 * *", "outside 1-31"),
        ("* * * 13 *", "outside 1-12"),
        ("* * * * 8", "outside 0-7"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "not a positive number"),
        ("1,,2 * * * *", "empty list element"),
        ("* * * foo *", "not a number or a name"),
        ("@often", "unknown shorthand"),
        ("@every 0s", "@every"),
        ("@every 5", "@every"),
    ])
    func rejectsMalformedExpressions(text: String, message: String) {
        #expect {
            _ = try CronExpression(text)
        } throws: { error in
            String(describing: error).contains(message)
        }
    }
}
