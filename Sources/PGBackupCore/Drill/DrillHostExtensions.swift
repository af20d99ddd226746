import Foundation
import PostgresClient

/// The extensions a backed-up database uses that the drill server cannot create. Restoring
/// without them fails on every object that needs them, which says nothing about the backup: the
/// drill says it cannot verify on this host, and names the package to install.
struct DrillHostExtensions {
    /// `pg_available_extensions` of the drill server.
    let available: Set<String>
    /// The drill server's major, for Debian's package names.
    let major: Int

    static func read(_ connection: PostgresConnection) async throws -> DrillHostExtensions {
        let names = try await connection.query("select name::text from pg_catalog.pg_available_extensions").rows.compactMap { $0[0] }
        return DrillHostExtensions(available: Set(names), major: connection.serverMajorVersion)
    }

    func missing(_ extensions: [String: String]) -> [String] {
        extensions.keys.filter { !available.contains($0) }.sorted()
    }

    /// The check a database gets when the host lacks some of its extensions.
    func unverifiable(_ missing: [String], versions: [String: String]) -> CheckResult {
        let named = missing.map { "\($0) (package \(Self.package(for: $0, major: major)))" }.joined(separator: ", ")
        return CheckResult(name: "extensions", passed: false,
                           summary: "cannot verify on this drill host: extension \(named) \(missing.count == 1 ? "is" : "are") not installed",
                           figures: ["missing_extensions": Int64(missing.count)],
                           evidence: missing.map { ["extension": $0, "version": versions[$0] ?? "", "package": Self.package(for: $0, major: major)] },
                           unverifiable: true)
    }

    /// Debian's (and PGDG's apt) package for an extension, as far as a name tells.
    static func package(for extensionName: String, major: Int) -> String {
        if contrib.contains(extensionName) { return "postgresql-\(major) (contrib)" }
        if extensionName.hasPrefix("postgis") || extensionName == "address_standardizer" { return "postgresql-\(major)-postgis-3" }
        let known: [String: String] = [
            "vector": "postgresql-\(major)-pgvector", "timescaledb": "timescaledb-2-postgresql-\(major)",
            "pg_partman": "postgresql-\(major)-partman", "pg_cron": "postgresql-\(major)-cron", "pgaudit": "postgresql-\(major)-pgaudit",
            "hypopg": "postgresql-\(major)-hypopg", "pg_repack": "postgresql-\(major)-repack", "orafce": "postgresql-\(major)-orafce",
            "pglogical": "postgresql-\(major)-pglogical", "plpython3u": "postgresql-plpython3-\(major)", "plperl": "postgresql-plperl-\(major)",
            "plperlu": "postgresql-plperl-\(major)", "pltcl": "postgresql-pltcl-\(major)", "pltclu": "postgresql-pltcl-\(major)",
        ]
        return known[extensionName] ?? "postgresql-\(major)-\(extensionName.replacingOccurrences(of: "_", with: "-"))"
    }

    /// The extensions PostgreSQL ships in contrib.
    static let contrib: Set<String> = [
        "adminpack", "amcheck", "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dblink", "dict_int", "dict_xsyn",
        "earthdistance", "file_fdw", "fuzzystrmatch", "hstore", "insert_username", "intagg", "intarray", "isn", "lo", "ltree",
        "moddatetime", "old_snapshot", "pageinspect", "pg_buffercache", "pg_freespacemap", "pg_prewarm", "pg_stat_statements",
        "pg_surgery", "pg_trgm", "pg_visibility", "pg_walinspect", "pgcrypto", "pgrowlocks", "pgstattuple", "postgres_fdw",
        "refint", "seg", "sslinfo", "tablefunc", "tcn", "tsm_system_rows", "tsm_system_time", "unaccent", "uuid-ossp", "xml2",
    ]
}
