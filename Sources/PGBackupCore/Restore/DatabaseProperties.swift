import Foundation
import Logging
import PostgresClient

/// What belongs to a database rather than to its contents, and so is not in `pg_dump`'s
/// archive unless restored with `--create` under the original name: owner, comment, privileges,
/// `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET`. Recorded at the backup's
/// snapshot; `restore` applies all of it to the target database, a drill the settings (an
/// application that relies on its database's `search_path` must find it there).
public struct DatabaseProperties: Codable, Sendable, Equatable {
    public struct Privilege: Codable, Sendable, Hashable {
        /// A role name; nil for PUBLIC.
        public var grantee: String?
        /// `CONNECT`, `CREATE` or `TEMPORARY`.
        public var privilege: String
        public var grantable: Bool
    }

    public struct RoleSettings: Codable, Sendable, Equatable {
        public var role: String
        /// `name=value`, as `pg_db_role_setting.setconfig` holds them.
        public var settings: [String]
    }

    public var owner: String
    public var comment: String?
    /// nil: the defaults (PUBLIC may connect and create temporary tables).
    public var privileges: [Privilege]?
    /// `ALTER DATABASE … SET`, as `name=value`.
    public var settings: [String]
    public var roleSettings: [RoleSettings]
    /// -1: no limit.
    public var connectionLimit: Int

    static let query = """
        select pg_catalog.json_build_object(
          'owner', pg_catalog.pg_get_userbyid(d.datdba),
          'comment', pg_catalog.shobj_description(d.oid, 'pg_database'),
          'privileges', (select pg_catalog.json_agg(pg_catalog.json_build_object(
                            'grantee', case when a.grantee = 0 then null else pg_catalog.pg_get_userbyid(a.grantee) end,
                            'privilege', a.privilege_type, 'grantable', a.is_grantable) order by a.grantee, a.privilege_type)
                         from pg_catalog.aclexplode(d.datacl) a),
          'privileges_are_default', d.datacl is null,
          'settings', coalesce((select s.setconfig from pg_catalog.pg_db_role_setting s where s.setdatabase = d.oid and s.setrole = 0), '{}'),
          'role_settings', coalesce((select pg_catalog.json_agg(pg_catalog.json_build_object('role', pg_catalog.pg_get_userbyid(s.setrole), 'settings', s.setconfig)
                                     order by pg_catalog.pg_get_userbyid(s.setrole))
                                     from pg_catalog.pg_db_role_setting s where s.setdatabase = d.oid and s.setrole <> 0), '[]'),
          'connection_limit', d.datconnlimit)::text
        from pg_catalog.pg_database d where d.datname = $1
        """

    private struct Row: Decodable {
        var owner: String
        var comment: String?
        var privileges: [Privilege]?
        var privilegesAreDefault: Bool
        var settings: [String]
        var roleSettings: [RoleSettings]
        var connectionLimit: Int
    }

    /// The properties of `database`, read from the shared catalogs through any session on its server.
    static func read(database: String, _ connection: PostgresConnection) async throws -> DatabaseProperties? {
        guard let json = try await connection.query(query, [database]).scalar else { return nil }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let row = try decoder.decode(Row.self, from: Data(json.utf8))
        return DatabaseProperties(owner: row.owner, comment: row.comment, privileges: row.privilegesAreDefault ? nil : (row.privileges ?? []),
                                  settings: row.settings, roleSettings: row.roleSettings, connectionLimit: row.connectionLimit)
    }

    /// What to apply.
    struct Parts: OptionSet {
        let rawValue: Int
        static let owner = Parts(rawValue: 1)
        static let comment = Parts(rawValue: 2)
        static let privileges = Parts(rawValue: 4)
        static let settings = Parts(rawValue: 8)
        static let connectionLimit = Parts(rawValue: 16)
        static let all: Parts = [.owner, .comment, .privileges, .settings, .connectionLimit]
    }

