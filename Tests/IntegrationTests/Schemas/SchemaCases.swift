import Foundation
import Testing

/// A row the faulty variant of a schema must show in the drill's referential evidence.
struct ExpectedOrphan: Sendable, CustomStringConvertible {
    var constraint: String
    /// The row's primary key as the report renders it (`concat_ws(', ', …)`); nil for a table
    /// without a primary key, whose rows the report can only show by `ctid`.
    var row: String?
    /// The dangling key as rendered; nil when it holds a NULL (MATCH FULL, partly NULL), which
    /// the rendering drops, so only the constraint and the row are required.
    var danglingKey: String?

    var description: String { "\(constraint) row=\(row ?? "(ctid)") dangling_key=\(danglingKey ?? "(partly NULL)")" }
}

/// A row the faulty variant must show in the content-size evidence.
struct ExpectedOversize: Sendable, CustomStringConvertible {
    /// The start of the evidence's `rule`: `<schema>.<table>.<column>`.
    var rule: String
    var row: String

    var description: String { "\(rule) row=\(row)" }
}

/// One schema of the corner-case suite: the SQL that builds it in a database of its own, the
/// faults injected into its faulty variant, and what the drill must name for them.
///
/// In all SQL, `{db}` is the database's quoted identifier and `{role}` a role made for the test.
struct SchemaCase: Sendable, CustomTestStringConvertible {
    var id: String
    /// The database name without the random suffix a run adds.
    var databaseStem: String
    /// Whether `{role}` is used (a login role is created and dropped after the databases).
    var needsRole = false
    /// Run as superuser on the maintenance database right after the database is created.
    var adminSQL = ""
    /// Run in the database, each element in a new session (so settings made by `adminSQL` or an
    /// earlier session apply, as they would for an application connecting).
    var setupSQL: [String]
    /// Run in the database with `session_replication_role = replica` (no FK triggers).
    var faultSQL: String
    var orphans: [ExpectedOrphan] = []
    var oversize: [ExpectedOversize] = []
    /// `[[checks.content_size]]` rules (and other TOML) for the configuration.
    var checksTOML = ""

    var testDescription: String { id }

    static let all: [SchemaCase] = [
        partitioned, keys, inheritance, typesAndExtensions, quotedNames, databaseSearchPath, roleSearchPath, rowLevelSecurity,
    ]

    // MARK: - Partitioned tables as FK sources and targets

    static let partitioned = SchemaCase(
        id: "partitioned FKs (range, list, hash, two-level, FK to one partition)",
        databaseStem: "corner_part",
        setupSQL: ["""
            create table region (code text primary key) partition by list (code);
            create table region_eu partition of region for values in ('de', 'fr');
            create table region_am partition of region for values in ('us', 'ca');
            create table customer (id int primary key, region text not null constraint customer_region_fkey references region (code)) partition by hash (id);
            create table customer_h0 partition of customer for values with (modulus 2, remainder 0);
            create table customer_h1 partition of customer for values with (modulus 2, remainder 1);
            create table orders (id int, placed date not null, customer_id int not null constraint orders_customer_id_fkey references customer (id),
              memo text, primary key (id, placed)) partition by range (placed);
            create table orders_2025 partition of orders for values from ('2025-01-01') to ('2026-01-01');
            create table orders_2026 partition of orders for values from ('2026-01-01') to ('2027-01-01');
            create table event (id int, kind text, at date, primary key (id, kind, at)) partition by list (kind);
            create table event_click partition of event for values in ('click') partition by range (at);
            create table event_click_2025 partition of event_click for values from ('2025-01-01') to ('2026-01-01');
            create table event_click_2026 partition of event_click for values from ('2026-01-01') to ('2027-01-01');
            create table event_view partition of event for values in ('view');
            create table event_note (id int primary key, event_id int not null, event_kind text not null, event_at date not null,
              constraint event_note_event_fkey foreign key (event_id, event_kind, event_at) references event (id, kind, at));
            create table eu_office (id int primary key, region text not null constraint eu_office_region_fkey references region_eu (code));
            insert into region values ('de'), ('fr'), ('us'), ('ca');
            insert into customer select g, (array['de', 'fr', 'us', 'ca'])[1 + g % 4] from generate_series(1, 8) g;
            insert into orders select g, date '2025-06-01' + g * 30, 1 + g % 8 from generate_series(1, 10) g;
            insert into event values (1, 'click', '2025-03-01'), (2, 'click', '2026-03-01'), (3, 'view', '2026-04-01');
            insert into event_note values (1, 1, 'click', '2025-03-01'), (2, 2, 'click', '2026-03-01'), (3, 3, 'view', '2026-04-01');
            insert into eu_office values (1, 'de'), (2, 'fr');
            """],
        faultSQL: """
            insert into orders values (101, '2026-05-01', 999);
            insert into customer values (100, 'xx');
            insert into event_note values (100, 2, 'click', '2025-03-01');
            insert into eu_office values (100, 'us');
            update orders set memo = repeat('m', 300) where id = 3;
            """,
        orphans: [
            ExpectedOrphan(constraint: "orders_customer_id_fkey", row: "101, 2026-05-01", danglingKey: "999"),
            ExpectedOrphan(constraint: "customer_region_fkey", row: "100", danglingKey: "xx"),
            ExpectedOrphan(constraint: "event_note_event_fkey", row: "100", danglingKey: "2, click, 2025-03-01"),
            // 'us' is in region, but not in the partition region_eu the FK points at.
            ExpectedOrphan(constraint: "eu_office_region_fkey", row: "100", danglingKey: "us"),
        ],
        oversize: [ExpectedOversize(rule: "public.orders.memo", row: "3, 2025-08-30")],
        checksTOML: """
            [[checks.content_size]]
            table = "public.orders"
            column = "memo"
            max_bytes = 64
            measure = "octet_length"
            """)

