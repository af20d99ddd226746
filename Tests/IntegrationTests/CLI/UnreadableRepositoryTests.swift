import Foundation
import Testing

/// A file repository pgbackd may not read (owned by another user, 0750/0640) is a permission
/// error in every command, naming the path and the user, never "no backups" or "no such WAL
/// file": wal-fetch's exit 1 would end a point-in-time recovery early, at the wrong point.
///
/// Root reads everything, so the commands run as `nobody` (through runuser), from a copy of the
/// executable outside the build tree, on a repository owned by `postgres`.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct UnreadableRepositoryTests {
    static let runAs = "nobody"

    @Test func everyCommandFailsWithAPermissionErrorAndWalFetchNeverSaysAbsent() async throws {
        let postgres = try TestServices.requirePostgres()
        try #require(geteuid() == 0, "switching to another user needs root (CI runs as root)")
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 20)
            cleanup.dropDatabase(fixture.name)
            let directory = try temporaryDirectory("unreadable")
            cleanup.remove(directory)
            let repository = "\(directory)/repo"
            let config = "\(directory)/pgbackd.toml"
            // Encrypted (PGBACKD_TEST_ENCRYPTION=1): a copy of the key that `nobody` owns, so what
            // is refused is the repository, not the key file.
            let keyFile = try TestServices.encryptionKeyCopy(in: directory, owner: Self.runAs)
            try BackupHarness.fileTOML(postgres, repository: repository, databases: [fixture.name], extra: """
                [wal]
                spool_dir = "\(directory)/spool"
                [daemon]
                state_dir = "\(directory)/state"
                """, encryption: keyFile.map(TestServices.encryptionTOML(keyFile:)) ?? "").write(toFile: config, atomically: true, encoding: .utf8)
            chmod(config, 0o644)
            let binary = "\(directory)/pgbackd"
            try copyPgbackdExecutable(to: binary)

            // A real backup, taken as root, then given to postgres as an operator would.
            let backup = try await shell(binary, ["backup", "--config", config])
            try #require(backup.status == 0, "the backup failed: \(backup.stderr)")
            let own = try await shell("/bin/sh", ["-c", "chown -R postgres:postgres \"$0\" && find \"$0\" -type d -exec chmod 0750 {} + && find \"$0\" -type f -exec chmod 0640 {} +", repository])
            try #require(own.status == 0, "\(own.stderr)")

            let walTarget = "\(directory)/wal-target"
            let commands: [(arguments: [String], expected: Int32)] = [
                (["list"], 77),
                (["show", "latest"], 77),
                (["drill", "latest"], 77),
                (["restore", "latest", "--database", fixture.name, "--target-db", "\(fixture.name)_r"], 77),
                (["expire", "--dry-run"], 77),
                (["wal-check"], 77),
                (["backup"], 77),
                (["check"], 77),
                (["status"], 77),
                (["wal-fetch", "000000010000000000000001", walTarget], 126),
                (["wal-fetch", "00000002.history", walTarget], 126),
            ]
            for command in commands {
                let result = try await shell("/usr/sbin/runuser", ["-u", Self.runAs, "--", binary] + command.arguments + ["--config", config])
                let output = result.stdout + result.stderr
                #expect(result.status == command.expected, "pgbackd \(command.arguments.joined(separator: " ")) exited \(result.status), expected \(command.expected): \(output)")
                #expect(output.contains("Permission denied") && output.contains("user \(Self.runAs)") && output.contains(repository),
                        "pgbackd \(command.arguments[0]) must name the refusal, the user and the path: \(output)")
                #expect(!output.contains("no backup") && !output.contains("not in the WAL archive"), "pgbackd \(command.arguments[0]) took the refusal for absence: \(output)")
            }
            #expect(!FileManager.default.fileExists(atPath: walTarget), "wal-fetch wrote %p")
            await DaylogFixture.dropDatabase(postgres, "\(fixture.name)_r")
        }
    }
}
