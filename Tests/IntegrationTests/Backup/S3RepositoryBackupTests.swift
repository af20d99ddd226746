import Foundation
import ObjectStorage
import PGBackdSupport
@testable import PGBackupCore
import Testing

@Suite(.serialized, .enabled(if: TestServices.s3Enabled))
struct S3RepositoryBackupTests {
    /// Runs the AWS CLI, a standard S3 client, against the test server.
    static func aws(_ s3: TestServices.S3, _ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await shell("aws", ["--endpoint-url", s3.endpoint, "--region", s3.region] + arguments, environment: [
            "AWS_ACCESS_KEY_ID": s3.accessKeyID, "AWS_SECRET_ACCESS_KEY": s3.secretAccessKey,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        ])
    }

    static func incompleteUploads(_ s3: TestServices.S3, prefix: String) async throws -> String {
        let result = try await aws(s3, ["s3api", "list-multipart-uploads", "--bucket", s3.bucket, "--prefix", prefix, "--query", "Uploads[].Key", "--output", "text"])
        #expect(result.status == 0, "list-multipart-uploads failed: \(result.stderr)")
        let text = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return text == "None" ? "" : text
    }

    static func objectKeys(_ s3: TestServices.S3, prefix: String) async throws -> [String] {
        let result = try await aws(s3, ["s3api", "list-objects-v2", "--bucket", s3.bucket, "--prefix", prefix, "--query", "Contents[].Key", "--output", "text"])
        #expect(result.status == 0, "list-objects-v2 failed: \(result.stderr)")
        let text = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return text == "None" || text.isEmpty ? [] : text.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    @Test func multipartBackupFetchedWithAStandardClientRestoresToTheManifestCounts() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        try await withCleanup(postgres) { cleanup in
            // Level 0 keeps the stored dump as big as the raw one: well over one 5 MiB part.
            let fixture = try await DaylogFixture.create(postgres, entries: 6000)
            cleanup.dropDatabase(fixture.name)
            let prefix = "it-\(UUID().uuidString.prefix(8))"
            let configuration = try BackupHarness.s3Configuration(postgres, s3, prefix: prefix, databases: [fixture.name], level: 0)
            let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)

            let manifest = try await LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()

            let dump = try #require(manifest.artifacts.first { $0.content == .databaseDump })
            #expect(dump.storedSize > 2 * 5 * 1024 * 1024, "the dump must span several parts")
            let fetched = try temporaryDirectory("fetch")
            cleanup.remove(fetched)
            let local = fetched + "/dump.gz"
            // Encrypted (PGBACKD_TEST_ENCRYPTION=1): the object is `<key>.enc`.
            let objectKey = "\(prefix)/test/\(dump.key)\(TestServices.objectSuffix)"
            let fetch = try await Self.aws(s3, ["s3", "cp", "s3://\(s3.bucket)/\(objectKey)", local])
            #expect(fetch.status == 0, "aws s3 cp failed: \(fetch.stderr)")
            let head = try await Self.aws(s3, ["s3api", "head-object", "--bucket", s3.bucket, "--key", objectKey, "--query", "ETag", "--output", "text"])
            #expect(head.stdout.contains("-"), "a multipart object's ETag ends in -<parts>: \(head.stdout)")
            if TestServices.encrypted {
                // A standard client gets ciphertext; the stored bytes under it come through pgbackd's storage.
                let plain = try await repository.storage.getAll(key: "test/\(dump.key)")
                #expect(try !Data(contentsOf: URL(fileURLWithPath: local)).starts(with: plain.prefix(16)), "the object in S3 is not encrypted")
                try Data(plain).write(to: URL(fileURLWithPath: local))
            }
            #expect(try await shell("sha256sum", [local]).stdout.hasPrefix(dump.storedSha256))

            let restored = try await BackupHarness.restoreWithStandardTools(gzipFile: local, postgres: postgres)
            cleanup.dropDatabase(restored)
            #expect(try await fixture.rowCounts(database: restored) == manifest.databases[0].rowCounts)
            #expect(try await fixture.tableFingerprints(database: restored) == (try await fixture.tableFingerprints()))
            #expect(try await repository.backups().map(\.backupId) == [manifest.backupId])
        }
    }

    @Test func wrongSecretFailsClearlyAndCommitsNothing() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 100)
            cleanup.dropDatabase(fixture.name)
            let prefix = "it-\(UUID().uuidString.prefix(8))"
            let wrong = try BackupHarness.s3Configuration(postgres, s3, prefix: prefix, databases: [fixture.name], secret: "not-the-secret")
            do {
                // Opening reads the stanza's repository.json first when encrypted: the same refusal.
                let repository = try await RepositoryFactory.open(wrong, logger: BackupHarness.logger)
                _ = try await LogicalBackup(configuration: wrong, repository: repository, logger: BackupHarness.logger).run()
                Issue.record("a wrong secret must fail")
            } catch let error as StorageError {
                #expect(error.code == .invalidCredentials)
                #expect(!error.description.contains("not-the-secret"))
                #expect(error.description.contains("secret_access_key"))
            }
            #expect(try await Self.objectKeys(s3, prefix: prefix).isEmpty)
            #expect(try await Self.incompleteUploads(s3, prefix: prefix).isEmpty)
        }
    }

    @Test func killedPgDumpLeavesNoManifestAndNoIncompleteUpload() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 8000)
            cleanup.dropDatabase(fixture.name)
            let prefix = "it-\(UUID().uuidString.prefix(8))"
            // 12 MiB pass through (a multipart upload with parts already sent), then pg_dump dies.
            let bin = try BackupHarness.wrappedPgDump(postgres, script: "\"$REAL\" \"$@\" | head -c 12582912; kill -9 $$")
            cleanup.remove(bin)
            let configuration = try BackupHarness.s3Configuration(postgres, s3, prefix: prefix, databases: [fixture.name], level: 0, binDirectory: bin)
            let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)
            await #expect(throws: ChildProcessError.self) {
                _ = try await LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()
            }
            #expect(try await repository.backups().isEmpty)
            #expect(try await Self.incompleteUploads(s3, prefix: prefix).isEmpty)
            #expect(try await Self.objectKeys(s3, prefix: "\(prefix)/test/backups/").isEmpty)
        }
    }

    @Test func killedPgbackdLeavesNothingAfterTheNextRun() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 8000)
            cleanup.dropDatabase(fixture.name)
            let prefix = "it-\(UUID().uuidString.prefix(8))"
            // pg_dump hands over 12 MiB, then stalls: pgbackd has a multipart upload open when killed.
            let bin = try BackupHarness.wrappedPgDump(postgres, script: "\"$REAL\" \"$@\" | { head -c 12582912; sleep 60; cat; }")
            cleanup.remove(bin)
            let directory = try temporaryDirectory("cfg")
            cleanup.remove(directory)
            let stalled = "\(directory)/stalled.toml"
            try BackupHarness.s3TOML(postgres, s3, prefix: prefix, databases: [fixture.name], level: 0, binDirectory: bin).write(toFile: stalled, atomically: true, encoding: .utf8)

            let process = try launchPgbackd(["backup", "--config", stalled])
            let sawUpload = try await eventually(attempts: 120, interval: .milliseconds(250)) {
                !(try await Self.incompleteUploads(s3, prefix: prefix).isEmpty)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            _ = try? await shell("pkill", ["-9", "-f", "\(bin)/pg_dump"])
            #expect(sawUpload, "the killed run should have had a multipart upload in flight")

            let healthy = "\(directory)/healthy.toml"
            try BackupHarness.s3TOML(postgres, s3, prefix: prefix, databases: [fixture.name], level: 1).write(toFile: healthy, atomically: true, encoding: .utf8)
            let next = try await shell(pgbackdExecutable, ["backup", "--config", healthy])
            #expect(next.status == 0, "the next backup must succeed: \(next.stderr)")
            let id = next.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await Self.incompleteUploads(s3, prefix: prefix).isEmpty)
            let listed = try await shell(pgbackdExecutable, ["list", "--json", "--config", healthy])
            #expect(listed.stdout.contains(id))
            #expect(try await Self.objectKeys(s3, prefix: "\(prefix)/test/backups/").filter { $0.hasSuffix("manifest.json\(TestServices.objectSuffix)") } == ["\(prefix)/test/backups/\(id)/manifest.json\(TestServices.objectSuffix)"])
        }
    }
}