    // MARK: - Composite, self-referencing, MATCH FULL/SIMPLE, deferrable, no primary key

    static let keys = SchemaCase(
        id: "composite, self-referencing, MATCH FULL/SIMPLE, deferred FKs, table without primary key",
        databaseStem: "corner_keys",
        setupSQL: ["""
            create table warehouse (site text, code int, primary key (site, code));
            create table bin (id int primary key, site text, code int,
              constraint bin_warehouse_fkey foreign key (site, code) references warehouse match simple);
            create table bin_full (id int primary key, site text, code int,
              constraint bin_full_warehouse_fkey foreign key (site, code) references warehouse match full);
            create table employee (id int primary key, manager_id int constraint employee_manager_id_fkey references employee (id), name text not null);
            create table shipment (id int primary key, next_id int,
              constraint shipment_next_fkey foreign key (next_id) references shipment (id) deferrable initially deferred);
            create table audit_log (at timestamptz not null, site text, code int, note text,
              constraint audit_log_warehouse_fkey foreign key (site, code) references warehouse);
            insert into warehouse values ('north', 1), ('north', 2), ('south', 1);
            -- MATCH SIMPLE: any NULL in the key exempts the row, whatever the other column says.
            insert into bin values (1, 'north', 1), (2, 'south', 1), (3, 'north', null), (4, 'nowhere', null), (5, null, null);
            -- MATCH FULL: all NULL is legal, partly NULL is not.
            insert into bin_full values (1, 'north', 2), (2, null, null);
            insert into employee values (1, null, 'boss'), (2, 1, 'lead'), (3, 2, 'dev'), (4, 2, 'dev');
            begin;
            insert into shipment values (1, 2);
            insert into shipment values (2, 3);
            insert into shipment values (3, 1);
            commit;
            insert into audit_log values ('2026-01-01', 'north', 1, 'a'), ('2026-01-02', 'south', 1, 'b'), ('2026-01-03', null, 7, 'partly NULL, legal');
            """],
        faultSQL: """
            insert into bin values (100, 'nowhere', 9);
            insert into bin_full values (100, 'north', null);
            insert into bin_full values (101, 'nowhere', 1);
            insert into employee values (100, 999, 'ghost');
            insert into shipment values (100, 999);
            insert into audit_log values ('2026-02-01', 'nowhere', 5, 'orphan without a primary key');
            update employee set name = repeat('x', 100) where id = 4;
            """,
        orphans: [
            ExpectedOrphan(constraint: "bin_warehouse_fkey", row: "100", danglingKey: "nowhere, 9"),
            ExpectedOrphan(constraint: "bin_full_warehouse_fkey", row: "100", danglingKey: nil),
            ExpectedOrphan(constraint: "bin_full_warehouse_fkey", row: "101", danglingKey: "nowhere, 1"),
            ExpectedOrphan(constraint: "employee_manager_id_fkey", row: "100", danglingKey: "999"),
            ExpectedOrphan(constraint: "shipment_next_fkey", row: "100", danglingKey: "999"),
            ExpectedOrphan(constraint: "audit_log_warehouse_fkey", row: nil, danglingKey: "nowhere, 5"),
        ],
        oversize: [ExpectedOversize(rule: "public.employee.name", row: "4")],
        checksTOML: """
            [[checks.content_size]]
            table = "public.employee"
            column = "name"
            max_bytes = 64
            measure = "octet_length"
            """)

