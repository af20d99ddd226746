import Foundation
import Logging
import PostgresClient

/// What the backup role may read, probed before anything is stored. `backup` and `check` run
/// these same probes, so `check` says `ok` exactly when `backup` would get past them.
struct BackupPrivileges: Sendable {
    /// The role can read `pg_authid` (superusers only, by default); without it, globals are
    /// dumped with `--no-role-passwords` and the manifest says so.
    var canReadRolePasswords: Bool
    /// The connecting role, for messages.
    var role: String

    static func probe(_ server: PostgresServer) async throws -> BackupPrivileges {
        let row = try await server.connection.query("""
            select current_user::text, pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'select')
            """).rows.first
        return BackupPrivileges(canReadRolePasswords: row?[1] == "t", role: row?[0] ?? "")
    }

    /// Every reason pg_dump would fail for want of a privilege in `database`, as one error that
    /// names the objects and the grant that fixes it, or nothing when there is none.
    static func check(database: String, connection: PostgresConnection) async throws {
        let role = try await connection.query("select rolname::text, rolsuper, rolbypassrls from pg_catalog.pg_roles where rolname = current_user").rows.first
        let name = role?[0] ?? "the backup role"
        // A superuser reads everything; a BYPASSRLS role still needs SELECT.
        if role?[1] == "t" { return }
        let bypassesRowSecurity = role?[2] == "t"
        var problems: [String] = []
        let unreadable = try await connection.query("""
            select pg_catalog.format('%I.%I', n.nspname, c.relname)
            from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p', 'S') and \(SnapshotCatalog.userSchemas)
              and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.objid = c.oid and d.deptype = 'e')
              and (not pg_catalog.has_schema_privilege(n.oid, 'usage') or not pg_catalog.has_table_privilege(c.oid, 'select'))
            order by 1
            """).rows.compactMap { $0[0] }
        if !unreadable.isEmpty {
            problems.append("role \(name) cannot read \(list(unreadable)) in database \"\(database)\": GRANT USAGE on their schemas and SELECT on them to \(name)\(connection.serverMajorVersion >= 14 ? ", or GRANT pg_read_all_data TO \(name)" : "")")
        }
        if !bypassesRowSecurity {
            // pg_dump turns row security off and fails where a policy would still apply: on
            // tables the role does not own, and on its own with FORCE ROW LEVEL SECURITY.
            let filtered = try await connection.query("""
                select pg_catalog.format('%I.%I', n.nspname, c.relname)
                from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                where c.relkind in ('r', 'p') and c.relrowsecurity and \(SnapshotCatalog.userSchemas)
                  and (c.relforcerowsecurity or not pg_catalog.pg_has_role(c.relowner, 'usage'))
                order by 1
                """).rows.compactMap { $0[0] }
            if !filtered.isEmpty {
                problems.append("row-level security would hide rows of \(list(filtered)) in database \"\(database)\" from role \(name), and pg_dump refuses a partial dump: ALTER ROLE \(name) BYPASSRLS (as a superuser)")
            }
        }
        let compatible = try await connection.query("select pg_catalog.current_setting('lo_compat_privileges')").scalar == "on"
        if !compatible {
            let objects = Int(try await connection.query("""
                select count(*) from pg_catalog.pg_largeobject_metadata m
                where not pg_catalog.pg_has_role(m.lomowner, 'usage')
                  and not exists (select 1 from pg_catalog.aclexplode(m.lomacl) a
                                  where a.privilege_type = 'SELECT' and (a.grantee = 0 or pg_catalog.pg_has_role(a.grantee, 'usage')))
                """).scalar ?? "0") ?? 0
            if objects > 0 {
                problems.append("role \(name) cannot read \(objects) large object(s) in database \"\(database)\": GRANT SELECT ON LARGE OBJECT … TO \(name), or make it their owner's member")
            }
        }
        guard problems.isEmpty else {
            throw BackupError(.insufficientPrivilege, message: problems.joined(separator: "; "))
        }
    }

    private static func list(_ names: [String]) -> String {
        names.count <= 5 ? names.joined(separator: ", ") : names.prefix(5).joined(separator: ", ") + " and \(names.count - 5) more"
    }
}
