@testable import PGBackupCore
import Testing

struct ReferentialCheckTests {
    func key(definition: String, actions: String? = "aa--") -> ForeignKey {
        ForeignKey(table: "app.child", quotedTable: "app.child", name: "child_parent_id_fkey", columns: ["parent_id"],
                   referencedTable: "app.parent", quotedReferencedTable: "app.parent", referencedColumns: ["id"],
                   matchType: "s", definition: definition, actions: actions)
    }

    /// pg_get_constraintdef prints `parent(id)` or `app.parent(id)` depending on search_path:
    /// one constraint must not become "missing" and "not in the manifest" at once.
    @Test func identityIgnoresTheDefinitionText() {
        let backedUp = ReferentialCheck.Identity(key(definition: "FOREIGN KEY (parent_id) REFERENCES parent(id)"))
        let restored = ReferentialCheck.Identity(key(definition: "FOREIGN KEY (parent_id) REFERENCES app.parent(id)"))
        #expect(backedUp.matches(restored))
        #expect(!backedUp.matches(ReferentialCheck.Identity(key(definition: "", actions: "ac--"))), "ON DELETE CASCADE is another rule")
        #expect(backedUp.matches(ReferentialCheck.Identity(key(definition: "", actions: nil))), "older manifests have no actions")
    }

    @Test func theAntiJoinUsesTheConstraintsOperatorsAndScansWhatItIsGiven() {
        let predicate = ReferentialCheck.orphanPredicate(key(definition: ""), referenced: "only app.parent", operators: ["operator(public.=)"])
        #expect(predicate == "c.\"parent_id\" is not null and not exists (select 1 from only app.parent p where p.\"id\" operator(public.=) c.\"parent_id\")")
    }

    @Test func matchFullExemptsOnlyAnAllNullKey() {
        var composite = key(definition: "")
        composite.columns = ["a", "b"]
        composite.referencedColumns = ["x", "y"]
        composite.matchType = "f"
        #expect(ReferentialCheck.orphanPredicate(composite, referenced: "app.parent").hasPrefix("not (c.\"a\" is null and c.\"b\" is null) and not exists"))
    }
}
