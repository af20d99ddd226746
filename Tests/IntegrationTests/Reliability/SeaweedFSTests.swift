import Foundation
import ObjectStorage
import Testing

/// SeaweedFS's S3 gateway, the real S3 implementation the reliability row runs beside moto
/// (scripts/services.sh with PGBACKD_SERVICES_SEAWEEDFS=1; scripts/test.sh sets it for that row).
extension TestServices {
    static var seaweedFS: S3? {
        guard let endpoint = environment["PGBACKD_TEST_SEAWEEDFS_ENDPOINT"],
              let key = environment["PGBACKD_TEST_SEAWEEDFS_ACCESS_KEY_ID"],
              let secret = environment["PGBACKD_TEST_SEAWEEDFS_SECRET_ACCESS_KEY"] else { return nil }
        return S3(endpoint: endpoint, region: environment["PGBACKD_TEST_SEAWEEDFS_REGION"] ?? "us-east-1",
                  bucket: environment["PGBACKD_TEST_SEAWEEDFS_BUCKET"] ?? "pgbackd-test", accessKeyID: key, secretAccessKey: secret)
    }

    static var seaweedFSVersion: String { environment["PGBACKD_TEST_SEAWEEDFS_VERSION"] ?? "?" }

    /// Run when PostgreSQL and SeaweedFS are configured, and always in CI (the reliability row
    /// starts SeaweedFS; the other rows skip the whole Reliability suite).
    static var seaweedFSEnabled: Bool { (postgres != nil && seaweedFS != nil) || isCI }

    static func requireSeaweedFS() throws -> S3 {
        guard let seaweedFS else {
            throw MissingService(name: "SeaweedFS S3", variables: "PGBACKD_TEST_SEAWEEDFS_ENDPOINT and its keys; start it with PGBACKD_SERVICES_SEAWEEDFS=1 scripts/services.sh start")
        }
        return seaweedFS
    }
}

extension Reliability {
    /// The storage contract, and backup → drill → restore → PITR through the real pgbackd binary,
    /// against SeaweedFS: a real S3 implementation, where moto is a mock. Every request is signed by
    /// pgbackd's production SigV4 signer (the gateway checks it against its identity file).
    @Suite(.serialized, .enabled(if: TestServices.seaweedFSEnabled))
    struct SeaweedFS {
        static let area = "SeaweedFS"

        static func storage(_ s3: TestServices.S3, prefix: String, partSize: Int = 5 << 20) throws -> S3Storage {
            try S3Storage(configuration: S3Configuration(
                endpoint: try #require(URL(string: s3.endpoint)), bucket: s3.bucket, region: s3.region,
                accessKeyID: s3.accessKeyID, secretAccessKey: s3.secretAccessKey, prefix: prefix,
                partSize: partSize, parallelParts: 3, maxRetries: 2, retryBaseDelay: .milliseconds(50), retryMaxDelay: .milliseconds(500)))
        }

        static func uniquePrefix(_ name: String) -> String {
            "seaweedfs/\(name)-\(UUID().uuidString.prefix(8).lowercased())"
        }

        /// The conformance suite every storage driver passes (memory, files, moto), against SeaweedFS.
        @Test func storageConformance() async throws {
            let s3 = try TestServices.requireSeaweedFS()
            print("[SeaweedFS \(TestServices.seaweedFSVersion)] at \(s3.endpoint)")
            let prefix = Self.uniquePrefix("conformance")
            let storage = try Self.storage(s3, prefix: prefix)
            // 11 MiB: more than two parts, so an interrupted upload is a multipart upload on the server.
            // SeaweedFS dates multipart uploads truly, so the start-time filter is checked too.
            try await StorageConformance.runAll(storage, prefix: "stanza", interruptedUploadSize: 11 << 20, reportsUploadStartTimes: true)
            let left = try await storage.incompleteUploads(prefix: "")
            let objects = try await storage.list(prefix: "")
            #expect(left.isEmpty, "multipart uploads left open: \(left.map(\.key))")
            #expect(objects.isEmpty, "objects left: \(objects.map(\.key))")
            // Read back and compared by the suite: the round-trip, streamed, ranged and overwritten objects.
            ReliabilityLedger.record(ReliabilityFigures(area: Self.area, scenario: "storage conformance suite", runs: 1,
                                                        objectsVerified: 4, leftOver: left.count + objects.count))
        }