    // MARK: - Table inheritance

    static let inheritance = SchemaCase(
        id: "table inheritance (FK on and to an inheritance parent)",
        databaseStem: "corner_inherit",
        setupSQL: ["""
            create table person (id int primary key, name text not null);
            create table vehicle (id int primary key, owner_id int constraint vehicle_owner_fkey references person (id), plate text);
            create table car (doors int not null default 4) inherits (vehicle);
            alter table car add primary key (id);
            create table vehicle_note (id int primary key, vehicle_id int not null constraint vehicle_note_vehicle_fkey references vehicle (id), note text);
            insert into person values (1, 'ann'), (2, 'bob');
            insert into vehicle values (1, 1, 'V-1'), (2, 2, 'V-2');
            -- A parent's FK is not inherited: owner 77 exists nowhere, and that is legal in car.
            insert into car values (10, 1, 'C-10', 3), (11, 77, 'C-11', 5);
            insert into vehicle_note values (1, 1, 'ok'), (2, 2, 'ok');
            """],
        faultSQL: """
            insert into vehicle values (100, 999, 'V-100');
            -- 10 is a car: a row of the child only, which the FK (to ONLY vehicle) does not see.
            insert into vehicle_note values (100, 10, 'refers to a row of the child table');
            insert into vehicle_note values (101, 555, 'plain orphan');
            update vehicle set plate = repeat('P', 40) where id = 2;
            """,
        orphans: [
            ExpectedOrphan(constraint: "vehicle_owner_fkey", row: "100", danglingKey: "999"),
            ExpectedOrphan(constraint: "vehicle_note_vehicle_fkey", row: "100", danglingKey: "10"),
            ExpectedOrphan(constraint: "vehicle_note_vehicle_fkey", row: "101", danglingKey: "555"),
        ],
        oversize: [ExpectedOversize(rule: "public.vehicle.plate", row: "2")],
        checksTOML: """
            [[checks.content_size]]
            table = "public.vehicle"
            column = "plate"
            max_bytes = 16
            measure = "octet_length"
            """)

    // MARK: - Unlogged, materialized view, generated columns, domains, enums, large objects, extensions

