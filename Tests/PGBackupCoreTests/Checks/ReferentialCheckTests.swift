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

    /// PostgreSQL's validation stands in for the anti-join only for a constraint the foreign-key
    /// run created (not among those there before it), validated, and equal to the manifest's.
    @Test func validationIsProofOnlyForAValidatedKeyTheForeignKeyRunCreated() {
        let expected = key(definition: "")
        let restored = [key(definition: "FOREIGN KEY (parent_id) REFERENCES app.parent(id)")]
        let validation = { (oid: String, valid: Bool) in
            [ReferentialCheck.validationKey(table: "app.child", name: "child_parent_id_fkey"):
                ReferentialCheck.Validation(table: "app.child", name: "child_parent_id_fkey", oid: oid, validated: valid)]
        }
        #expect(ReferentialCheck.validatedByRestore(expected, restored: restored, validations: validation("16500", true), before: []))
        #expect(ReferentialCheck.validatedByRestore(expected, restored: restored, validations: validation("16500", true), before: ["16400"]))
        #expect(!ReferentialCheck.validatedByRestore(expected, restored: restored, validations: validation("16500", true), before: nil), "the run was not recorded")
        #expect(!ReferentialCheck.validatedByRestore(expected, restored: restored, validations: validation("16500", true), before: ["16500"]), "there before the run")
        #expect(!ReferentialCheck.validatedByRestore(expected, restored: restored, validations: validation("16500", false), before: []), "NOT VALID")
        #expect(!ReferentialCheck.validatedByRestore(expected, restored: [], validations: validation("16500", true), before: []), "missing")
        #expect(!ReferentialCheck.validatedByRestore(expected, restored: [key(definition: "", actions: "ac--")], validations: validation("16500", true), before: []),
                "another constraint under the same name")
        var otherColumns = key(definition: "")
        otherColumns.referencedColumns = ["other_id"]
        #expect(!ReferentialCheck.validatedByRestore(expected, restored: [otherColumns], validations: validation("16500", true), before: []))
        #expect(!ReferentialCheck.validatedByRestore(expected, restored: restored, validations: [:], before: []))
    }
}