        /// A listing longer than one ListObjectsV2 page (1,000 keys, pgbackd's default page size),
        /// as a long WAL archive gives wal-check and expire: every key, once, in order, through
        /// SeaweedFS's continuation tokens.
        @Test func listingPastOnePage() async throws {
            let s3 = try TestServices.requireSeaweedFS()
            let storage = try Self.storage(s3, prefix: Self.uniquePrefix("pages"))
            let keys = (0..<1205).map { "pitr/wal/00000001/" + String(format: "%024X", $0) + ".gz" }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for slice in stride(from: 0, to: keys.count, by: 100) {
                    group.addTask { for key in keys[slice..<min(slice + 100, keys.count)] { try await storage.put(key: key, bytes: Array(key.utf8)) } }
                }
                try await group.waitForAll()
            }
            let listed = try await storage.list(prefix: "pitr/wal/")
            #expect(listed.map(\.key) == keys, "\(listed.count) keys listed of \(keys.count)")
            // SeaweedFS writes LastModified without fractions of a second (moto with them); expire
            // judges leftovers and stale leases by it, so every one must parse and be recent.
            let undated = listed.filter { abs($0.lastModified?.timeIntervalSinceNow ?? .infinity) > 600 }
            #expect(undated.isEmpty, "\(undated.count) listed objects without a recent LastModified: \(undated.prefix(3))")
            #expect(try await storage.list(prefix: "pitr/wal/", pageSize: 333).map(\.key) == keys, "four pages of 333")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for slice in stride(from: 0, to: keys.count, by: 100) {
                    group.addTask { for key in keys[slice..<min(slice + 100, keys.count)] { try await storage.delete(key: key) } }
                }
                try await group.waitForAll()
            }
            let left = try await storage.list(prefix: "")
            #expect(left.isEmpty, "\(left.count) objects left after deleting every key")
            ReliabilityLedger.record(ReliabilityFigures(area: Self.area, scenario: "listing of 1,205 keys (pages of 1,000 and 333)", runs: 1,
                                                        objectsVerified: listed.count, leftOver: left.count))
        }

        /// backup (multipart: level 0 keeps the dump bigger than two 5 MiB parts) → drill → restore
        /// into a new database, all through the pgbackd binary; the restore is compared row by row
        /// with the source. Then a second backup and `expire` (keep_last = 1) delete the first one's
        /// objects from SeaweedFS and leave the second drillable.
        @Test func logicalBackupDrillRestoreAndExpireThroughTheCLI() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireSeaweedFS()
            try await withCleanup(postgres) { cleanup in
                let fixture = try await DaylogFixture.create(postgres, entries: ReliabilityScale.pick(ci: 6000, long: 40000))
                cleanup.dropDatabase(fixture.name)
                let directory = try temporaryDirectory("seaweedfs")
                cleanup.remove(directory)
                let prefix = Self.uniquePrefix("logical")
                let config = "\(directory)/pgbackd.toml"
                try (BackupHarness.s3TOML(postgres, s3, prefix: prefix, databases: [fixture.name], level: 0) + """

                    [drill]
                    staging_dir = "\(directory)"
                    [retention]
                    keep_last = 1
                    keep_daily = 0
                    keep_weekly = 0
                    keep_monthly = 0
                    min_keep = 1
                    """).write(toFile: config, atomically: true, encoding: .utf8)

                let check = try await shell(pgbackdExecutable, ["check", "--config", config])
                #expect(check.status == 0, "check against SeaweedFS: \(check.stdout) \(check.stderr)")
                let first = try await Self.backup(config)
                let storage = try Self.storage(s3, prefix: prefix)
                let stored = try await storage.list(prefix: "test/backups/\(first)/")
                let dump = try #require(stored.max { $0.size < $1.size }, "no objects under backups/\(first)/")
                #expect(dump.size > 10 << 20, "level 0: the dump should span several parts, is \(dump.size) bytes")
                #expect(try await storage.headObject(key: dump.key)?.eTag?.contains("-") == true, "a multipart upload's ETag ends in -<parts>")

                let drill = try await shell(pgbackdExecutable, ["drill", first, "--json", "--config", config])
                #expect(drill.status == 0, "drill: \(drill.stdout.suffix(2000)) \(drill.stderr.suffix(2000))")
                let report = try JSONSerialization.jsonObject(with: Data(drill.stdout.utf8)) as? [String: Any]
                #expect(report?["passed"] as? Bool == true)

                let target = "restore_\(UUID().uuidString.prefix(8).lowercased())"
                cleanup.dropDatabase(target)
                let restore = try await shell(pgbackdExecutable, ["restore", first, "--database", fixture.name, "--target-db", target, "--config", config])
                #expect(restore.status == 0, "restore: \(restore.stdout) \(restore.stderr)")
                let source = try await RowDigests.of(postgres, database: fixture.name, tables: RowDigests.daylogTables)
                let restored = try await RowDigests.of(postgres, database: target, tables: RowDigests.daylogTables)
                let differing = RowDigests.differing(source, restored)
                #expect(differing == 0, "\(differing) rows differ between the source and the restore from SeaweedFS")
                #expect(RowDigests.rows(source) > 6000)

                // Retention through the CLI: a second backup, then expire keeps only it.
                let second = try await Self.backup(config)
                let dryRun = try await shell(pgbackdExecutable, ["expire", "--dry-run", "--json", "--config", config])
                #expect(dryRun.status == 0, "expire --dry-run: \(dryRun.stderr)")
                #expect(try await storage.list(prefix: "test/backups/\(first)/").count == stored.count, "--dry-run deleted something")
                let expire = try await shell(pgbackdExecutable, ["expire", "--json", "--config", config])
                #expect(expire.status == 0, "expire: \(expire.stdout) \(expire.stderr)")
                let result = try JSONSerialization.jsonObject(with: Data(expire.stdout.utf8)) as? [String: Any]
                #expect(result?["expired"] as? [String] == [first], "\(expire.stdout)")
                #expect(try await storage.list(prefix: "test/backups/\(first)/").isEmpty, "the expired backup's objects are still in SeaweedFS")
                #expect(!(try await storage.list(prefix: "test/backups/\(second)/")).isEmpty)
                let list = try await shell(pgbackdExecutable, ["list", "--json", "--config", config])
                #expect(list.stdout.contains(second) && !list.stdout.contains(first), "list after expire: \(list.stdout)")
                let drillSecond = try await shell(pgbackdExecutable, ["drill", "latest", "--json", "--config", config])
                #expect(drillSecond.status == 0, "drill of the kept backup: \(drillSecond.stdout.suffix(2000))")

                let open = try await storage.incompleteUploads(prefix: "")
                #expect(open.isEmpty, "multipart uploads left open: \(open.map(\.key))")
                let verified = stored.count + (try await storage.list(prefix: "test/backups/\(second)/")).count
                ReliabilityLedger.record(ReliabilityFigures(area: Self.area, scenario: "logical backup, drill, restore, expire (CLI)", runs: 1,
                                                            objectsVerified: verified, rowsVerified: RowDigests.rows(source),
                                                            lost: differing, leftOver: open.count))
            }
        }

        /// Base backup with WAL archived by `pgbackd wal-push` into SeaweedFS under pgbench, then a
        /// point-in-time restore to a recorded time: the restored tables are exactly those at that
        /// time, row by row. The base backup is drilled and wal-check finds no gap.
        @Test func baseBackupWALArchivingAndPointInTimeRestore() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireSeaweedFS()
            let scale = ReliabilityScale.pick(ci: 1, long: 8)
            let transactions = ReliabilityScale.pick(ci: 200, long: 2000)
            let prefix = Self.uniquePrefix("pitr")
            try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                type = "s3"
                stanza = "pitr"
                [repository.s3]
                endpoint = "\(s3.endpoint)"
                bucket = "\(s3.bucket)"
                region = "\(s3.region)"
                prefix = "\(prefix)"
                access_key_id = "\(s3.accessKeyID)"
                secret_access_key = "\(s3.secretAccessKey)"
                part_size_mib = 5
                """) { cluster, pitr in
                try await offPool { try pitr.pgbench(["-i", "-s", "\(scale)", "--quiet", "--foreign-keys"]) }
                try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "\(transactions)"]) }
                let backup = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--type", "base", "--json", "--config", pitr.config]) }
                #expect(backup.status == 0, "base backup: \(backup.stderr)")
                let summary = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
                let backupId = try #require(summary?["backup_id"] as? String, "\(backup.stdout)")

                try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "\(transactions)"]) }
                let targetTime = try cluster.sql("select now()")
                let atT = try RowDigests.of(RowDigests.pgbenchTables, sql: cluster.sql)
                try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "\(transactions)"]) }
                #expect(RowDigests.differing(atT, try RowDigests.of(RowDigests.pgbenchTables, sql: cluster.sql)) > 0,
                        "the load after T changed nothing: the test would prove nothing")
                try await pitr.archiveEverything(cluster)

                let check = try await offPool { try blockingShell(pitr.pgbackd, ["wal-check", "--json", "--config", pitr.config]) }
                #expect(check.status == 0, "wal-check: \(check.stdout) \(check.stderr)")
                let walReport = try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any]
                #expect((walReport?["gaps"] as? [Any])?.isEmpty == true, "\(check.stdout)")

                let storage = try Self.storage(s3, prefix: prefix)
                let restored = try await pitr.restoreAndStart(["--time", targetTime])
                defer { restored.stop() }
                let got = try RowDigests.of(RowDigests.pgbenchTables, sql: restored.sql)
                let differing = RowDigests.differing(atT, got)
                #expect(differing == 0, "PITR to \(targetTime) from SeaweedFS: \(differing) rows differ from those at T")

                let drill = try await offPool { try blockingShell(pitr.pgbackd, ["drill", backupId, "--json", "--config", pitr.config]) }
                #expect(drill.status == 0, "base drill: \(drill.stdout.suffix(3000)) \(drill.stderr.suffix(2000))")
                let report = try JSONSerialization.jsonObject(with: Data(drill.stdout.utf8)) as? [String: Any]
                #expect(report?["passed"] as? Bool == true)
                let open = try await storage.incompleteUploads(prefix: "")
                #expect(open.isEmpty, "multipart uploads left open: \(open.map(\.key))")
                // The base backup's objects, read and checked by the restore and the drill (the WAL
                // segments recovery replayed are not counted: which ones it fetched is not recorded).
                let artifacts = try await storage.list(prefix: "pitr/backups/\(backupId)/").count
                ReliabilityLedger.record(ReliabilityFigures(area: Self.area, scenario: "base backup, WAL archiving, PITR to a time, base drill", runs: 1,
                                                            objectsVerified: artifacts, rowsVerified: RowDigests.rows(atT),
                                                            lost: differing, leftOver: open.count))
            }
        }

        static func backup(_ config: String) async throws -> String {
            let backup = try await shell(pgbackdExecutable, ["backup", "--json", "--config", config])
            #expect(backup.status == 0, "backup: \(backup.stderr)")
            let summary = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
            return try #require(summary?["backup_id"] as? String, "\(backup.stdout) \(backup.stderr)")
        }
    }
}

/// Row-by-row comparison of tables: one md5 per row, as a multiset per table. `differing` counts
/// the rows in one and not in the other, so "0 differ" is a count, not a checksum's yes/no.
enum RowDigests {
    typealias Digests = [String: [String: Int]]

    static let daylogTables = ["auth_user", "journal_tag", "journal_journalentry", "journal_journalentry_tags"]
    static let pgbenchTables = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"]

    static func of(_ tables: [String], sql: (String) throws -> String) throws -> Digests {
        var result: Digests = [:]
        for table in tables {
            let lines = try sql("select md5(t::text) from \(table) t").split(separator: "\n")
            result[table] = lines.reduce(into: [:]) { $0[String($1), default: 0] += 1 }
        }
        return result
    }

    static func of(_ postgres: TestServices.Postgres, database: String, tables: [String]) async throws -> Digests {
        try await offPool {
            try of(tables) { statement in
                let result = try blockingShell("\(postgres.binDirectory)/psql", ["-h", postgres.host, "-p", postgres.port, "-U", postgres.user,
                                                                                "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement])
                guard result.status == 0 else { throw ThrowawayCluster.ClusterError(message: "psql \(statement): \(result.stderr)") }
                return result.stdout
            }
        }
    }

    static func rows(_ digests: Digests) -> Int {
        digests.values.reduce(0) { $0 + $1.values.reduce(0, +) }
    }

    static func differing(_ a: Digests, _ b: Digests) -> Int {
        var count = 0
        for table in Set(a.keys).union(b.keys) {
            let left = a[table] ?? [:], right = b[table] ?? [:]
            for digest in Set(left.keys).union(right.keys) {
                count += abs((left[digest] ?? 0) - (right[digest] ?? 0))
            }
        }
        return count
    }
}