    static let typesAndExtensions = SchemaCase(
        id: "unlogged, materialized view, generated columns, domains, enums, large objects, citext/hstore/pgcrypto",
        databaseStem: "corner_types",
        setupSQL: ["""
            create extension citext;
            create extension hstore;
            create extension pgcrypto;
            create type mood as enum ('sad', 'ok', 'happy');
            create domain email as citext check (value ~ '^[^@]+@[^@]+$');
            create domain positive_int as int check (value > 0);
            create table account (
              id uuid primary key default gen_random_uuid(),
              mail email not null unique,
              mood mood not null default 'ok',
              attrs hstore not null default '',
              secret_hash text not null default crypt('secret', gen_salt('bf', 4)),
              mail_digest bytea generated always as (digest(mail::text, 'sha256')) stored,
              name text not null,
              name_upper text generated always as (upper(name)) stored,
              visits positive_int not null default 1,
              avatar oid);
            create unlogged table session_cache (
              token text primary key default encode(gen_random_bytes(8), 'hex'),
              account_id uuid not null constraint session_cache_account_fkey references account (id),
              attrs hstore);
            create materialized view mood_count as select mood, count(*) as n from account group by mood;
            insert into account (id, mail, mood, attrs, name, visits, avatar) values
              ('00000000-0000-0000-0000-000000000001', 'Ann@Example.com', 'happy', 'a=>1, b=>2', 'Ann', 3, lo_from_bytea(0, 'avatar of ann')),
              ('00000000-0000-0000-0000-000000000002', 'bob@example.com', 'sad', '', 'Bob', 1, lo_from_bytea(0, '\\x00ff10'::bytea)),
              ('00000000-0000-0000-0000-000000000003', 'cy@example.com', 'ok', 'k=>"v w"', 'Cy', 2, null);
            select lo_from_bytea(0, 'a large object no row refers to');
            insert into session_cache (token, account_id, attrs) values
              ('t1', '00000000-0000-0000-0000-000000000001', 'x=>y'), ('t2', '00000000-0000-0000-0000-000000000002', null);
            insert into session_cache (account_id) values ('00000000-0000-0000-0000-000000000003');
            refresh materialized view mood_count;
            """],
        faultSQL: """
            insert into session_cache (token, account_id) values ('orphan', '00000000-0000-0000-0000-0000000000ff');
            update account set name = repeat('N', 300) where id = '00000000-0000-0000-0000-000000000002';
            update account set attrs = hstore('big', repeat('x', 300)) where id = '00000000-0000-0000-0000-000000000003';
            """,
        orphans: [
            ExpectedOrphan(constraint: "session_cache_account_fkey", row: "orphan", danglingKey: "00000000-0000-0000-0000-0000000000ff"),
        ],
        oversize: [
            ExpectedOversize(rule: "public.account.name", row: "00000000-0000-0000-0000-000000000002"),
            ExpectedOversize(rule: "public.account.attrs", row: "00000000-0000-0000-0000-000000000003"),
        ],
        checksTOML: """
            [[checks.content_size]]
            table = "public.account"
            column = "name"
            max_bytes = 64
            measure = "octet_length"

            [[checks.content_size]]
            table = "public.account"
            column = "attrs"
            max_bytes = 200
            measure = "octet_length"
            """)

    // MARK: - Quoted, mixed-case, unicode names; a database name with a space, capitals, Ü and quotes

