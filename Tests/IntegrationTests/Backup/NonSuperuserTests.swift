import Foundation
import Logging
import PostgresClient
import Testing

/// The deployment many operators run: the databases belong to a role that is not a superuser,
/// which logs in with a password from PGPASSFILE. Backup, drill and restore work as that role,
/// and `check` predicts `backup` both ways: ok when it will succeed, the same refusal (exit 77,
/// naming the grant) when it will not.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct NonSuperuserTests {
    struct Run {
        let config: String
        let environment: [String: String]

        func pgbackd(_ arguments: [String], passfile: String? = nil) async throws -> (status: Int32, stdout: String, stderr: String) {
            var environment = environment
            if let passfile { environment["PGPASSFILE"] = passfile }
            return try await shell(pgbackdExecutable, arguments + ["--config", config], environment: environment)
        }
    }

    @Test func anOwnerRoleBacksUpDrillsAndRestoresAndCheckPredictsBackup() async throws {
        let postgres = try TestServices.requirePostgres()
        let role = try await PasswordRole.create(postgres, attributes: "createdb")
        do {
            try await withCleanup(postgres) { cleanup in
                let database = "owned_\(UUID().uuidString.prefix(8).lowercased())"
                cleanup.dropDatabase(database)
                cleanup.dropDatabase("\(database)_restored")
                let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: Logger(label: "test"))
                try await admin.query("create database \(database) owner \(role.name)")
                try await admin.query("alter database \(database) set search_path = app, public")
                try await admin.query("comment on database \(database) is 'owned by a role without superuser'")
                // A setting of another role, which only a superuser may make again.
                try await admin.query("alter role \(postgres.user) in database \(database) set work_mem = '8MB'")
                // Everything inside is created by the owner role itself, as an application's migrations do.
                let owner = try await PostgresConnection.connect(conninfo: role.conninfo(database: database), logger: Logger(label: "test"))
                try await owner.query("""
                    create schema app;
                    create table app.account (id int primary key, name text not null);
                    create table app.entry (id int primary key, account_id int not null references account(id), body text) partition by range (id);
                    create table app.entry_1 partition of app.entry for values from (0) to (100);
                    create table app.entry_2 partition of app.entry for values from (100) to (200);
                    insert into app.account select g, 'account ' || g from generate_series(1, 10) g;
                    insert into app.entry select g, 1 + g % 10, repeat('x', g) from generate_series(1, 150) g;
                    select lo_from_bytea(0, 'a large object of the owner');
                    """)

                let directory = try temporaryDirectory("nonsuperuser")
                cleanup.remove(directory)
                let config = "\(directory)/pgbackd.toml"
                try """
                    [repository]
                    path = "\(directory)/repo"
                    stanza = "owned"
                    [postgres]
                    conninfo = "host=\(postgres.host) port=\(postgres.port) user=\(role.name) dbname=postgres"
                    databases = ["\(database)"]
                    bin_dir = "\(postgres.binDirectory)"
                    [drill]
                    staging_dir = "\(directory)"
                    \(TestServices.encryptionTOML)
                    """.write(toFile: config, atomically: true, encoding: .utf8)
                let run = Run(config: config, environment: ["PGPASSFILE": try role.passfile(in: directory)])

                // check agrees with backup: ok, then a backup that works.
                let check = try await run.pgbackd(["check"])
                #expect(check.status == 0, "check: \(check.stdout) \(check.stderr)")
                #expect(check.stdout.contains("ok   privileges: role \(role.name) can read every table"), "\(check.stdout)")
                #expect(check.stdout.contains("WITHOUT passwords"), "\(check.stdout)")
                let backup = try await run.pgbackd(["backup", "--json"])
                try #require(backup.status == 0, "backup as \(role.name): \(backup.stderr)")
                let show = try await run.pgbackd(["show", "latest"])
                #expect(show.stdout.contains("roles WITHOUT passwords"), "\(show.stdout)")
                let manifest = try await run.pgbackd(["show", "latest", "--json"])
                #expect(manifest.stdout.contains("\"role_passwords\" : false"), "\(manifest.stdout)")
                #expect(!backup.stderr.contains(role.password) && !check.stdout.contains(role.password))

                let drill = try await run.pgbackd(["drill", "latest"])
                #expect(drill.status == 0, "drill as \(role.name): \(drill.stdout) \(drill.stderr)")
                #expect(drill.stdout.contains("roles without passwords"), "\(drill.stdout)")
                #expect(drill.stdout.contains("not applied, the drill role may not: alter role \(postgres.user) in database"), "\(drill.stdout)")

                let restore = try await run.pgbackd(["restore", "latest", "--database", database, "--target-db", "\(database)_restored"])
                #expect(restore.status == 0, "restore as \(role.name): \(restore.stderr)")
                #expect(restore.stdout.contains("not restored: alter role \(postgres.user) in database"), "\(restore.stdout)")
                let restored = try await admin.query("""
                    select pg_get_userbyid(datdba)::text || '|' || coalesce(shobj_description(oid, 'pg_database'), '') || '|' ||
                      coalesce((select array_to_string(setconfig, ';') from pg_db_role_setting where setdatabase = d.oid and setrole = 0), '')
                    from pg_database d where datname = $1
                    """, ["\(database)_restored"]).scalar
                #expect(restored == "\(role.name)|owned by a role without superuser|search_path=app, public")

                // A table the role may not read: check refuses exactly as backup does, exit 77, naming the grant.
                try await PostgresConnection.connect(conninfo: postgres.conninfo(database: database), logger: Logger(label: "test"))
                    .query("create table public.audit_log (id int primary key); insert into public.audit_log values (1)")
                let refusedCheck = try await run.pgbackd(["check"])
                #expect(refusedCheck.status == 77, "check: \(refusedCheck.stdout)")
                #expect(refusedCheck.stdout.contains("FAIL privileges") && refusedCheck.stdout.contains("public.audit_log") && refusedCheck.stdout.contains("GRANT"), "\(refusedCheck.stdout)")
                let refusedBackup = try await run.pgbackd(["backup"])
                #expect(refusedBackup.status == 77, "backup: \(refusedBackup.stderr)")
                #expect(refusedBackup.stderr.contains("public.audit_log") && refusedBackup.stderr.contains("GRANT"), "\(refusedBackup.stderr)")
                let list = try await run.pgbackd(["list", "--json"])
                #expect(list.stdout.components(separatedBy: "\"backup_id\"").count == 2, "a refused backup stores nothing: \(list.stdout)")

                // FORCE ROW LEVEL SECURITY on the role's own table: pg_dump would refuse; so do both.
                try await PostgresConnection.connect(conninfo: postgres.conninfo(database: database), logger: Logger(label: "test"))
                    .query("grant select on public.audit_log to \(role.name)")
                try await owner.query("alter table app.account enable row level security; alter table app.account force row level security; create policy mine on app.account using (id < 5)")
                let rlsCheck = try await run.pgbackd(["check"])
                #expect(rlsCheck.status == 77 && rlsCheck.stdout.contains("BYPASSRLS") && rlsCheck.stdout.contains("app.account"), "\(rlsCheck.stdout)")
                let rlsBackup = try await run.pgbackd(["backup"])
                #expect(rlsBackup.status == 77 && rlsBackup.stderr.contains("BYPASSRLS"), "\(rlsBackup.stderr)")

                // And back: once it is fixed, check says ok and backup succeeds.
                try await owner.query("alter table app.account no force row level security")
                let fixedCheck = try await run.pgbackd(["check"])
                #expect(fixedCheck.status == 0, "\(fixedCheck.stdout)")
                let fixedBackup = try await run.pgbackd(["backup"])
                #expect(fixedBackup.status == 0, "\(fixedBackup.stderr)")

                // A wrong password is refused credentials (77), not an unreachable server (69).
                let wrong = try role.passfile(in: directory, password: "not-the-password")
                for command in ["check", "backup"] {
                    let result = try await run.pgbackd([command], passfile: wrong)
                    #expect(result.status == 77, "\(command) with a wrong password: \(result.stdout) \(result.stderr)")
                    #expect((result.stdout + result.stderr).contains("password authentication failed"), "\(result.stdout) \(result.stderr)")
                    #expect(!(result.stdout + result.stderr).contains("not-the-password"))
                }
            }
        } catch {
            await role.drop()
            throw error
        }
        await role.drop()
    }
}
