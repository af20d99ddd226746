import Foundation
import PostgresClient

/// What a database holds, read inside the backup's snapshot so it describes exactly the dumped
/// data: the row count of every table, the foreign keys and an object census.
enum SnapshotCatalog {
    /// Makes every catalog text this session produces independent of the database's and role's
    /// settings: `pg_get_constraintdef()` and `::regclass` print names relative to `search_path`,
    /// so a database with `ALTER DATABASE … SET search_path` would describe one constraint two
    /// ways (backup session, scratch database). `row_security = off` makes a count that row-level
    /// security would filter fail instead of coming out short.
    static func pinSessionSettings(_ connection: PostgresConnection) async throws {
        try await connection.query("select pg_catalog.set_config('search_path', 'pg_catalog', false), pg_catalog.set_config('row_security', 'off', false)")
    }

    /// Schemas pg_dump leaves out; the same filter is used everywhere so the counts compare.
    static let userSchemas = """
        n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp\\_%'
        """

    /// Tables whose data pg_dump writes: ordinary and partitioned tables outside system schemas,
    /// minus those owned by an extension (CREATE EXTENSION recreates them, not the dump).
    static let dumpedTables = """
        select n.nspname as schema, c.relname as name, format('%I.%I', n.nspname, c.relname) as quoted
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and \(userSchemas)
          and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
        order by 1, 2
        """

    static func rowCounts(_ connection: PostgresConnection) async throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        for row in try await connection.query(dumpedTables).rows {
            guard let schema = row[0], let name = row[1], let quoted = row[2] else { continue }
            // ONLY: a partitioned parent counts its own rows (none); each partition is counted alone.
            let count = try await connection.query("select count(*) from only \(quoted)").scalar
            counts["\(schema).\(name)"] = Int64(count ?? "") ?? 0
        }
        return counts
    }

    /// The foreign keys users declared. PostgreSQL clones each one onto every partition of a
    /// partitioned referencing table and, per partition of a partitioned referenced table, adds
    /// an internal one (`conparentid <> 0`): those are enforcement details of the declared key,
    /// which is checked once, against the whole referenced table.
    /// Large objects live outside every table; the row counts would not notice them missing.
    static func largeObjectCount(_ connection: PostgresConnection) async throws -> Int64 {
        Int64(try await connection.query("select count(*) from pg_catalog.pg_largeobject_metadata").scalar ?? "0") ?? 0
    }

    /// Extension name → version.
    static func extensions(_ connection: PostgresConnection) async throws -> [String: String] {
        let json = try await connection.query("select coalesce(pg_catalog.json_object_agg(extname, extversion), '{}')::text from pg_catalog.pg_extension").scalar ?? "{}"
        return try JSONDecoder().decode([String: String].self, from: Data(json.utf8))
    }

    static let foreignKeysQuery = """
        select coalesce(json_agg(fk order by fk.table, fk.name), '[]')::text from (
          select n.nspname || '.' || cl.relname as table, format('%I.%I', n.nspname, cl.relname) as quoted_table,
            con.conname as name, con.confmatchtype::text as match_type,
            array(select a.attname from unnest(con.conkey) with ordinality k(attnum, ord)
                  join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum order by k.ord) as columns,
            rn.nspname || '.' || rc.relname as referenced_table, format('%I.%I', rn.nspname, rc.relname) as quoted_referenced_table,
            array(select a.attname from unnest(con.confkey) with ordinality k(attnum, ord)
                  join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum order by k.ord) as referenced_columns,
            pg_get_constraintdef(con.oid) as definition,
            con.confupdtype::text || con.confdeltype::text || case when con.condeferrable then 'd' else '-' end
              || case when con.condeferred then 'i' else '-' end as actions
          from pg_constraint con
          join pg_class cl on cl.oid = con.conrelid join pg_namespace n on n.oid = cl.relnamespace
          join pg_class rc on rc.oid = con.confrelid join pg_namespace rn on rn.oid = rc.relnamespace
          where con.contype = 'f' and con.conparentid = 0 and \(userSchemas)
        ) fk
        """

    static func foreignKeys(_ connection: PostgresConnection) async throws -> [ForeignKey] {
        let json = try await connection.query(foreignKeysQuery).scalar ?? "[]"
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode([ForeignKey].self, from: Data(json.utf8))
    }

    /// Constraints are counted without PostgreSQL 18's NOT NULL entries (`contype = 'n'`):
    /// older majors keep NOT NULL in pg_attribute only, and an upgrade drill compares across them.
    /// With `excludingExtensionMembers`, objects that belong to an extension are not counted:
    /// the dump does not hold them, `CREATE EXTENSION` makes them, and a drill server's version
    /// of the extension may make others (manifests before this recorded them counted).
    static func censusQuery(excludingExtensionMembers: Bool) -> String {
        let notMember = { (catalog: String, alias: String) in
            excludingExtensionMembers
                ? " and not exists (select 1 from pg_depend d where d.classid = '\(catalog)'::regclass and d.objid = \(alias).oid and d.deptype = 'e')"
                : ""
        }
        let relations = notMember("pg_class", "c")
        return """
            select coalesce(json_object_agg(schema, counts), '{}')::text from (
              select n.nspname as schema, json_build_object(
                'tables', (select count(*) from pg_class c where c.relnamespace = n.oid and c.relkind in ('r', 'p')\(relations)),
                'indexes', (select count(*) from pg_class c where c.relnamespace = n.oid and c.relkind in ('i', 'I')\(relations)),
                'sequences', (select count(*) from pg_class c where c.relnamespace = n.oid and c.relkind = 'S'\(relations)),
                'views', (select count(*) from pg_class c where c.relnamespace = n.oid and c.relkind in ('v', 'm')\(relations)),
                'constraints', (select count(*) from pg_constraint con where con.connamespace = n.oid and con.contype <> 'n'),
                'functions', (select count(*) from pg_proc p where p.pronamespace = n.oid\(notMember("pg_proc", "p")))
              ) as counts
              from pg_namespace n where \(userSchemas)
            ) s
            """
    }

    static func census(_ connection: PostgresConnection, excludingExtensionMembers: Bool = true) async throws -> ObjectCensus {
        let json = try await connection.query(censusQuery(excludingExtensionMembers: excludingExtensionMembers)).scalar ?? "{}"
        return ObjectCensus(schemas: try JSONDecoder().decode([String: ObjectCensus.Counts].self, from: Data(json.utf8)),
                            excludesExtensionMembers: excludingExtensionMembers)
    }
}
