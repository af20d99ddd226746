import Foundation
import Logging
@testable import PGBackupCore
import PostgresClient
import Synchronization
import Testing

/// What a schema test made: databases (any name), roles (after the databases) and paths.
/// `Cleanup` quotes nothing, so names with spaces and quotes need this one.
final class SchemaCleanup: Sendable {
    private let databases = Mutex<[String]>([])
    private let roles = Mutex<[String]>([])
    private let paths = Mutex<[String]>([])
    let postgres: TestServices.Postgres

    init(postgres: TestServices.Postgres) {
        self.postgres = postgres
    }

    func dropDatabase(_ name: String) { databases.withLock { $0.append(name) } }
    func dropRole(_ name: String) { roles.withLock { $0.append(name) } }
    func remove(_ path: String) { paths.withLock { $0.append(path) } }

    func run() async {
        if let admin = try? await SchemaHarness.connect(postgres) {
            for name in databases.withLock({ $0 }) {
                _ = try? await admin.query("drop database if exists \(SchemaHarness.quoteIdent(name)) with (force)")
            }
            for role in roles.withLock({ $0 }) {
                _ = try? await admin.query("drop owned by \(SchemaHarness.quoteIdent(role))")
                _ = try? await admin.query("drop role if exists \(SchemaHarness.quoteIdent(role))")
            }
        }
        for path in paths.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
    }
}

/// One schema case's database with its repository and configuration.
struct SchemaDatabase {
    let schema: SchemaCase
    let postgres: TestServices.Postgres
    let name: String
    let role: String
    let configurationText: String
    let configuration: Configuration
    let repository: Repository
    let repositoryPath: String
    let cleanup: SchemaCleanup

    func backup() async throws -> Manifest {
        try await LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()
    }

    func drill() async throws -> DrillReport {
        try await Drill(configuration: configuration, repository: repository, logger: BackupHarness.logger).run(.init(backup: "latest"))
    }

    func restore(backup: String, into target: String) async throws {
        cleanup.dropDatabase(target)
        _ = try await LogicalRestore(configuration: configuration, repository: repository, logger: BackupHarness.logger)
            .run(.init(backup: backup, database: name, target: target))
    }

    func execute(_ sql: String) async throws {
        try await SchemaHarness.connect(postgres, database: name).query(sql)
    }
}

enum SchemaHarness {
    static let logger = Logger(label: "pgbackd.test.schemas")

