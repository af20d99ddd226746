import Compression
import Foundation
import PGBackupCore
import Testing

/// WAL archiving end to end: a real cluster whose archive_command is `pgbackd wal-push`, the
/// watcher shipping the spool to a file repository, and `wal-fetch` bringing segments back.
@Suite(.serialized) struct WALArchivingTests {
    @Test(.enabled(if: TestServices.postgresEnabled))
    func archiveShipAndFetch() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup { cleanup in
            let repository = try temporaryDirectory("wal-repo")
            cleanup.remove(repository)
            // The archiver runs wal-push as `postgres`: withArchivingCluster copies the binary
            // and writes a configuration that user can read, next to the cluster.
            try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                type = "file"
                path = "\(repository)"
                stanza = "test"
                """) { cluster, _ in
                let config = "\(cluster.base)/pgbackd.toml"
                let spool = "\(cluster.base)/spool"
                try cluster.sql("create table t (i int, pad text)")
                for round in 0..<3 {
                    try cluster.sql("insert into t select g, repeat('x', 200) from generate_series(\(round * 10_000), \(round * 10_000 + 9_999)) g")
                    try cluster.sql("select pg_switch_wal()")
                }
                let archived = try await eventually(attempts: 300) {
                    let row = try cluster.sql("select archived_count, failed_count from pg_stat_archiver").split(separator: "|")
                    #expect(row.count == 2 && row[1] == "0", "archive_command failed: see \(cluster.base)/postgres.log")
                    return (Int(row.first ?? "") ?? 0) >= 3
                }
                #expect(archived, "PostgreSQL did not archive 3 segments through wal-push")

                let spooled = try FileManager.default.contentsOfDirectory(atPath: spool).filter { !$0.hasPrefix(".") }.sorted()
                #expect(spooled.count >= 3, "\(spooled)")
                let segment = try #require(spooled.first)
                let kept = try Data(contentsOf: URL(fileURLWithPath: "\(spool)/\(segment)"))
                #expect(kept.count == 16 << 20)

                let originals = try Dictionary(uniqueKeysWithValues: spooled.map { ($0, try Data(contentsOf: URL(fileURLWithPath: "\(spool)/\($0)"))) })
                let watch = try await shell(pgbackdExecutable, ["wal-watch", "--once", "--config", config])
                #expect(watch.status == 0, "wal-watch: \(watch.stderr)")
                // Encrypted (PGBACKD_TEST_ENCRYPTION=1): each object is `<key>.enc`, and what the
                // test plants goes through the encrypting storage (RepositoryObjects).
                let objects = try await RepositoryObjects(config: config)
                let walPrefix = "test/wal/00000001"
                for name in spooled {
                    // `<name>-<SHA-256 of the raw segment>.gz`
                    let object = objects.path("\(walPrefix)/\(name)-\(WALObjectName.sha256(of: Array(originals[name] ?? Data()))).gz")
                    #expect(FileManager.default.fileExists(atPath: object), "\(name) was not archived as \(object)")
                    #expect(!FileManager.default.fileExists(atPath: "\(spool)/\(name)"), "\(name) is still spooled")
                }

                let target = "\(cluster.base)/RECOVERYXLOG"
                let fetch = try await shell(pgbackdExecutable, ["wal-fetch", segment, target, "--config", config])
                #expect(fetch.status == 0, "wal-fetch: \(fetch.stderr)")
                #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == kept, "wal-fetch did not restore the archived bytes")
                try FileManager.default.removeItem(atPath: target)

                let missing = try await shell(pgbackdExecutable, ["wal-fetch", "0000000100000000000000FF", target, "--config", config])
                #expect(missing.status == 1, "a missing segment must exit exactly 1: \(missing.stderr)")
                #expect(!FileManager.default.fileExists(atPath: target))

                let objectName = "\(segment)-\(WALObjectName.sha256(of: Array(kept))).gz"
                let objectKey = "\(walPrefix)/\(objectName)"
                let object = objects.path(objectKey)
                let intact = try await objects.read(objectKey)
                // The stored bytes damaged (on an encrypted repository: the ciphertext).
                var stored = try Data(contentsOf: URL(fileURLWithPath: object))
                stored[stored.count / 2] ^= 0x01
                try stored.write(to: URL(fileURLWithPath: object))
                let corrupt = try await shell(pgbackdExecutable, ["wal-fetch", segment, target, "--config", config])
                #expect(corrupt.status == 126, "a corrupt object must stop recovery (exit > 125): \(corrupt.status) \(corrupt.stderr)")
                #expect(corrupt.stderr.contains("test/wal/00000001/\(objectName)"), "\(corrupt.stderr)")
                #expect(!FileManager.default.fileExists(atPath: target))
                #expect(!FileManager.default.fileExists(atPath: target + ".pgbackd-tmp"))

                // Valid gzip of other bytes under the same name: the CRC passes, the SHA-256 in
                // the name does not.
                var altered = Array(kept)
                altered[4096] ^= 0xFF
                try await objects.write(objectKey, Gzip.compress(altered, level: 1))
                let mismatch = try await shell(pgbackdExecutable, ["wal-fetch", segment, target, "--config", config])
                #expect(mismatch.status == 126, "content not matching its name must stop recovery: \(mismatch.status) \(mismatch.stderr)")
                #expect(mismatch.stderr.contains(objectName) && mismatch.stderr.contains("SHA-256"), "\(mismatch.stderr)")
                #expect(!FileManager.default.fileExists(atPath: target))
                #expect(!FileManager.default.fileExists(atPath: target + ".pgbackd-tmp"))

                // An object written before names carried checksums is still restored.
                try objects.remove(objectKey)
                try await objects.write("\(walPrefix)/\(segment).gz", intact)
                let old = try await shell(pgbackdExecutable, ["wal-fetch", segment, target, "--config", config])
                #expect(old.status == 0, "wal-fetch of an old-style object: \(old.stderr)")
                #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == kept)
                try FileManager.default.removeItem(atPath: target)

                // Two objects for one name: recovery stops rather than replay either.
                try await objects.write(objectKey, intact)
                let ambiguous = try await shell(pgbackdExecutable, ["wal-fetch", segment, target, "--config", config])
                #expect(ambiguous.status == 126, "\(ambiguous.status) \(ambiguous.stderr)")
                #expect(ambiguous.stderr.contains("2 objects for \(segment)"), "\(ambiguous.stderr)")
                #expect(!FileManager.default.fileExists(atPath: target))
                // wal-check finds it before a restore does.
                let check = try await shell(pgbackdExecutable, ["wal-check", "--config", config])
                #expect(check.status == 1, "\(check.stdout) \(check.stderr)")
                #expect(check.stdout.contains("AMBIGUOUS \(segment) is archived as 2 objects"), "\(check.stdout)")
            }
        }
    }

    /// wal-push in spool mode through the real executable: identical retry, conflict, full spool.
    @Test func walPushExitCodes() async throws {
        try await withCleanup { cleanup in
            let directory = try temporaryDirectory("wal-push")
            cleanup.remove(directory)
            let config = "\(directory)/pgbackd.toml"
            try """
                [repository]
                type = "s3"
                [repository.s3]
                endpoint = "http://127.0.0.1:9"
                bucket = "never-contacted"
                access_key_id = "AKIA"
                secret_access_key = "unused"
                [wal]
                spool_dir = "\(directory)/spool"
                max_spool_mib = 1
                \(TestServices.encryptionTOML)
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let segment = "\(directory)/000000010000000000000001"
            try Data(repeating: 7, count: 600 << 10).write(to: URL(fileURLWithPath: segment))
            // An unreachable S3 repository: spool mode must not notice.
            #expect(try await shell(pgbackdExecutable, ["wal-push", segment, "--config", config]).status == 0)
            #expect(try await shell(pgbackdExecutable, ["wal-push", segment, "--config", config]).status == 0)
            try Data(repeating: 8, count: 600 << 10).write(to: URL(fileURLWithPath: segment))
            let conflict = try await shell(pgbackdExecutable, ["wal-push", segment, "--config", config])
            #expect(conflict.status != 0)
            #expect(conflict.stderr.contains("different content"), "\(conflict.stderr)")
            let next = "\(directory)/000000010000000000000002"
            try Data(repeating: 9, count: 600 << 10).write(to: URL(fileURLWithPath: next))
            let full = try await shell(pgbackdExecutable, ["wal-push", next, "--config", config])
            #expect(full.status != 0)
            #expect(full.stderr.contains("max_spool_mib"), "\(full.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/spool") == ["000000010000000000000001"])
        }
    }
}
