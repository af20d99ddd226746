@testable import PGBackupCore
import Testing

struct DumpRestorerTests {
    static let listing = """
        ;
        ; Archive created at 2026-12-07 14:20:00 UTC
        ;
        216; 1259 46700 TABLE public c postgres
        214; 1259 46690 TABLE public p postgres
        3204; 0 0 TABLE ATTACH public p1 postgres
        3356; 0 46700 TABLE DATA public c postgres
        3206; 2606 46694 CONSTRAINT public p p_pkey postgres
        3211; 0 0 INDEX ATTACH public p1_pkey postgres
        3212; 2606 46705 FK CONSTRAINT public c c_p_fkey postgres
        3213; 2606 46706 CONSTRAINT public "FK CONSTRAINT" "FK CONSTRAINT_pkey" postgres
        """

    /// Foreign keys get a pg_restore run of their own, after every index is attached, and the
    /// attachments one of their own (run one at a time).
    @Test func foreignKeysAndIndexAttachmentsAreSplitFromTheRestOfTheListing() {
        let lists = DumpRestorer.splitPostData(Self.listing)
        let active = { (text: String) in text.split(separator: "\n").filter { !$0.hasPrefix(";") }.map(String.init) }
        #expect(active(lists.foreignKeys) == ["3212; 2606 46705 FK CONSTRAINT public c c_p_fkey postgres"])
        #expect(active(lists.indexAttach) == ["3211; 0 0 INDEX ATTACH public p1_pkey postgres"])
        #expect(active(lists.rest).count == 6)
        #expect(!active(lists.rest).contains { $0.contains("c_p_fkey") || $0.contains("INDEX ATTACH") })
        #expect(active(lists.rest).contains { $0.contains("\"FK CONSTRAINT_pkey\"") }, "a table named FK CONSTRAINT is not a foreign key")
    }
}

struct PgRestoreFailureTests {
    /// What pg_restore 17 prints when a view of PostgreSQL 15 does not restore.
    static let stderr = """
        pg_restore: error: could not execute query: ERROR:  column pg_stat_bgwriter.checkpoints_timed does not exist
        LINE 2:  SELECT pg_stat_bgwriter.checkpoints_timed
                        ^
        Command was: CREATE VIEW public.v AS
         SELECT pg_stat_bgwriter.checkpoints_timed
           FROM pg_stat_bgwriter;


        pg_restore: error: could not execute query: ERROR:  type "abstime" does not exist
        Command was: CREATE FUNCTION public.age_of(integer) RETURNS abstime
        pg_restore: error: could not connect to database "x": fatal
        pg_restore: warning: errors ignored on restore: 3
        """

    @Test func eachFailureNamesTheObjectItWasCreating() {
        #expect(PgRestoreFailure.parse(Self.stderr) == [
            PgRestoreFailure(object: "CREATE VIEW public.v", error: "column pg_stat_bgwriter.checkpoints_timed does not exist"),
            PgRestoreFailure(object: "CREATE FUNCTION public.age_of(integer)", error: "type \"abstime\" does not exist"),
            PgRestoreFailure(object: nil, error: "could not connect to database \"x\": fatal"),
        ])
    }
}