    /// The statements that give `database` these properties, each quoted by the server itself.
    /// Role settings of roles `existingRoles` lacks are returned in `skipped`, not applied.
    func statements(for database: String, parts: Parts, existingRoles: Set<String>?, _ connection: PostgresConnection) async throws -> (statements: [String], skipped: [String]) {
        func format(_ template: String, _ arguments: String?...) async throws -> String {
            try await connection.query("select pg_catalog.format($1::text\(arguments.indices.map { ", $\($0 + 2)::text" }.joined()))", [template] + arguments).scalar ?? ""
        }
        var statements: [String] = []
        var skipped: [String] = []
        if parts.contains(.owner) { statements.append(try await format("alter database %I owner to %I", database, owner)) }
        if parts.contains(.comment), let comment { statements.append(try await format("comment on database %I is %L", database, comment)) }
        if parts.contains(.connectionLimit), connectionLimit != -1 {
            statements.append(try await format("alter database %I connection limit \(connectionLimit)", database))
        }
        if parts.contains(.privileges), let privileges {
            // Explicit privileges replace the defaults: start from none, as the source had.
            statements.append(try await format("revoke all on database %I from public", database))
            if parts.contains(.owner) { statements.append(try await format("revoke all on database %I from %I", database, owner)) }
            for item in privileges {
                var grantee = "public"
                if let role = item.grantee { grantee = try await format("%I", role) }
                statements.append(try await format("grant \(item.privilege) on database %I to \(grantee)\(item.grantable ? " with grant option" : "")", database))
            }
        }
        if parts.contains(.settings) {
            for setting in settings {
                statements.append(try await Self.setStatement(try await format("alter database %I", database), setting, format))
            }
            for entry in roleSettings {
                guard existingRoles?.contains(entry.role) ?? true else {
                    skipped.append("role \(entry.role) (not on this server): \(entry.settings.joined(separator: ", "))")
                    continue
                }
                for setting in entry.settings {
                    statements.append(try await Self.setStatement(try await format("alter role %I in database %I", entry.role, database), setting, format))
                }
            }
        }
        return (statements.filter { !$0.isEmpty }, skipped)
    }

    /// `… SET name TO value` from a `name=value` of `setconfig`. Variables that take a list of
    /// names hold it quoted as identifiers (`app, "My Schema"`) and get each element as its own
    /// literal, as pg_dump writes them; every other value is one literal.
    static func setStatement(_ prefix: String, _ setting: String, _ format: (String, String?...) async throws -> String) async throws -> String {
        guard let equals = setting.firstIndex(of: "=") else { return "" }
        let name = String(setting[..<equals])
        let value = String(setting[setting.index(after: equals)...])
        let head = try await format("%s set %I to ", prefix, name)
        guard listVariables.contains(name.lowercased()) else { return head + (try await format("%L", value)) }
        var elements: [String] = []
        for element in splitIdentifierList(value) { elements.append(try await format("%L", element)) }
        return head + (elements.isEmpty ? "''" : elements.joined(separator: ", "))
    }

    /// The variables PostgreSQL marks GUC_LIST_QUOTE (pg_dump's `variable_is_guc_list_quote`).
    static let listVariables: Set<String> = ["local_preload_libraries", "search_path", "session_preload_libraries",
                                             "shared_preload_libraries", "temp_tablespaces", "unix_socket_directories"]

    /// `app, "My Schema", "$user"` → `app`, `My Schema`, `$user`.
    static func splitIdentifierList(_ text: String) -> [String] {
        var result: [String] = []
        var characters = Substring(text)
        while true {
            characters = characters.drop { $0 == " " || $0 == "\t" }
            guard let first = characters.first else { break }
            var element = ""
            if first == "\"" {
                characters = characters.dropFirst()
                while let next = characters.first {
                    characters = characters.dropFirst()
                    if next == "\"" {
                        if characters.first == "\"" { element.append("\""); characters = characters.dropFirst() } else { break }
                    } else {
                        element.append(next)
                    }
                }
            } else {
                while let next = characters.first, next != ",", next != " " {
                    element.append(next)
                    characters = characters.dropFirst()
                }
            }
            result.append(element)
            characters = characters.drop { $0 == " " || $0 == "\t" }
            guard characters.first == "," else { break }
            characters = characters.dropFirst()
        }
        return result
    }
}
