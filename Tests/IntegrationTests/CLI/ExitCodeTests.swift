import Foundation
import Testing

/// Bad input through the real executable: one clear line on stderr, a distinct exit code.
@Suite struct ExitCodeTests {
    func run(_ arguments: [String], config: String) async throws -> (status: Int32, stderr: String) {
        let directory = try temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/pgbackd.toml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        // Mode 0600, as for any file with secrets (some hold the S3 secret): a file others can
        // read that holds one gets a warning line on stderr too.
        chmod(path, 0o600)
        let result = try await shell(pgbackdExecutable, arguments + ["--config", path])
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line on stderr, got: \(result.stderr)")
        #expect(result.stderr.hasPrefix("pgbackd: error: "), "\(result.stderr)")
        return (result.status, result.stderr.replacingOccurrences(of: directory, with: "DIR"))
    }

    @Test func malformedTOML() async throws {
        let result = try await run(["backup"], config: "[repository\ntype = \"file\"\n")
        #expect(result.status == 78)
        #expect(result.stderr.contains("DIR/pgbackd.toml: line 1"))
    }

    @Test func unknownKey() async throws {
        let result = try await run(["list"], config: "[repository]\ntyp = \"file\"\n")
        #expect(result.status == 78)
        #expect(result.stderr.contains("repository.typ: unknown key; did you mean 'type'?"))
    }

    @Test func wrongType() async throws {
        let result = try await run(["check"], config: "[repository.s3]\npart_size_mib = \"big\"\n")
        #expect(result.status == 78)
        #expect(result.stderr.contains("repository.s3.part_size_mib: expected an integer from 5 to 5120, got the string \"big\""))
    }

    @Test func missingSecretFile() async throws {
        let result = try await run(["backup"], config: """
            [repository]
            type = "s3"
            [repository.s3]
            endpoint = "http://127.0.0.1:9"
            bucket = "backups"
            access_key_id = "AKIA"
            secret_access_key_file = "/nonexistent/s3.secret"
            """)
        #expect(result.status == 78)
        #expect(result.stderr.contains("repository.s3.secret_access_key_file: the secret file /nonexistent/s3.secret does not exist"))
    }

    @Test func missingConfigurationFile() async throws {
        let result = try await shell(pgbackdExecutable, ["list", "--config", "/nonexistent/pgbackd.toml"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("/nonexistent/pgbackd.toml: no such file"))
    }

    @Test func unreachableDatabase() async throws {
        let repository = try temporaryDirectory("repo")
        defer { try? FileManager.default.removeItem(atPath: repository) }
        // Port 9 on loopback: nothing listens there.
        let result = try await run(["backup"], config: """
            [repository]
            path = "\(repository)"
            [postgres]
            conninfo = "host=127.0.0.1 port=9 user=postgres password=hunter2 connect_timeout=3"
            \(TestServices.encryptionTOML)
            """)
        #expect(result.status == 69)
        #expect(result.stderr.contains("cannot connect to PostgreSQL"))
        #expect(result.stderr.contains("127.0.0.1"))
        #expect(!result.stderr.contains("hunter2"), "the password must never be printed")
    }

    @Test func unknownBackupID() async throws {
        let repository = try temporaryDirectory("repo")
        defer { try? FileManager.default.removeItem(atPath: repository) }
        let result = try await run(["show", "20990101T000000Z-logical"], config: "[repository]\npath = \"\(repository)\"\n" + TestServices.encryptionTOML)
        #expect(result.status == 66)
        #expect(result.stderr.contains("no backup '20990101T000000Z-logical'"))
    }

    @Test(.enabled(if: TestServices.s3Enabled)) func missingBucket() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        let result = try await run(["backup"], config: BackupHarness.s3TOML(postgres, s3, prefix: "x", databases: ["postgres"], bucket: "no-such-bucket-here"))
        #expect(result.status == 76)
        #expect(result.stderr.contains("no-such-bucket-here"))
    }

    @Test(.enabled(if: TestServices.s3Enabled)) func wrongSecret() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        let result = try await run(["backup"], config: BackupHarness.s3TOML(postgres, s3, prefix: "x", databases: ["postgres"], secret: "wrong-secret-value"))
        #expect(result.status == 77)
        #expect(!result.stderr.contains("wrong-secret-value"))
    }
}