    static func quoteIdent(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func quoteLiteral(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// A TOML basic string.
    static func tomlString(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// conninfo for any database name (spaces, quotes, non-ASCII), optionally as another user.
    static func conninfo(_ postgres: TestServices.Postgres, database: String = "postgres", user: String? = nil) -> String {
        "host=\(Conninfo.quote(postgres.host)) port=\(Conninfo.quote(postgres.port)) user=\(Conninfo.quote(user ?? postgres.user)) dbname=\(Conninfo.quote(database))"
    }

    static func connect(_ postgres: TestServices.Postgres, database: String = "postgres") async throws -> PostgresConnection {
        try await PostgresConnection.connect(conninfo: conninfo(postgres, database: database), logger: logger)
    }

    static func configurationTOML(_ postgres: TestServices.Postgres, repository: String, database: String, extra: String) -> String {
        """
        [repository]
        type = "file"
        path = \(tomlString(repository))
        stanza = "test"
        [postgres]
        conninfo = \(tomlString(postgres.conninfo()))
        databases = [\(tomlString(database))]
        bin_dir = \(tomlString(postgres.binDirectory))
        [compression]
        level = 1
        [drill]
        staging_dir = \(tomlString(FileManager.default.temporaryDirectory.path))

        \(extra)
        \(TestServices.encryptionTOML)
        """
    }

    static func fill(_ sql: String, database: String, role: String) -> String {
        sql.replacingOccurrences(of: "{db}", with: quoteIdent(database)).replacingOccurrences(of: "{role}", with: quoteIdent(role))
    }

    /// Creates the case's database (faults injected when `faulty`), runs `body`, and drops
    /// everything it made whichever way the body ends.
    static func withDatabase<T>(_ schema: SchemaCase, faulty: Bool, _ body: (SchemaDatabase) async throws -> T) async throws -> T {
        let postgres = try TestServices.requirePostgres()
        let cleanup = SchemaCleanup(postgres: postgres)
        do {
            let result = try await body(try await create(schema, postgres: postgres, faulty: faulty, cleanup: cleanup))
            await cleanup.run()
            return result
        } catch {
            await cleanup.run()
            throw error
        }
    }

    private static func create(_ schema: SchemaCase, postgres: TestServices.Postgres, faulty: Bool, cleanup: SchemaCleanup) async throws -> SchemaDatabase {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let name = "\(schema.databaseStem) \(suffix)"
        let role = "corner_role_\(suffix)"
        let admin = try await connect(postgres)
        cleanup.dropDatabase(name)
        if schema.needsRole {
            cleanup.dropRole(role)
            try await admin.query("create role \(quoteIdent(role)) login")
        }
        try await admin.query("create database \(quoteIdent(name))")
        if !schema.adminSQL.isEmpty { try await admin.query(fill(schema.adminSQL, database: name, role: role)) }
        for sql in schema.setupSQL {
            do {
                try await connect(postgres, database: name).query(fill(sql, database: name, role: role))
            } catch {
                throw SetupFailure(message: "\(schema.id): setup SQL failed: \(error)")
            }
        }
        if faulty {
            do {
                try await connect(postgres, database: name).query("set session_replication_role = replica;\n" + fill(schema.faultSQL, database: name, role: role))
            } catch {
                throw SetupFailure(message: "\(schema.id): fault SQL failed: \(error)")
            }
        }
        let repositoryPath = try temporaryDirectory("corner-repo")
        cleanup.remove(repositoryPath)
        let text = configurationTOML(postgres, repository: repositoryPath, database: name, extra: schema.checksTOML)
        let configuration = try Configuration.parse(text, file: "corner.toml")
        let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)
        return SchemaDatabase(schema: schema, postgres: postgres, name: name, role: role, configurationText: text, configuration: configuration,
                              repository: repository, repositoryPath: repositoryPath, cleanup: cleanup)
    }

    struct SetupFailure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    // MARK: - Comparing a restore with its source

    /// Every table and materialized view outside system schemas and extensions: exact row
    /// count and an md5 over its sorted rows (ONLY: partitions and inheritance children are
    /// their own entries), read as superuser with row security off.
    static func tableFingerprints(_ postgres: TestServices.Postgres, database: String) async throws -> [String: String] {
        let connection = try await connect(postgres, database: database)
        try await connection.query("set row_security = off")
        let relations = try await connection.query("""
            select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p', 'm') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
              and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
            order by 1
            """).rows.compactMap { $0[0] }
        var result: [String: String] = [:]
        for relation in relations {
            result[relation] = try await connection.query(
                "select count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from only \(relation) t").scalar ?? ""
        }
        return result
    }

    /// Count, and an md5 over every large object's oid and contents.
    static func largeObjects(_ postgres: TestServices.Postgres, database: String) async throws -> String {
        try await connect(postgres, database: database).query("""
            select count(*)::text || ':' || coalesce(md5(string_agg(oid::text || '=' || md5(lo_get(oid)), '|' order by oid)), '')
            from pg_largeobject_metadata
            """).scalar ?? ""
    }

    /// `pg_dump --schema-only --no-owner`, without comment lines and the `\restrict` lines
    /// (random tokens in newer pg_dump versions).
    static func schemaText(_ postgres: TestServices.Postgres, database: String) async throws -> String {
        let dump = try await shell("\(postgres.binDirectory)/pg_dump", ["--schema-only", "--no-owner", "--dbname=\(conninfo(postgres, database: database))"])
        guard dump.status == 0 else { throw SetupFailure(message: "pg_dump --schema-only of \(database) failed: \(dump.stderr)") }
        return dump.stdout.split(separator: "\n", omittingEmptySubsequences: true)
            .filter { !$0.hasPrefix("--") && !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
            .joined(separator: "\n")
    }

    /// `diff -u` of two texts, for an expectation's message.
    static func diff(_ a: String, _ b: String, labels: (String, String)) async throws -> String {
        let directory = try temporaryDirectory("corner-diff")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try a.write(toFile: "\(directory)/a", atomically: true, encoding: .utf8)
        try b.write(toFile: "\(directory)/b", atomically: true, encoding: .utf8)
        let result = try await shell("diff", ["-u", "--label", labels.0, "--label", labels.1, "\(directory)/a", "\(directory)/b"])
        return result.stdout.split(separator: "\n").prefix(80).joined(separator: "\n")
    }

    /// What a database carries outside its dump's contents: owner, ACL, comment, settings.
    struct DatabaseProperties: Equatable, CustomStringConvertible {
        var owner: String
        var acl: String
        var comment: String
        /// Role name (or `(all roles)`) → setconfig, from pg_db_role_setting.
        var settings: [String: String]

        var description: String {
            "owner=\(owner) datacl=\(acl.isEmpty ? "(default)" : acl) comment=\(comment.isEmpty ? "(none)" : quoteLiteral(comment)) settings=\(settings.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" })"
        }
    }

    static func databaseProperties(_ postgres: TestServices.Postgres, database: String) async throws -> DatabaseProperties {
        let admin = try await connect(postgres)
        let row = try #require(try await admin.query("""
            select pg_get_userbyid(datdba), coalesce(datacl::text, ''), coalesce(shobj_description(oid, 'pg_database'), '')
            from pg_database where datname = $1
            """, [database]).rows.first, "no database \(database)")
        var settings: [String: String] = [:]
        for setting in try await admin.query("""
            select coalesce(r.rolname, '(all roles)'), s.setconfig::text from pg_db_role_setting s
            join pg_database d on d.oid = s.setdatabase left join pg_roles r on r.oid = s.setrole where d.datname = $1
            """, [database]).rows {
            settings[setting[0] ?? ""] = setting[1] ?? ""
        }
        return DatabaseProperties(owner: row[0] ?? "", acl: row[1] ?? "", comment: row[2] ?? "", settings: settings)
    }
}
