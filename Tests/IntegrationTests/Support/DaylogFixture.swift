import Foundation
import Logging
import PostgresClient

/// A Daylog-shaped database made for one test: the real Django tables, foreign keys and an
/// EditorJS `content` column, with deterministic data.
struct DaylogFixture {
    let postgres: TestServices.Postgres
    let name: String

    static let schema = """
        create table auth_user (
            id serial primary key, username varchar(150) not null unique, email varchar(254) not null,
            date_joined timestamptz not null default now());
        create table journal_tag (
            id uuid primary key, user_id integer not null references auth_user(id) on delete cascade,
            name varchar(100) not null, created_at timestamptz not null default now(),
            constraint unique_user_tag unique (user_id, name));
        create table journal_journalentry (
            id uuid primary key, user_id integer not null references auth_user(id) on delete cascade,
            title varchar(255) not null, content jsonb not null, is_public boolean not null default false,
            created_at timestamptz not null default now(), updated_at timestamptz not null default now());
        create table journal_journalentry_tags (
            id bigserial primary key,
            journalentry_id uuid not null references journal_journalentry(id) on delete cascade,
            tag_id uuid not null references journal_tag(id) on delete cascade,
            unique (journalentry_id, tag_id));
        create index on journal_journalentry (user_id, created_at desc);
        """

    /// Creates the database with `entries` journal entries of roughly `bytesPerEntry` JSON each.
    static func create(_ postgres: TestServices.Postgres, entries: Int, bytesPerEntry: Int = 2000) async throws -> DaylogFixture {
        let name = "daylog_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test"))
        try await admin.query("create database \(name)")
        let db = try await PostgresConnection.connect(conninfo: postgres.conninfo(database: name), logger: Logger(label: "test"))
        try await db.query(schema)
        let users = max(entries / 100, 1)
        let words = max(bytesPerEntry / 8, 1)
        try await db.query("insert into auth_user (username, email) select 'user' || g, 'user' || g || '@example.com' from generate_series(1, \(users)) g")
        try await db.query("""
            insert into journal_tag (id, user_id, name)
            select md5('tag' || u || '-' || t)::uuid, u, 'tag-' || t from generate_series(1, \(users)) u, generate_series(1, 3) t
            """)
        try await db.query("""
            insert into journal_journalentry (id, user_id, title, content, is_public, created_at)
            select md5('entry' || g)::uuid, 1 + g % \(users), 'Entry ' || g,
              jsonb_build_object('time', 1700000000000 + g, 'version', '2.28.0', 'blocks', jsonb_build_array(
                jsonb_build_object('id', substr(md5(g::text), 1, 10), 'type', 'header', 'data', jsonb_build_object('text', 'Day ' || g, 'level', 2)),
                jsonb_build_object('id', substr(md5(g::text || 'p'), 1, 10), 'type', 'paragraph', 'data', jsonb_build_object('text',
                  (select string_agg((array['morning','coffee','walked','the','dog','river','quiet','thought','about','work','family','evening','read','wrote','slept','garden'])[1 + (g * 7 + w * 13) % 16], ' ')
                   from generate_series(1, \(words)) w))))),
              g % 5 = 0, timestamptz '2026-01-01' + g * interval '1 minute'
            from generate_series(1, \(entries)) g
            """)
        try await db.query("""
            insert into journal_journalentry_tags (journalentry_id, tag_id)
            select e.id, md5('tag' || e.user_id || '-' || (1 + abs(hashtext(e.id::text)) % 3))::uuid from journal_journalentry e
            """)
        return DaylogFixture(postgres: postgres, name: name)
    }

    /// Exact row count and an md5 over the sorted rows of every user table: equal checksums
    /// mean equal contents.
    func tableFingerprints(database: String? = nil) async throws -> [String: String] {
        let db = try await PostgresConnection.connect(conninfo: postgres.conninfo(database: database ?? name), logger: Logger(label: "test"))
        var result: [String: String] = [:]
        for table in ["auth_user", "journal_tag", "journal_journalentry", "journal_journalentry_tags"] {
            let row = try await db.query("select count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from \(table) t").scalar
            result["public.\(table)"] = row ?? ""
        }
        return result
    }

    func rowCounts(database: String? = nil) async throws -> [String: Int64] {
        try await tableFingerprints(database: database).mapValues { Int64($0.split(separator: ":")[0])! }
    }

    func execute(_ sql: String) async throws {
        let db = try await PostgresConnection.connect(conninfo: postgres.conninfo(database: name), logger: Logger(label: "test"))
        try await db.query(sql)
    }

    func drop() async {
        guard let admin = try? await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test")) else { return }
        _ = try? await admin.query("drop database if exists \(name) with (force)")
    }

    /// A fresh empty database, e.g. to restore into.
    static func emptyDatabase(_ postgres: TestServices.Postgres) async throws -> String {
        let name = "restore_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test"))
        try await admin.query("create database \(name)")
        return name
    }

    static func dropDatabase(_ postgres: TestServices.Postgres, _ name: String) async {
        guard let admin = try? await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test")) else { return }
        _ = try? await admin.query("drop database if exists \(name) with (force)")
    }
}