    static let quotedNames = SchemaCase(
        id: "quoted mixed-case/unicode/space names, database named Daylog Ü \"x\"",
        databaseStem: "Daylog Ü \"x\" '",
        needsRole: true,
        adminSQL: """
            alter database {db} owner to {role};
            comment on database {db} is 'Daylog''s database, with ümlauts';
            revoke all on database {db} from public;
            grant connect, temporary on database {db} to {role};
            """,
        setupSQL: [#"""
            create schema "Mixed Case";
            create schema "ünï côdé";
            create table "Mixed Case"."Parent Table" ("Id Col" int primary key, "Ümlaut Text" text not null);
            create table "ünï côdé"."Child ""quoted"" Table" ("Row Id" int primary key, "Parent Ref" int, "naïve" text,
              constraint "FK Ü ""q""" foreign key ("Parent Ref") references "Mixed Case"."Parent Table" ("Id Col"));
            create table "Mixed Case"."lower and UPPER" ("K" text primary key, "Parent Ref" int references "Mixed Case"."Parent Table");
            comment on table "Mixed Case"."Parent Table" is 'Kommentar: Größe';
            insert into "Mixed Case"."Parent Table" values (1, 'eins'), (2, 'zwei'), (3, 'drei ü');
            insert into "ünï côdé"."Child ""quoted"" Table" values (1, 1, 'café'), (2, 3, null), (3, null, 'no parent');
            insert into "Mixed Case"."lower and UPPER" values ('a b', 1), ('Ä', 2);
            """#],
        faultSQL: """
            insert into "ünï côdé"."Child ""quoted"" Table" values (100, 99, 'orphan');
            update "Mixed Case"."Parent Table" set "Ümlaut Text" = repeat('ü', 100) where "Id Col" = 2;
            """,
        orphans: [ExpectedOrphan(constraint: "FK Ü \"q\"", row: "100", danglingKey: "99")],
        oversize: [ExpectedOversize(rule: "Mixed Case.Parent Table.Ümlaut Text", row: "2")],
        checksTOML: """
            [[checks.content_size]]
            table = "Mixed Case.Parent Table"
            column = "Ümlaut Text"
            max_bytes = 64
            measure = "octet_length"
            """)

    // MARK: - search_path set on the database, or on the role in the database

    static let searchPathSetup = [
        "create schema app",
        """
        create table parent (id int primary key, name text);
        create table child (id int primary key, parent_id int constraint child_parent_fkey references parent (id));
        create table public.note (id int primary key, child_id int constraint note_child_fkey references child (id));
        insert into parent values (1, 'a'), (2, 'b');
        insert into child values (1, 1), (2, 2), (3, null);
        insert into note values (1, 1), (2, 3);
        -- The unqualified tables went into app; this fails otherwise.
        select 'app.parent'::regclass, 'app.child'::regclass;
        """,
    ]

    static let searchPathFaults = """
        insert into child values (100, 999);
        insert into note values (100, 999);
        update parent set name = repeat('n', 40) where id = 2;
        """

    static let searchPathOversize = [ExpectedOversize(rule: "app.parent.name", row: "2")]

    static let searchPathChecks = """
        [[checks.content_size]]
        table = "app.parent"
        column = "name"
        max_bytes = 16
        measure = "octet_length"
        """

    static let searchPathOrphans = [
        ExpectedOrphan(constraint: "child_parent_fkey", row: "100", danglingKey: "999"),
        ExpectedOrphan(constraint: "note_child_fkey", row: "100", danglingKey: "999"),
    ]

    static let databaseSearchPath = SchemaCase(
        id: "ALTER DATABASE SET search_path = app, public; unqualified FKs in app",
        databaseStem: "corner_dbpath",
        needsRole: true,
        adminSQL: """
            alter database {db} set search_path = app, public;
            comment on database {db} is 'search_path set on the database';
            grant connect on database {db} to {role};
            """,
        setupSQL: searchPathSetup, faultSQL: searchPathFaults, orphans: searchPathOrphans, oversize: searchPathOversize, checksTOML: searchPathChecks)

    static let roleSearchPath = SchemaCase(
        id: "ALTER ROLE IN DATABASE SET search_path = app, public (the backup's own role and another); unqualified FKs in app",
        databaseStem: "corner_rolepath",
        needsRole: true,
        adminSQL: """
            alter role current_user in database {db} set search_path = app, public;
            alter role {role} in database {db} set search_path = app, "$user";
            """,
        setupSQL: searchPathSetup, faultSQL: searchPathFaults, orphans: searchPathOrphans, oversize: searchPathOversize, checksTOML: searchPathChecks)

    // MARK: - Row-level security, forced on the owner

    static let rowLevelSecurity = SchemaCase(
        id: "FORCE ROW LEVEL SECURITY with policies hiding rows from the owner",
        databaseStem: "corner_rls",
        needsRole: true,
        setupSQL: ["""
            create table tenant (id int primary key, name text not null, visible boolean not null default true);
            create table document (id int primary key, tenant_id int not null constraint document_tenant_fkey references tenant (id),
              body text, hidden boolean not null default false);
            insert into tenant values (1, 'shown', true), (2, 'hidden', false);
            insert into document values (1, 1, 'a', false), (2, 2, 'b', true), (3, 2, 'c', true);
            alter table tenant owner to {role};
            alter table document owner to {role};
            alter table tenant enable row level security;
            alter table tenant force row level security;
            alter table document enable row level security;
            alter table document force row level security;
            create policy tenant_visible on tenant using (visible);
            create policy document_shown on document using (not hidden and tenant_id in (select id from tenant));
            """,
            """
            -- The owner sees only what the policies let through: 1 of 2 tenants, 1 of 3 documents.
            set role {role};
            do $$ begin
              if (select count(*) from tenant) <> 1 or (select count(*) from document) <> 1 then
                raise exception 'FORCE ROW LEVEL SECURITY does not hide rows from the owner';
              end if;
            end $$;
            reset role;
            """,
        ],
        faultSQL: """
            insert into document values (100, 999, 'a hidden orphan', true);
            insert into tenant values (100, 'hidden but fine', false);
            update document set body = repeat('b', 40) where id = 2;
            """,
        orphans: [ExpectedOrphan(constraint: "document_tenant_fkey", row: "100", danglingKey: "999")],
        oversize: [ExpectedOversize(rule: "public.document.body", row: "2")],
        checksTOML: """
            [[checks.content_size]]
            table = "public.document"
            column = "body"
            max_bytes = 16
            measure = "octet_length"
            """)
}
