import Foundation
@testable import PGBackupCore
import Testing

/// The referential check takes PostgreSQL's own validation for proof only when pg_restore's
/// foreign-key run created the constraint after the data was in, exactly as the manifest has
/// it, and it is validated; every other key is checked by the anti-join, and the verdict is the
/// same either way.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct DrillReferentialProofTests {
    let drills = DrillTests()

    func referential(_ report: DrillReport) throws -> CheckResult {
        try drills.check(report, "referential")
    }

    @Test func keysPgRestoreAddedAfterTheDataAreProvenByTheirValidation() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await drills.setup(postgres, cleanup)
            _ = try await drills.backup(setup)
            let report = try await drills.drill(setup)
            #expect(report.passed, "\(report.failures.map(\.check.summary))")
            let check = try referential(report)
            #expect(check.passed)
            #expect(check.figures["foreign_keys"] == 4)
            #expect(check.figures["validated_by_restore"] == 4)
            #expect(check.figures["checked_by_query"] == 0)
            #expect(check.summary.contains("4 validated by PostgreSQL when pg_restore added them after the data, 0 checked by anti-join"), "\(check.summary)")
        }
    }

    /// NOT VALID in the source: pg_restore adds it NOT VALID again, which proves nothing, so its
    /// orphan row (there since before the constraint) is found by the anti-join.
    @Test func aNotValidKeyIsCheckedByQueryAndItsOrphansFound() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await drills.setup(postgres, cleanup)
            try await setup.fixture.execute("""
                alter table journal_journalentry drop constraint journal_journalentry_user_id_fkey;
                insert into journal_journalentry (id, user_id, title, content) values ('00000000-0000-0000-0000-0000000000aa', 424242, 'orphan', '{"blocks": []}');
                alter table journal_journalentry add constraint journal_journalentry_user_id_fkey
                  foreign key (user_id) references auth_user(id) on delete cascade not valid;
                """)
            _ = try await drills.backup(setup)
            let report = try await drills.drill(setup)
            #expect(try drills.check(report, "restore").passed, "a NOT VALID key restores cleanly")
            let check = try referential(report)
            #expect(!check.passed && !report.passed)
            #expect(check.figures["orphan_rows"] == 1)
            #expect(check.figures["checked_by_query"] == 1)
            #expect(check.figures["validated_by_restore"] == 3)
            #expect(check.evidence.contains { $0["constraint"] == "journal_journalentry_user_id_fkey" && $0["dangling_key"] == "424242" })
            #expect(!check.evidence.contains { $0["problem"]?.contains("missing from the restore") == true })
        }
    }

    @Test func aNotValidKeyWithoutOrphansPassesByQuery() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await drills.setup(postgres, cleanup)
            try await setup.fixture.execute("""
                alter table journal_tag drop constraint journal_tag_user_id_fkey;
                alter table journal_tag add constraint journal_tag_user_id_fkey foreign key (user_id) references auth_user(id) on delete cascade not valid;
                """)
            _ = try await drills.backup(setup)
            let report = try await drills.drill(setup)
            #expect(report.passed, "\(report.failures.map(\.check.summary))")
            let check = try referential(report)
            #expect(check.figures["checked_by_query"] == 1 && check.figures["validated_by_restore"] == 3)
        }
    }

    /// Orphans in the source make pg_restore's ADD CONSTRAINT fail: no constraint, so the key is
    /// queried, its orphan named, and the missing constraint reported.
    @Test func aKeyWhoseAddConstraintFailedIsCheckedByQuery() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let setup = try await drills.setup(postgres, cleanup)
            try await setup.fixture.execute("""
                set session_replication_role = replica;
                insert into journal_journalentry_tags (journalentry_id, tag_id) select id, '00000000-0000-0000-0000-0000000000cc' from journal_journalentry limit 1;
                """)
            _ = try await drills.backup(setup)
            let report = try await drills.drill(setup)
            #expect(!(try drills.check(report, "restore").passed))
            let check = try referential(report)
            #expect(!check.passed)
            #expect(check.figures["orphan_rows"] == 1)
            #expect(check.figures["checked_by_query"] == 1 && check.figures["validated_by_restore"] == 3)
            #expect(check.evidence.contains { $0["constraint"] == "journal_journalentry_tags_tag_id_fkey" && $0["problem"]?.contains("missing from the restore") == true })
        }
    }

    /// A restore whose foreign-key run did nothing (here: a pg_restore that skips it and says
    /// nothing): every key is missing, each is queried, and the orphan is still found.
    @Test func missingKeysAreCheckedByQuery() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let bin = try BackupHarness.wrappedTool(postgres, "pg_restore", script: """
                case "$*" in *foreign-keys.list*) exit 0 ;; esac
                exec "$REAL" "$@"
                """)
            cleanup.remove(bin)
            let setup = try await drills.setup(postgres, cleanup, binDirectory: bin)
            try await setup.fixture.execute("""
                set session_replication_role = replica;
                insert into journal_journalentry (id, user_id, title, content) values ('00000000-0000-0000-0000-0000000000aa', 424242, 'orphan', '{"blocks": []}');
                """)
            _ = try await drills.backup(setup)
            let report = try await drills.drill(setup)
            #expect(try drills.check(report, "restore").passed, "the wrapper hides the skipped run from the restore check")
            let check = try referential(report)
            #expect(!check.passed && !report.passed)
            #expect(check.figures["checked_by_query"] == 4 && check.figures["validated_by_restore"] == 0)
            #expect(check.figures["orphan_rows"] == 1)
            #expect(check.evidence.filter { $0["problem"]?.contains("missing from the restore") == true }.count == 4)
        }
    }

    /// Constraints there before pg_restore's foreign-key run (added NOT VALID after the data
    /// and then marked valid in the catalog, as a template or a stray earlier run could leave
    /// them) prove nothing about the data: with every key present and validated and the
    /// foreign-key run skipped, only the anti-join can find the orphan, and it must.
    @Test func keysThatExistedBeforeTheirRunAreCheckedByQuery() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let probe = try await DaylogFixture.create(postgres, entries: 1)
            cleanup.dropDatabase(probe.name)
            let definitions = try await shell("\(postgres.binDirectory)/psql", ["-XAt", "-h", postgres.host, "-p", postgres.port, "-U", postgres.user, "-d", probe.name, "-c", """
                select string_agg(pg_catalog.format('alter table %s add constraint %I %s not valid;', conrelid::regclass, conname, pg_get_constraintdef(oid)), ' ')
                from pg_constraint where contype = 'f'
                """]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            await probe.drop()
            #expect(definitions.components(separatedBy: "FOREIGN KEY").count == 5, "\(definitions)")
            let bin = try BackupHarness.wrappedTool(postgres, "pg_restore", script: """
                case "$*" in
                  *foreign-keys.list*) exit 0 ;;
                  *index-attach.list*)
                    "$REAL" "$@" || exit 1
                    db=; for a in "$@"; do case "$a" in --dbname=dbname=*) db="${a#--dbname=dbname=}" ;; esac; done
                    exec "$(dirname "$REAL")/psql" -X -q -v ON_ERROR_STOP=1 -d "dbname=$db" \\
                      -c "\(definitions) update pg_catalog.pg_constraint set convalidated = true where contype = 'f';" ;;
                esac
                exec "$REAL" "$@"
                """)
            cleanup.remove(bin)
            let setup = try await drills.setup(postgres, cleanup, binDirectory: bin)
            try await setup.fixture.execute("""
                set session_replication_role = replica;
                insert into journal_journalentry (id, user_id, title, content) values ('00000000-0000-0000-0000-0000000000aa', 424242, 'orphan', '{"blocks": []}');
                """)
            _ = try await drills.backup(setup)
            let report = try await drills.drill(setup)
            let restore = try drills.check(report, "restore")
            #expect(restore.passed, "\(restore.summary)")
            let check = try referential(report)
            #expect(!check.evidence.contains { $0["problem"]?.contains("missing from the restore") == true }, "every key is there and validated")
            #expect(!check.passed && !report.passed)
            #expect(check.figures["checked_by_query"] == 4 && check.figures["validated_by_restore"] == 0)
            #expect(check.figures["orphan_rows"] == 1)
            #expect(check.evidence.contains { $0["constraint"] == "journal_journalentry_user_id_fkey" && $0["dangling_key"] == "424242" })
        }
    }
}
