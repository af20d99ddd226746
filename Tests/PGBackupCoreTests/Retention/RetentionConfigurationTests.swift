import Foundation
@testable import PGBackupCore
import Testing

@Suite struct RetentionConfigurationTests {
    func parse(_ text: String) throws -> Configuration {
        try Configuration.parse(text, file: "/etc/pgbackd/test.toml")
    }

    func failure(_ text: String) -> ConfigurationError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error as? ConfigurationError
        }
    }

    @Test func defaultsAreTheIssueExample() throws {
        #expect(try parse("").retention == RetentionConfiguration(keepLast: 7, keepDaily: 14, keepWeekly: 8, keepMonthly: 12, minKeep: 2))
        let retention = try parse("""
            [retention]
            keep_last = 7
            keep_daily = 14
            keep_weekly = 8
            keep_monthly = 12
            min_keep = 2          # never fewer, whatever the other rules say
            """).retention
        #expect(retention == RetentionConfiguration())
        #expect(try parse("[retention]\nkeep_daily = 0\nmin_keep = 5\n").retention == RetentionConfiguration(keepDaily: 0, minKeep: 5))
    }

    @Test func invalidValuesNameTheKey() throws {
        let zero = try #require(failure("[retention]\nmin_keep = 0\n"))
        #expect(zero.key == "retention.min_keep")
        #expect(zero.code == .invalidValue)
        let negative = try #require(failure("[retention]\nkeep_last = -1\n"))
        #expect(negative.key == "retention.keep_last")
        let type = try #require(failure("[retention]\nkeep_weekly = \"8\"\n"))
        #expect(type.code == .wrongType)
        let unknown = try #require(failure("[retention]\nkeep_dayly = 3\n"))
        #expect(unknown.code == .unknownKey)
        #expect(unknown.description.contains("did you mean 'keep_daily'"))
    }

    @Test func theShippedConfigParses() throws {
        let retention = try Configuration.load(path: #filePath.replacingOccurrences(of: "Tests/PGBackupCoreTests/Retention/RetentionConfigurationTests.swift", with: "config/pgbackd.toml")).retention
        #expect(retention == RetentionConfiguration())
    }
}
