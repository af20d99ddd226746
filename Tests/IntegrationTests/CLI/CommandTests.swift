import Foundation
import Testing

/// The commands end to end through the executable, against the real test PostgreSQL.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct CommandTests {
    func fileConfig(_ postgres: TestServices.Postgres, repository: String, databases: [String], binDirectory: String? = nil) -> String {
        """
        [repository]
        path = "\(repository)"
        stanza = "cli"
        [postgres]
        conninfo = "\(postgres.conninfo())"
        databases = [\(databases.map { "\"\($0)\"" }.joined(separator: ", "))]
        bin_dir = "\(binDirectory ?? postgres.binDirectory)"
        \(TestServices.encryptionTOML)
        """
    }

    @Test func checkBackupListShow() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 200)
            cleanup.dropDatabase(fixture.name)
            let directory = try temporaryDirectory("cmd")
            cleanup.remove(directory)
            let config = "\(directory)/pgbackd.toml"
            try fileConfig(postgres, repository: "\(directory)/repo", databases: [fixture.name]).write(toFile: config, atomically: true, encoding: .utf8)

            let check = try await shell(pgbackdExecutable, ["check", "--config", config])
            #expect(check.status == 0, "check failed: \(check.stdout) \(check.stderr)")
            #expect(check.stdout.contains("ok   repository"))
            #expect(check.stdout.contains("ok   pg_dump"))

            let backup = try await shell(pgbackdExecutable, ["backup", "--config", config, "--json"])
            #expect(backup.status == 0, "\(backup.stderr)")
            let summary = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
            let id = try #require(summary?["backup_id"] as? String)
            #expect(summary?["databases"] as? [String] == [fixture.name])

            let list = try await shell(pgbackdExecutable, ["list", "--config", config])
            #expect(list.stdout.contains(id))
            let show = try await shell(pgbackdExecutable, ["show", "latest", "--json", "--config", config])
            let manifest = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any]
            #expect(manifest?["backup_id"] as? String == id)
            let counts = ((manifest?["databases"] as? [[String: Any]])?.first?["row_counts"] as? [String: Int])
            #expect(counts?["public.journal_journalentry"] == 200)
        }
    }

    @Test func checkReportsAnUnwritableRepositoryWithItsFix() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let directory = try temporaryDirectory("cmd")
            cleanup.remove(directory)
            let config = "\(directory)/pgbackd.toml"
            try fileConfig(postgres, repository: "/proc/pgbackd-repo", databases: ["postgres"]).write(toFile: config, atomically: true, encoding: .utf8)
            let check = try await shell(pgbackdExecutable, ["check", "--config", config])
            #expect(check.status == 74)
            #expect(check.stdout.contains("ok   database"))
            #expect(check.stdout.contains("FAIL repository: file repository /proc/pgbackd-repo"))
        }
    }

    @Test func sigtermStopsTheBackupCleanly() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 2000)
            cleanup.dropDatabase(fixture.name)
            let directory = try temporaryDirectory("cmd")
            cleanup.remove(directory)
            // pg_dump writes a little, then stalls: the backup is mid-upload when SIGTERM arrives.
            let bin = try BackupHarness.wrappedPgDump(postgres, script: "\"$REAL\" \"$@\" | { head -c 500000; sleep 60; cat; }")
            cleanup.remove(bin)
            let config = "\(directory)/pgbackd.toml"
            try fileConfig(postgres, repository: "\(directory)/repo", databases: [fixture.name], binDirectory: bin).write(toFile: config, atomically: true, encoding: .utf8)

            let stderr = Pipe()
            let process = try launchPgbackd(["backup", "--config", config], stderr: stderr)
            let uploading = try await eventually {
                !(try await shell("find", ["\(directory)/repo", "-name", ".pgbackd-tmp-*dump.gz\(TestServices.objectSuffix)"]).stdout.isEmpty)
            }
            #expect(uploading, "the dump upload should have started")
            let signalled = Date()
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            #expect(Date().timeIntervalSince(signalled) < 15, "SIGTERM must stop the backup promptly")
            #expect(process.terminationStatus != 0)
            let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(message.contains("interrupted"), "\(message)")
            let leftovers = try await shell("find", ["\(directory)/repo/cli/backups", "-type", "f"]).stdout
            #expect(leftovers.isEmpty, "an interrupted backup leaves nothing: \(leftovers)")
            let children = try await shell("pgrep", ["-f", "\(bin)/pg_dump"])
            #expect(children.stdout.isEmpty, "pg_dump must not outlive pgbackd")
        }
    }

    @Test func jobOutcomesReachTheAlertHooks() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 300)
            cleanup.dropDatabase(fixture.name)
            let directory = try temporaryDirectory("alerts")
            cleanup.remove(directory)
            let hook = "\(directory)/hook.sh"
            try "#!/bin/bash\ncat > \"\(directory)/$PGBACKD_EVENT.json\"\n".write(toFile: hook, atomically: true, encoding: .utf8)
            chmod(hook, 0o755)
            let config = "\(directory)/pgbackd.toml"
            try (fileConfig(postgres, repository: "\(directory)/repo", databases: [fixture.name]) + """

                [drill]
                staging_dir = "\(directory)"

                [[alerts.command]]
                events = ["backup.succeeded", "drill.failed"]
                run = ["\(hook)"]
                timeout_seconds = 10
                """).write(toFile: config, atomically: true, encoding: .utf8)

            let backup = try await shell(pgbackdExecutable, ["backup", "--config", config])
            #expect(backup.status == 0, "\(backup.stderr)")
            let succeeded = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(directory)/backup.succeeded.json"))) as? [String: Any]
            #expect(succeeded?["backup_id"] as? String == backup.stdout.trimmingCharacters(in: .whitespacesAndNewlines))

            try await fixture.execute("set session_replication_role = replica; insert into journal_journalentry_tags (journalentry_id, tag_id) values (md5('entry1')::uuid, '00000000-0000-0000-0000-000000000bad')")
            #expect(try await shell(pgbackdExecutable, ["backup", "--config", config]).status == 0)
            let drill = try await shell(pgbackdExecutable, ["drill", "--config", config])
            #expect(drill.status == 1, "a failed check exits 1: \(drill.stdout) \(drill.stderr)")
            let failed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(directory)/drill.failed.json"))) as? [String: Any]
            #expect(failed?["event"] as? String == "drill.failed")
            let checks = (failed?["failed_checks"] as? [[String: Any]])?.compactMap { $0["check"] as? String } ?? []
            #expect(checks.contains("referential"))
            #expect((failed?["report_key"] as? String)?.hasPrefix("cli/drills/") == true)
        }
    }
}
