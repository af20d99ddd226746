import Foundation
import PostgresClient

/// Every foreign key of the backed-up database, checked in the restored one: orphan rows counted
/// by an anti-join (multi-column keys; MATCH SIMPLE rows with a NULL in the key are exempt), with
/// samples, and the set of constraints compared with the manifest's. The anti-join runs from
/// the manifest's list, so a constraint pg_restore could not create still has its orphans found.
///
/// A key PostgreSQL itself proved needs no anti-join: one whose constraint the restore's
/// foreign-key run of pg_restore created (it did not exist when that run began, after every
/// table's data was in), that is the manifest's constraint part for part, and that is validated
/// (`convalidated`): `ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY` checks every row before it
/// commits. A key that was `NOT VALID` in the source (restored not valid), one whose `ADD
/// CONSTRAINT` failed, one missing or there before that run, or any when the run was not
/// recorded, is checked by the anti-join. The summary and figures say how many were established
/// each way.
struct ReferentialCheck {
    static let sampleLimit = 100

    let connection: PostgresConnection
    let expected: [ForeignKey]
    /// ``DumpRestorer/Outcome/foreignKeysBeforeTheirRun``: nil runs the anti-join for every key.
    var foreignKeysBeforeTheirRun: Set<String>? = nil

    /// A restored constraint's OID and whether PostgreSQL has validated it.
    struct Validation: Decodable, Sendable {
        var table: String
        var name: String
        var oid: String
        var validated: Bool
    }

    static let validationQuery = """
        select coalesce(json_agg(json_build_object('table', n.nspname || '.' || cl.relname, 'name', con.conname,
                                                   'oid', con.oid::text, 'validated', con.convalidated)), '[]')::text
        from pg_catalog.pg_constraint con
        join pg_catalog.pg_class cl on cl.oid = con.conrelid join pg_catalog.pg_namespace n on n.oid = cl.relnamespace
        where con.contype = 'f' and con.conparentid = 0
        """

    /// Whether PostgreSQL proved `key` during the restore (see the type's comment): `restored`
    /// are the scratch database's foreign keys, `validations` theirs by ``validationKey``.
    static func validatedByRestore(_ key: ForeignKey, restored: [ForeignKey], validations: [String: Validation], before: Set<String>?) -> Bool {
        guard let before,
              let match = restored.first(where: { $0.table == key.table && $0.name == key.name }),
              Identity(match).matches(Identity(key)),
              let validation = validations[validationKey(table: match.table, name: match.name)] else { return false }
        return validation.validated && !before.contains(validation.oid)
    }

    static func validationKey(table: String, name: String) -> String { table + "\u{0}" + name }

    func run() async throws -> CheckResult {
        let restored = try await SnapshotCatalog.foreignKeys(connection)
        var validations: [String: Validation] = [:]
        if foreignKeysBeforeTheirRun != nil {
            let json = try await connection.query(Self.validationQuery).scalar ?? "[]"
            for validation in try JSONDecoder().decode([Validation].self, from: Data(json.utf8)) {
                validations[Self.validationKey(table: validation.table, name: validation.name)] = validation
            }
        }
        let restoredIdentities = Set(restored.map(Identity.init))
        let expectedIdentities = Set(expected.map(Identity.init))
        var evidence: [[String: String]] = []
        for missing in expected where !restoredIdentities.contains(where: { $0.matches(Identity(missing)) }) {
            evidence.append(["constraint": missing.name, "table": missing.table, "problem": "missing from the restore (pg_restore did not create it)", "definition": missing.definition])
        }
        for extra in restored where !expectedIdentities.contains(where: { $0.matches(Identity(extra)) }) {
            evidence.append(["constraint": extra.name, "table": extra.table, "problem": "not in the backup's manifest", "definition": extra.definition])
        }
        let constraintProblems = evidence.count

        var orphanRows: Int64 = 0
        var keysWithOrphans = 0
        var validatedByRestore: Int64 = 0
        for key in expected {
            if Self.validatedByRestore(key, restored: restored, validations: validations, before: foreignKeysBeforeTheirRun) {
                validatedByRestore += 1
                continue
            }
            let count: Int64, samples: [(row: String, dangling: String)]
            do {
                (count, samples) = try await orphans(of: key)
            } catch is MissingTable {
                evidence.append(["constraint": key.name, "table": key.table, "problem": "cannot be checked: \(key.table) or \(key.referencedTable) is missing from the restore"])
                continue
            }
            guard count > 0 else { continue }
            orphanRows += count
            keysWithOrphans += 1
            evidence.append(["constraint": key.name, "table": key.table, "rows": String(count), "problem": "\(count) orphan row(s) referencing \(key.referencedTable) (\(key.referencedColumns.joined(separator: ", ")))"])
            evidence += samples.map { ["constraint": key.name, "table": key.table, "row": $0.row, "dangling_key": $0.dangling] }
        }
        let passed = evidence.isEmpty
        var summary = "\(expected.count) foreign keys"
        if passed {
            summary += " restored, no orphan rows"
        } else {
            if orphanRows > 0 { summary += "; \(orphanRows) orphan row(s) under \(keysWithOrphans) constraint(s)" }
            if constraintProblems > 0 { summary += "; \(constraintProblems) constraint(s) differ from the manifest" }
        }
        let queried = Int64(expected.count) - validatedByRestore
        summary += " (\(validatedByRestore) validated by PostgreSQL when pg_restore added them after the data, \(queried) checked by anti-join)"
        return CheckResult(name: "referential", passed: passed, summary: summary,
                           figures: ["foreign_keys": Int64(expected.count), "orphan_rows": orphanRows, "constraints_differing": Int64(constraintProblems),
                                     "validated_by_restore": validatedByRestore, "checked_by_query": queried],
                           evidence: evidence)
    }

