import Foundation
@testable import PGBackupCore
import Testing

/// The page checks read what PostgreSQL 15's programs print; these are their real messages.
struct PageChecksTests {
    @Test func amcheckNamesTheRelationThePlaceAndTheDamage() {
        let stdout = """
            heap table "postgres.public.t", block 0, offset 1:
                xmin 4043309055 precedes oldest valid transaction ID 0:716
            btree index "postgres.public.t_v":
                ERROR:  could not access status of transaction 4043309055
                DETAIL:  Could not open file "pg_xact/0F0F": No such file or directory.
            btree index "my.db.public.t_pkey":
                ERROR:  index tuple size does not equal lp_len in index "t_pkey"

            """
        let rows = PageChecks.amcheckProblems(stdout, databaseNames: ["postgres": "postgres", "my.db": "my.db"])
        #expect(rows == [
            ["kind": "heap table", "database": "postgres", "relation": "public.t", "at": "block 0, offset 1", "problem": "xmin 4043309055 precedes oldest valid transaction ID 0:716"],
            ["kind": "btree index", "database": "postgres", "relation": "public.t_v",
             "problem": "ERROR: could not access status of transaction 4043309055 DETAIL: Could not open file \"pg_xact/0F0F\": No such file or directory."],
            ["kind": "btree index", "database": "my.db", "relation": "public.t_pkey", "problem": "ERROR: index tuple size does not equal lp_len in index \"t_pkey\""],
        ])
        #expect(PageChecks.damagedRelations(rows) == ["postgres: public.t (heap table)", "postgres: public.t_v (btree index)", "my.db: public.t_pkey (btree index)"])
    }

    @Test func aScratchDatabaseIsReportedAsTheDatabaseItHolds() {
        let rows = PageChecks.amcheckProblems("heap table \"pgbackd_drill_x_0.public.t\", block 3, offset 7, attribute 2:\n    toast value 16390 not found in toast table\n",
                                              databaseNames: ["pgbackd_drill_x_0": "daylog"])
        #expect(rows.first?["database"] == "daylog")
        #expect(rows.first?["relation"] == "public.t")
        #expect(rows.first?["at"] == "block 3, offset 7, attribute 2")
    }

    @Test func checksumFailuresNameTheFileAndBlock() {
        let stderr = """
            pg_checksums: error: checksum verification failed in file "/var/tmp/pgbackd-drill-x/data/base/5/16384", block 0: calculated checksum 9F2A but block contains 1B3C
            pg_checksums: error: checksum verification failed in file "/var/tmp/pgbackd-drill-x/data/global/1262_vm", block 2: calculated checksum 1 but block contains 2
            """
        #expect(PageChecks.checksumFailures(stderr, dataDirectory: "/var/tmp/pgbackd-drill-x/data") == [
            ["file": "base/5/16384", "block": "0", "problem": "calculated checksum 9F2A but block contains 1B3C"],
            ["file": "global/1262_vm", "block": "2", "problem": "calculated checksum 1 but block contains 2"],
        ])
        let stdout = "Checksum operation completed\nFiles scanned:   946\nBlocks scanned:  2807\nBad checksums:  1\nData checksum version: 1\n"
        #expect(PageChecks.checksumFigures(stdout) == ["files": 946, "blocks": 2807])
    }

    @Test func verifyBackupNamesTheFiles() {
        let stderr = """
            pg_verifybackup: error: checksum mismatch for file "base/5/16384"
            pg_verifybackup: error: "pg_hba.conf" has size 4790 on disk but size 4789 in the manifest
            pg_verifybackup: error: "extra" is present on disk but not in the manifest
            """
        let rows = PageChecks.verifyBackupProblems(stderr)
        #expect(rows.map { $0["file"] } == ["base/5/16384", "pg_hba.conf", "extra"])
        #expect(rows[0]["problem"] == "checksum mismatch for file \"base/5/16384\"")
    }

    @Test func aSkippedCheckPassesAndSaysSo() {
        let check = PageChecks.skipped("amcheck", "no pg_amcheck in /usr/lib/postgresql/13/bin (it exists from PostgreSQL 14)")
        #expect(check.passed)
        #expect(DrillReportText.checkLines([check]) == ["  skip amcheck       skipped: no pg_amcheck in /usr/lib/postgresql/13/bin (it exists from PostgreSQL 14)"])
        let report = DrillReport(drillId: "d", backupId: "b", stanza: "s", host: "h", startedAt: .init(), finishedAt: .init(), passed: true,
                                 checks: [check, CheckResult(name: "recovery", passed: true, summary: "")], databases: [])
        #expect(DrillReportText.lines(report).first == "drill d of backup b: PASSED (1 of 2 checks passed, 1 skipped)")
    }
}
