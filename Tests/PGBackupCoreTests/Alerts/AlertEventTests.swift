import Foundation
@testable import PGBackupCore
import Testing

@Suite struct AlertEventTests {
    /// The top-level fields docs/alerts.md documents, in its order.
    static let documentedFields = [
        "schema_version", "event", "severity", "stanza", "backup_id", "drill_id", "host", "time", "summary",
        "failed_checks", "error", "report_key", "verdict", "outcome",
    ]
    static let documentedCheckFields = ["database", "check", "summary", "evidence"]

    static let time = Date(timeIntervalSince1970: 1_795_573_247.75)  // 2026-11-25T02:20:47.75Z

    static func report(passed: Bool) -> DrillReport {
        let artifacts = CheckResult(name: "artifacts", passed: true, summary: "2 artifacts match the manifest")
        let referential = CheckResult(
            name: "referential", passed: passed, summary: passed ? "no orphans" : "1 of 4 foreign keys has orphan rows (3 rows)",
            figures: ["orphan_rows": passed ? 0 : 3],
            evidence: passed ? [] : [["constraint": "journal_journalentry_user_id_fkey", "id": "17", "user_id": "999"]]
        )
        let rowCounts = CheckResult(name: "row-counts", passed: true, summary: "12 tables match")
        let sql = CheckResult(
            name: "sql:editorjs-shape", passed: passed, summary: passed ? "no rows" : "2 rows",
            evidence: passed ? [] : (0..<30).map { ["id": "\($0)"] }
        )
        return DrillReport(
            drillId: "20261125T021500Z-d1", backupId: "20261125T020000Z-logical", stanza: "main", host: "db1",
            startedAt: time.addingTimeInterval(-300), finishedAt: time, passed: passed, checks: [artifacts],
            databases: [.init(name: "daylog", scratchDatabase: "pgbackd_drill_x", kept: false, restoreSeconds: 1, checkSeconds: 1,
                              checks: [referential, rowCounts, sql])]
        )
    }