    private struct MissingTable: Error {}

    /// What makes two foreign keys the same constraint: its table, name, columns, target and
    /// rules, never the text `pg_get_constraintdef` prints (which depends on session settings and
    /// on the server version). `actions` is compared only when both sides recorded it.
    struct Identity: Hashable {
        var parts: [String]
        var actions: String?

        init(_ key: ForeignKey) {
            parts = [key.table, key.name, key.columns.joined(separator: ","), key.referencedTable,
                     key.referencedColumns.joined(separator: ","), key.matchType]
            actions = key.actions
        }

        func matches(_ other: Identity) -> Bool {
            parts == other.parts && (actions == nil || other.actions == nil || actions == other.actions)
        }
    }

    /// The anti-join for one key. MATCH SIMPLE and PARTIAL exempt a row with any NULL in the
    /// key; MATCH FULL only one whose key is all NULL (a partly NULL key is itself a violation).
    /// `referencing` and `referenced` are what to scan: `only` a plain table, since a foreign
    /// key holds for its table's own rows and looks its target up in that table alone, as
    /// PostgreSQL's triggers do with inheritance; a partitioned table with all its partitions.
    /// `operators` are the constraint's own equality operators (`conpfeqop`), schema-qualified:
    /// with `search_path` pinned, a bare `=` between two `citext` columns would compare them as
    /// text, case-sensitively, and find orphans the constraint itself accepts.
    static func orphanPredicate(_ key: ForeignKey, referenced: String, operators: [String] = []) -> String {
        let childColumns = key.columns.map { "c.\(quoteIdentifier($0))" }
        let nullExemption = key.matchType == "f"
            ? "not (" + childColumns.map { "\($0) is null" }.joined(separator: " and ") + ")"
            : childColumns.map { "\($0) is not null" }.joined(separator: " and ")
        let equals = operators.count == key.columns.count ? operators : Array(repeating: "=", count: key.columns.count)
        let join = zip(zip(key.columns, key.referencedColumns), equals).map { pair, op in
            "p.\(quoteIdentifier(pair.1)) \(op) c.\(quoteIdentifier(pair.0))"
        }.joined(separator: " and ")
        return "\(nullExemption) and not exists (select 1 from \(referenced) p where \(join))"
    }

    /// `only schema.table` for a plain table, the name alone for a partitioned one; nil when
    /// the restore has no such table (the row counts name it).
    private func scanned(_ quotedTable: String) async throws -> String? {
        let kind = try await connection.query("select relkind::text from pg_catalog.pg_class where oid = pg_catalog.to_regclass($1)", [quotedTable]).rows.first?[0]
        guard let kind else { return nil }
        return kind == "p" ? quotedTable : "only \(quotedTable)"
    }

    /// The restored constraint's equality operators, or none when pg_restore did not create it.
    private func equalityOperators(of key: ForeignKey) async throws -> [String] {
        let text = try await connection.query("""
            select pg_catalog.array_to_json(array(
              select pg_catalog.format('operator(%I.%s)', n.nspname, o.oprname)
              from pg_catalog.unnest(con.conpfeqop) with ordinality e(op, ord)
              join pg_catalog.pg_operator o on o.oid = e.op join pg_catalog.pg_namespace n on n.oid = o.oprnamespace
              order by e.ord))::text
            from pg_catalog.pg_constraint con
            where con.contype = 'f' and con.conparentid = 0 and con.conrelid = $1::pg_catalog.regclass and con.conname = $2
            """, [key.quotedTable, key.name]).scalar
        guard let text else { return [] }
        return (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
    }

    private func orphans(of key: ForeignKey) async throws -> (Int64, [(row: String, dangling: String)]) {
        guard let referencing = try await scanned(key.quotedTable), let referenced = try await scanned(key.quotedReferencedTable) else {
            throw MissingTable()
        }
        let predicate = Self.orphanPredicate(key, referenced: referenced, operators: try await equalityOperators(of: key))
        let count = Int64(try await connection.query("select count(*) from \(referencing) c where \(predicate)").scalar ?? "0") ?? 0
        guard count > 0 else { return (0, []) }
        let primaryKey = try await primaryKeyColumns(of: key.quotedTable, connection)
        let samples = try await connection.query("""
            select \(renderColumns(primaryKey, alias: "c")), \(renderColumns(key.columns, alias: "c"))
            from \(referencing) c where \(predicate) order by 1 limit \(Self.sampleLimit)
            """).rows.map { (row: $0[0] ?? "", dangling: $0[1] ?? "") }
        return (count, samples)
    }
}
