@testable import PGBackupCore
import Testing

/// The text report once printed 12 evidence lines per check and dropped the rest without a word.
struct DrillReportTextTests {
    func orphans(_ constraint: String, count: Int) -> [[String: String]] {
        [["constraint": constraint, "table": "public.t", "rows": String(count), "problem": "\(count) orphan row(s) referencing public.p (id)"]]
            + (0..<count).map { ["constraint": constraint, "table": "public.t", "row": "\($0)", "dangling_key": "\(1000 + $0)"] }
    }

    @Test func everyConstraintGetsItsTotalAndItsFirstRows() {
        let lines = DrillReportText.evidenceLines([
            ["constraint": "a_fkey", "table": "public.t", "problem": "missing from the restore (pg_restore did not create it)", "definition": "FOREIGN KEY (p) REFERENCES public.p(id)"],
            ["constraint": "b_fkey", "table": "public.t", "problem": "missing from the restore (pg_restore did not create it)", "definition": "FOREIGN KEY (q) REFERENCES public.q(id)"],
        ] + orphans("a_fkey", count: 8) + orphans("b_fkey", count: 2))
        // Both constraints are there with their totals, however many lines came before.
        #expect(lines.contains { $0.contains("constraint=a_fkey") && $0.contains("8 orphan row(s)") })
        #expect(lines.contains { $0.contains("constraint=b_fkey") && $0.contains("2 orphan row(s)") })
        #expect(lines.filter { $0.contains("constraint=a_fkey") && $0.contains("row=") }.count == DrillReportText.rowsPerGroup)
        #expect(lines.contains("  … and 3 more (full list: --json)"))
        #expect(lines.contains { $0.contains("constraint=b_fkey") && $0.contains("row=1 ") })
        #expect(!lines.contains { $0.contains("rows=") }, "the machine-readable total is not repeated")
    }

    @Test func rowsBeyondTheSampleAreCountedNotShown() {
        var evidence = orphans("big_fkey", count: 100)
        evidence[0]["rows"] = "250000"
        let lines = DrillReportText.evidenceLines(evidence)
        #expect(lines.last == "  … and 249995 more (the first 100 in --json)")
    }

    @Test func rowsWithoutAGroupAreAllShown() {
        let lines = DrillReportText.evidenceLines((1...3).map { ["table": "public.t\($0)", "snapshot_rows": "5", "restored_rows": "4"] })
        #expect(lines == (1...3).map { "restored_rows=4 snapshot_rows=5 table=public.t\($0)" })
    }
}

struct RestoreTimeCheckTests {
    let databases = [DrillReport.DatabaseDrill(name: "daylog", scratchDatabase: "s", kept: false, restoreSeconds: 75.25, checkSeconds: 1, checks: [])]

    @Test func aRestoreWithinTheObjectivePasses() {
        let check = Drill.restoreTime(75.25, limit: 90, databases: databases)
        #expect(check.passed && check.name == "restore-time" && check.evidence.isEmpty)
    }

    @Test func aSlowerRestoreFailsNamingEachDatabasesTime() {
        let check = Drill.restoreTime(75.25, limit: 60, databases: databases)
        #expect(!check.passed)
        #expect(check.summary == "restored in 75.2 s, over drill.max_restore_seconds (60 s): the recovery time objective slipped")
        #expect(check.evidence == [["database": "daylog", "restore_seconds": "75.2"]])
    }
}