    func object(_ event: AlertEvent) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(event.json())) as? [String: Any])
    }

    @Test func jsonHasExactlyTheDocumentedFieldsAlwaysPresent() throws {
        // A sparse event: every optional field unset, yet every key is in the document.
        let event = AlertEvent(event: .daemonStarted, stanza: "main", summary: "pgbackd started", host: "db1", time: Self.time)
        let json = try object(event)
        #expect(Set(json.keys) == Set(Self.documentedFields))
        #expect(json["schema_version"] as? Int == 3)
        #expect(json["event"] as? String == "daemon.started")
        #expect(json["severity"] as? String == "info")
        #expect(json["stanza"] as? String == "main")
        #expect(json["host"] as? String == "db1")
        #expect(json["time"] as? String == "2026-11-25T02:20:47Z")
        #expect(json["summary"] as? String == "pgbackd started")
        for key in ["backup_id", "drill_id", "error", "report_key"] {
            #expect(json[key] is NSNull, "\(key) is null, not missing")
        }
        #expect((json["failed_checks"] as? [Any])?.isEmpty == true)
        // One line: a hook can read it with `read -r` or `jq`.
        #expect(!String(decoding: try event.json(), as: UTF8.self).contains("\n"))
    }

    @Test func aFailedDrillBecomesDrillFailedWithItsChecksAndEvidence() throws {
        let event = AlertEvent.drill(Self.report(passed: false), reportKey: "main/drills/20261125T020000Z-logical/20261125T021500Z-d1.json")
        #expect(event.event == .drillFailed)
        #expect(event.severity == .critical)
        #expect(event.stanza == "main")
        #expect(event.backupId == "20261125T020000Z-logical")
        #expect(event.drillId == "20261125T021500Z-d1")
        #expect(event.host == "db1")
        #expect(event.time == Date(timeIntervalSince1970: 1_795_573_247))
        #expect(event.reportKey == "main/drills/20261125T020000Z-logical/20261125T021500Z-d1.json")
        #expect(event.error == nil)
        #expect(event.failedChecks.map(\.check) == ["referential", "sql:editorjs-shape"])
        #expect(event.failedChecks.map(\.database) == ["daylog", "daylog"])
        #expect(event.failedChecks[0].evidence == [["constraint": "journal_journalentry_user_id_fkey", "id": "17", "user_id": "999"]])
        #expect(event.failedChecks[1].evidence.count == AlertEvent.maxEvidenceRows)
        #expect(event.summary.contains("FAILED: 2 of 4 checks failed (referential on daylog, sql:editorjs-shape on daylog)"))

        let json = try object(event)
        let checks = try #require(json["failed_checks"] as? [[String: Any]])
        #expect(checks.count == 2)
        #expect(Set(checks[0].keys) == Set(Self.documentedCheckFields))
        #expect(checks[0]["database"] as? String == "daylog")
        #expect(checks[0]["check"] as? String == "referential")
        #expect((checks[0]["evidence"] as? [[String: String]])?.first?["user_id"] == "999")
    }

    @Test func aBackupWideFailedCheckHasANullDatabase() throws {
        var report = Self.report(passed: true)
        report.checks = [CheckResult(name: "artifacts", passed: false, summary: "daylog.dump.gz: SHA-256 mismatch")]
        report.passed = false
        let event = AlertEvent.drill(report, reportKey: nil)
        #expect(event.failedChecks == [AlertEvent.FailedCheck(database: nil, check: "artifacts", summary: "daylog.dump.gz: SHA-256 mismatch")])
        let checks = try #require(try object(event)["failed_checks"] as? [[String: Any]])
        #expect(checks[0]["database"] is NSNull)
        #expect(try object(event)["report_key"] is NSNull)
    }

    @Test func aPassedDrillBecomesDrillSucceeded() throws {
        let event = AlertEvent.drill(Self.report(passed: true), reportKey: "main/drills/b/d.json")
        #expect(event.event == .drillSucceeded)
        #expect(event.severity == .info)
        #expect(event.failedChecks.isEmpty)
        #expect(event.summary == "drill 20261125T021500Z-d1 of backup 20261125T020000Z-logical passed: all 4 checks passed")
    }

    @Test func operationalFailuresCarryTheError() throws {
        struct StorageDown: Error, CustomStringConvertible {
            var description: String { "S3 endpoint http://127.0.0.1:9 unreachable (connection refused)\nafter 3 attempts" }
        }
        let backup = AlertEvent.backupFailed(stanza: "main", backupId: "20261125T020000Z-logical", error: StorageDown(), host: "db1", time: Self.time)
        #expect(backup.event == .backupFailed)
        #expect(backup.severity == .critical)
        #expect(backup.error == "S3 endpoint http://127.0.0.1:9 unreachable (connection refused)\nafter 3 attempts")
        #expect(backup.summary == "backup 20261125T020000Z-logical FAILED: S3 endpoint http://127.0.0.1:9 unreachable (connection refused)")
        #expect(backup.failedChecks.isEmpty)

        let drill = AlertEvent.drillFailed(stanza: "main", backupId: nil, error: StorageDown(), host: "db1", time: Self.time)
        #expect(drill.event == .drillFailed)
        #expect(drill.backupId == nil)
        #expect(drill.error?.hasPrefix("S3 endpoint") == true)
        #expect(drill.summary.hasPrefix("drill could not run: S3 endpoint"))
    }

    @Test func aCommittedBackupBecomesBackupSucceeded() throws {
        let manifest = RepositoryTests.manifest(id: "20261125T020000Z-logical")
        let event = AlertEvent.backup(manifest, host: "db1")
        #expect(event.event == .backupSucceeded)
        #expect(event.severity == .info)
        #expect(event.backupId == "20261125T020000Z-logical")
        #expect(event.stanza == "main")
        #expect(event.time == manifest.finishedAt)
        #expect(event.summary.hasPrefix("backup 20261125T020000Z-logical succeeded: logical, 1 database,"))
    }

    @Test func eventsRoundTripThroughJSON() throws {
        for event in [
            AlertEvent.drill(Self.report(passed: false), reportKey: "main/drills/a/b.json"),
            AlertEvent(event: .walLag, severity: .critical, stanza: "s", summary: "WAL 5 min behind", host: "h", time: Self.time),
        ] {
            #expect(try AlertEvent.decode(event.json()) == event)
        }
    }

    @Test func severityDefaultsFollowTheEvent() {
        #expect(AlertEventName.backupFailed.defaultSeverity == .critical)
        #expect(AlertEventName.drillFailed.defaultSeverity == .critical)
        #expect(AlertEventName.backupSucceeded.defaultSeverity == .info)
        #expect(AlertEventName.walLag.defaultSeverity == .warning)
        #expect(AlertEvent(event: .walLag, stanza: "s", summary: "").severity == .warning)
        #expect(AlertEvent(event: .walLag, severity: .critical, stanza: "s", summary: "").severity == .critical)
    }

    // MARK: docs/alerts.md stays true

    static var docs: String {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent()
            return try String(contentsOf: root.appendingPathComponent("docs/alerts.md"), encoding: .utf8)
        }
    }

    @Test func theDocumentedExampleIsWhatWeSend() throws {
        let docs = try Self.docs
        let start = try #require(docs.range(of: "```json\n"))
        let end = try #require(docs.range(of: "\n```", range: start.upperBound..<docs.endIndex))
        let example = Array(docs[start.upperBound..<end.lowerBound].utf8)
        let documented = try #require(try JSONSerialization.jsonObject(with: Data(example)) as? [String: Any])
        #expect(Set(documented.keys) == Set(Self.documentedFields))
        let event = try AlertEvent.decode(example)
        #expect(event.event == .drillFailed)
        #expect(event.schemaVersion == AlertEvent.currentSchemaVersion)
        // What we would send for the same event has the same keys, check fields included.
        let ours = try object(event)
        #expect(Set(ours.keys) == Set(documented.keys))
        let checks = try #require(documented["failed_checks"] as? [[String: Any]])
        #expect(!checks.isEmpty)
        for check in checks { #expect(Set(check.keys) == Set(Self.documentedCheckFields)) }
    }

    @Test func theDocumentedFieldTableNamesEveryField() throws {
        let docs = try Self.docs
        let section = try #require(docs.range(of: "## Schema")).upperBound
        let rows = docs[section...].split(separator: "\n").prefix { !$0.hasPrefix("## ") }
        let names = rows.compactMap { row -> String? in
            guard row.hasPrefix("| `") else { return nil }
            return row.dropFirst(3).prefix { $0 != "`" }.description
        }
        #expect(names == Self.documentedFields + Self.documentedCheckFields.map { "failed_checks[].\($0)" })
        for name in AlertEventName.known { #expect(docs.contains("`\(name.rawValue)`")) }
    }

    /// Issue #14: one policy for every job's failure event, its outcome and severity.
    @Test func jobFailureEventsCarryTheirOutcome() {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
        let jobs: [(JobKind, String)] = [(.backup, "backup.failed"), (.baseBackup, "backup.failed"), (.drill, "drill.failed"),
                                         (.retention, "retention.failed"), (.walCheck, "wal_check.failed")]
        for (job, name) in jobs {
            for outcome in [JobOutcome.failed, .cancelled, .interrupted] {
                let event = AlertEvent.jobFailed(job, stanza: "main", backupId: nil, error: Boom(), outcome: outcome)
                #expect(event.event.rawValue == name)
                #expect(event.outcome == outcome)
                #expect(event.error == "boom")
                #expect(event.severity == (outcome == .cancelled ? .warning : event.event.defaultSeverity))
            }
        }
        #expect(AlertEvent.backupFailed(stanza: "main", backupId: nil, error: Boom()).summary == "backup FAILED: boom")
        #expect(AlertEvent.jobFailed(.drill, stanza: "main", backupId: "b1", error: Boom(), outcome: .cancelled).summary == "drill of backup b1 was CANCELLED: boom")
    }
}
