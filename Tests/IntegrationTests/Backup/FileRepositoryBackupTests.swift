import Foundation
import ObjectStorage
import PGBackdSupport
@testable import PGBackupCore
import Testing

@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct FileRepositoryBackupTests {
    @Test func backupRestoresWithPlainPgRestoreToTheManifestCounts() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 3000)
            cleanup.dropDatabase(fixture.name)
            let repositoryPath = try temporaryDirectory("repo")
            cleanup.remove(repositoryPath)
            let configuration = try BackupHarness.fileConfiguration(postgres, repository: repositoryPath, databases: [fixture.name], level: 6)
            let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)

            let manifest = try await LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()

            // The catalog is rebuilt from the repository alone.
            #expect(try await repository.backups().map(\.backupId) == [manifest.backupId])
            let snapshot = try #require(manifest.databases.first)
            #expect(snapshot.rowCounts == (try await fixture.rowCounts()))
            #expect(snapshot.foreignKeys.count == 4)
            #expect(snapshot.foreignKeys.contains { $0.table == "public.journal_journalentry" && $0.columns == ["user_id"] && $0.referencedTable == "public.auth_user" })
            #expect(snapshot.objects.schemas["public"]?.tables == 4)
            #expect(manifest.artifacts.map(\.content) == [.globals, .databaseDump])

            // Each artifact is exactly what the manifest says: size and SHA-256 of stored and raw bytes
            // (encrypted: of the stored bytes under the encryption, decrypted by RepositoryObjects).
            let objects = try await RepositoryObjects(configuration: configuration)
            let plain = try temporaryDirectory("plain")
            cleanup.remove(plain)
            for artifact in manifest.artifacts {
                let path = try await objects.plainFile("test/\(artifact.key)", in: plain)
                let stored = try Data(contentsOf: URL(fileURLWithPath: path))
                #expect(Int64(stored.count) == artifact.storedSize)
                #expect(try await shell("sha256sum", [path]).stdout.hasPrefix(artifact.storedSha256))
                let raw = try await shell("/bin/bash", ["-o", "pipefail", "-c", "gunzip -c \"$0\" | sha256sum", path])
                #expect(raw.status == 0)
                #expect(raw.stdout.hasPrefix(artifact.rawSha256))
            }

            let dump = try await objects.plainFile("test/\(try #require(manifest.artifacts.last).key)", in: plain)
            let restored = try await BackupHarness.restoreWithStandardTools(gzipFile: dump, postgres: postgres)
            cleanup.dropDatabase(restored)
            #expect(try await fixture.rowCounts(database: restored) == snapshot.rowCounts)
            #expect(try await fixture.tableFingerprints(database: restored) == (try await fixture.tableFingerprints()))
        }
    }

    @Test func rowCountsComeFromTheDumpSnapshotNotFromLater() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 500)
            cleanup.dropDatabase(fixture.name)
            let repositoryPath = try temporaryDirectory("repo")
            cleanup.remove(repositoryPath)
            // pg_dump starts (the snapshot is exported by then), and waits until rows are deleted.
            // The dump and the counts must both still show the rows, because both read the
            // exported snapshot. Marker files, not a sleep: under load the backup may take seconds
            // to get as far as pg_dump, and a delete before the export is no test at all.
            let bin = try BackupHarness.wrappedPgDump(postgres, script: """
                HERE=$(dirname "$0"); touch "$HERE/started"
                for _ in $(seq 600); do [ -e "$HERE/go" ] && break; sleep 0.1; done
                exec "$REAL" "$@"
                """)
            cleanup.remove(bin)
            let configuration = try BackupHarness.fileConfiguration(postgres, repository: repositoryPath, databases: [fixture.name], binDirectory: bin)
            let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)
            let before = try await fixture.rowCounts()

            async let manifest = LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()
            var waited = 0
            while !FileManager.default.fileExists(atPath: "\(bin)/started") && waited < 600 {
                try await Task.sleep(for: .milliseconds(100))
                waited += 1
            }
            try await fixture.execute("delete from journal_journalentry where created_at > '2026-01-01 03:00'")
            #expect(FileManager.default.createFile(atPath: "\(bin)/go", contents: nil))
            let committed = try await manifest
            #expect(FileManager.default.fileExists(atPath: "\(bin)/started"), "pg_dump never started")

            #expect(try await fixture.rowCounts()["public.journal_journalentry"]! < before["public.journal_journalentry"]!)
            #expect(committed.databases[0].rowCounts == before)
            let plain = try temporaryDirectory("plain")
            cleanup.remove(plain)
            let dump = try await RepositoryObjects(configuration: configuration).plainFile("test/\(committed.artifacts[1].key)", in: plain)
            let restored = try await BackupHarness.restoreWithStandardTools(gzipFile: dump, postgres: postgres)
            cleanup.dropDatabase(restored)
            #expect(try await fixture.rowCounts(database: restored) == before)
        }
    }

    @Test func killedPgDumpLeavesNoManifestAndNoTempFiles() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 2000)
            cleanup.dropDatabase(fixture.name)
            let repositoryPath = try temporaryDirectory("repo")
            cleanup.remove(repositoryPath)
            let bin = try BackupHarness.wrappedPgDump(postgres, script: "\"$REAL\" \"$@\" | head -c 1000000; kill -9 $$")
            cleanup.remove(bin)
            let configuration = try BackupHarness.fileConfiguration(postgres, repository: repositoryPath, databases: [fixture.name], binDirectory: bin)
            let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)

            do {
                _ = try await LogicalBackup(configuration: configuration, repository: repository, logger: BackupHarness.logger).run()
                Issue.record("a killed pg_dump must fail the backup")
            } catch let error as ChildProcessError {
                #expect(error.description.contains("pg_dump failed (killed by signal 9)"))
            }
            #expect(try await repository.backups().isEmpty)
            let found = try await shell("find", [repositoryPath, "-type", "f", "-path", "*/backups/*"]).stdout.split(separator: "\n")
            // Encrypted, the backup's wrapped data key is test/keys/backups/<id>/<key id>.json.
            #expect(found.isEmpty, "nothing of the failed backup may remain, its data key neither: \(found)")
        }
    }
}
