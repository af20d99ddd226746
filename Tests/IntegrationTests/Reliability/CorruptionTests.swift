import Compression
import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

extension Reliability {
    /// Corruption (issue #16), in a file repository and an S3 one (moto), after real backups: one
    /// byte flipped in an artifact, an artifact truncated, an artifact swapped for the same
    /// database's from another backup, a manifest edited by hand (a checksum, a size, a row
    /// count), and WAL damaged or stored under another segment's name. Each must be detected by
    /// every command that reads it (`drill`, `restore`, `wal-check` where it applies, `wal-fetch`
    /// for WAL) and named: the object and what is wrong, with the exit code of
    /// docs/operations.md. DrillTests covers the flipped, truncated and missing dump in a file
    /// repository through the drill alone; this goes through the CLI, into both stores, and
    /// counts. A fault counts as detected only when every command that reads it detected and
    /// named it.
    @Suite(.serialized) struct Corruption {
        /// A fault and what the commands must say about it.
        struct Outcome {
            var detectedBy: [String] = []
            var missedBy: [String] = []

            mutating func note(_ command: String, _ named: Bool) {
                if named { detectedBy.append(command) } else { missedBy.append(command) }
            }
        }

        final class Tally: @unchecked Sendable {
            var injected: [String: Int] = [:]
            var detected = 0
            var objectsVerified = 0
            var rowsVerified = 0
            var runs = 0
            var lost = 0
            var leftOver = 0

            func record(_ kind: String, _ outcome: Outcome) {
                injected[kind, default: 0] += 1
                if outcome.missedBy.isEmpty { detected += 1 }
                runs += outcome.detectedBy.count + outcome.missedBy.count
            }

            func figures(_ scenario: String) -> ReliabilityFigures {
                ReliabilityFigures(area: "corruption", scenario: scenario, faults: injected, runs: runs, objectsVerified: objectsVerified,
                                   rowsVerified: rowsVerified, lost: lost, leftOver: leftOver, missed: injected.values.reduce(0, +) - detected)
            }
        }

        // MARK: logical backups

        @Test(.enabled(if: TestServices.postgresEnabled), .timeLimit(.minutes(5)))
        func logicalBackupsInAFileRepository() async throws {
            let postgres = try TestServices.requirePostgres()
            try await withCleanup(postgres) { cleanup in
                let repository = try temporaryDirectory("corruption-repo")
                cleanup.remove(repository)
                let fixture = try await DaylogFixture.create(postgres, entries: ReliabilityScale.pick(ci: 1500, long: 20_000))
                cleanup.dropDatabase(fixture.name)
                let directory = try temporaryDirectory("corruption")
                cleanup.remove(directory)
                let config = "\(directory)/pgbackd.toml"
                try BackupHarness.fileTOML(postgres, repository: repository, databases: [fixture.name]).write(toFile: config, atomically: true, encoding: .utf8)
                let tally = Tally()
                try await logicalFaults(config: config, fixture: fixture, postgres: postgres, cleanup: cleanup, tally: tally)
                ReliabilityLedger.record(tally.figures("logical backups, file repository"))
            }
        }

        @Test(.enabled(if: TestServices.s3Enabled), .timeLimit(.minutes(5)))
        func logicalBackupsInAnS3Repository() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireS3()
            try await withCleanup(postgres) { cleanup in
                let fixture = try await DaylogFixture.create(postgres, entries: ReliabilityScale.pick(ci: 1500, long: 20_000))
                cleanup.dropDatabase(fixture.name)
                let directory = try temporaryDirectory("corruption-s3")
                cleanup.remove(directory)
                let config = "\(directory)/pgbackd.toml"
                let prefix = "corruption-\(UUID().uuidString.prefix(8).lowercased())"
                try BackupHarness.s3TOML(postgres, s3, prefix: prefix, databases: [fixture.name]).write(toFile: config, atomically: true, encoding: .utf8)
                let tally = Tally()
                do {
                    try await logicalFaults(config: config, fixture: fixture, postgres: postgres, cleanup: cleanup, tally: tally)
                } catch {
                    await Self.removeObjects(config)
                    throw error
                }
                await Self.removeObjects(config)
                ReliabilityLedger.record(tally.figures("logical backups, S3 repository (moto)"))
            }
        }

        static func removeObjects(_ config: String) async {
            guard let repository = try? await RepositoryFactory.open(try Configuration.load(path: config), logger: BackupHarness.logger) else { return }
            for object in (try? await repository.storage.list(prefix: "\(repository.stanza)/")) ?? [] {
                try? await repository.storage.delete(key: object.key)
            }
        }

        /// Two backups of one database (different content), then each fault in turn on the
        /// newer one, put right again after each; at the end the newer backup drills green and
        /// restores equal to the source, so no detection was a false alarm.
        func logicalFaults(config: String, fixture: DaylogFixture, postgres: TestServices.Postgres, cleanup: Cleanup, tally: Tally) async throws {
            let pgbackd = pgbackdExecutable
            let older = try await shell(pgbackd, ["backup", "--json", "--config", config])
            try #require(older.status == 0, "backup: \(older.stderr)")
            try await fixture.execute("update journal_journalentry set title = title || ' (edited)' where created_at < '2026-01-01 05:00'")
            let newer = try await shell(pgbackd, ["backup", "--json", "--config", config])
            try #require(newer.status == 0, "backup: \(newer.stderr)")
            let id = { (output: String) throws -> String in
                try #require((try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])?["backup_id"] as? String)
            }
            let olderId = try id(older.stdout), newerId = try id(newer.stdout)
            let repository = try await RepositoryFactory.open(try Configuration.load(path: config), logger: BackupHarness.logger)
            let storage = repository.storage
            let olderManifest = try await repository.manifest(olderId), newerManifest = try await repository.manifest(newerId)
            let dump = try #require(newerManifest.artifacts.first { $0.content == .databaseDump })
            let otherDump = try #require(olderManifest.artifacts.first { $0.content == .databaseDump })
            let dumpKey = repository.key(relative: dump.key), manifestKey = repository.manifestKey(newerId)
            let dumpBytes = try await storage.getAll(key: dumpKey)
            let manifestBytes = try await storage.getAll(key: manifestKey)
            let otherBytes = try await storage.getAll(key: repository.key(relative: otherDump.key))
            #expect(otherBytes != dumpBytes, "the two backups' dumps differ")
            let manifestText = String(decoding: manifestBytes, as: UTF8.self)
            let table = "public.journal_tag"
            let rows = try #require(newerManifest.databases.first?.rowCounts[table])

            /// What drill, restore and (for manifests) wal-check say about the damaged backup.
            func detect(_ fault: String, object: String, manifestFault: Bool) async throws -> Outcome {
                var outcome = Outcome()
                // drill: a damaged artifact is a failed `artifacts` check (exit 1) naming it; a
                // manifest that cannot be trusted stops the drill (exit 65) naming it.
                let drill = try await shell(pgbackd, ["drill", newerId, "--json", "--log-level", "info", "--config", config])
                if manifestFault {
                    let named = drill.status == 65 && drill.stderr.contains(object) && drill.stderr.contains("changed after pgbackd wrote it")
                    #expect(named, "\(fault): drill exit \(drill.status): \(drill.stderr)")
                    outcome.note("drill", named)
                } else {
                    let report = try? JSONSerialization.jsonObject(with: Data(drill.stdout.utf8)) as? [String: Any]
                    let checks = ((report?["databases"] as? [[String: Any]]) ?? []).flatMap { ($0["checks"] as? [[String: Any]]) ?? [] }
                        + ((report?["checks"] as? [[String: Any]]) ?? [])
                    let failed = checks.filter { $0["passed"] as? Bool == false }
                    let names = failed.contains { check in
                        check["name"] as? String == "artifacts" && (check["summary"] as? String ?? "").contains(object)
                            && ((check["evidence"] as? [[String: String]]) ?? []).contains { $0["object"] == object && $0["problem"] != nil }
                    }
                    let named = drill.status == 1 && report?["passed"] as? Bool == false && names
                    #expect(named, "\(fault): drill exit \(drill.status), failed checks \(failed): \(drill.stderr)")
                    outcome.note("drill", named)
                }
                #expect(manifestFault || !DrillScratch.created(inLog: drill.stderr).isEmpty, "the drill's log names its scratch database")
                let scratch = try await DrillScratch.leftOver(postgres, log: drill.stderr)
                #expect(scratch.isEmpty, "\(fault): the drill left \(scratch)")
                tally.leftOver += scratch.count

                // restore: exit 65 naming the object, and no database created.
                let target = "restore_\(UUID().uuidString.prefix(8).lowercased())"
                cleanup.dropDatabase(target)
                let restore = try await shell(pgbackd, ["restore", newerId, "--database", fixture.name, "--target-db", target, "--config", config])
                let restoreNamed = restore.status == 65 && restore.stderr.contains(object)
                    && (!manifestFault || restore.stderr.contains("changed after pgbackd wrote it"))
                #expect(restoreNamed, "\(fault): restore exit \(restore.status): \(restore.stderr)")
                outcome.note("restore", restoreNamed)
                let created = try await databaseExists(postgres, target)
                #expect(!created, "\(fault): the failed restore left \(target)")
                if created { tally.leftOver += 1 }

                // wal-check reads every manifest (for base backups' WAL ranges).
                if manifestFault {
                    let check = try await shell(pgbackd, ["wal-check", "--config", config])
                    let named = check.status == 65 && check.stderr.contains(object)
                    #expect(named, "\(fault): wal-check exit \(check.status): \(check.stdout) \(check.stderr)")
                    outcome.note("wal-check", named)
                }
                return outcome
            }

            func putBack() async throws {
                _ = try await storage.put(key: dumpKey, bytes: dumpBytes)
                _ = try await storage.put(key: manifestKey, bytes: manifestBytes)
            }

            // One bit flipped: in the middle of the dump, then (long) at seeded random places,
            // the gzip header and trailer included.
            var generator = CorruptionRandom(seed: 16)
            let flips = [dumpBytes.count / 2] + (1..<ReliabilityScale.pick(ci: 1, long: 8)).map { _ in Int.random(in: 0..<dumpBytes.count, using: &generator) }
            for offset in flips {
                var flipped = dumpBytes
                flipped[offset] ^= UInt8(1) << UInt8(offset % 8)
                _ = try await storage.put(key: dumpKey, bytes: flipped)
                tally.record("bit flip", try await detect("bit flip at \(offset)", object: dump.key, manifestFault: false))
                try await putBack()
            }

            // The dump's end gone: 100 bytes, then (long) other lengths down to one byte.
            for cut in [100] + Array([1, 8, 4096, dumpBytes.count / 2].prefix(ReliabilityScale.pick(ci: 0, long: 4))) {
                _ = try await storage.put(key: dumpKey, bytes: Array(dumpBytes.dropLast(cut)))
                tally.record("truncation", try await detect("truncation by \(cut) bytes", object: dump.key, manifestFault: false))
                try await putBack()
            }

            // The same database's dump from the other backup, in its place.
            _ = try await storage.put(key: dumpKey, bytes: otherBytes)
            tally.record("swapped object", try await detect("swapped object", object: dump.key, manifestFault: false))
            try await putBack()

            // The manifest edited by hand: the dump's checksum, its size, a row count.
            let edits: [(String, String, String)] = [
                ("checksum", "\"raw_sha256\" : \"\(dump.rawSha256)\"", "\"raw_sha256\" : \"\(String(dump.rawSha256.reversed()))\""),
                ("size", "\"stored_size\" : \(dump.storedSize)", "\"stored_size\" : \(dump.storedSize + 1)"),
                ("row count", "\"\(table)\" : \(rows)", "\"\(table)\" : \(rows + 1)"),
            ]
            for (what, from, to) in edits {
                #expect(manifestText.components(separatedBy: from).count == 2, "the manifest holds \(from) once")
                _ = try await storage.put(key: manifestKey, bytes: Array(manifestText.replacingOccurrences(of: from, with: to).utf8))
                tally.record("manifest edit", try await detect("manifest edit (\(what))", object: manifestKey.replacingOccurrences(of: "\(repository.stanza)/", with: ""), manifestFault: true))
                try await putBack()
            }

            // Put right, the backup is whole again: a green drill and a restore equal to the
            // source (as it was at the newer backup: the fixture has not changed since).
            let clean = try await shell(pgbackd, ["drill", newerId, "--config", config])
            #expect(clean.status == 0, "the repaired backup drills green: \(clean.stdout.suffix(1500)) \(clean.stderr)")
            let target = "restore_\(UUID().uuidString.prefix(8).lowercased())"
            cleanup.dropDatabase(target)
            let restored = try await shell(pgbackd, ["restore", newerId, "--database", fixture.name, "--target-db", target, "--config", config])
            #expect(restored.status == 0, "\(restored.stderr)")
            let source = try await fixture.tableFingerprints(), copy = try await fixture.tableFingerprints(database: target)
            #expect(copy == source)
            tally.lost += copy == source ? 0 : 1
            tally.rowsVerified += Int(try await fixture.rowCounts(database: target).values.reduce(0, +))
            tally.objectsVerified += newerManifest.artifacts.count + 1
            tally.runs += 2
        }

        func databaseExists(_ postgres: TestServices.Postgres, _ name: String) async throws -> Bool {
            try await shell("\(postgres.binDirectory)/psql", ["-XAt", "-h", postgres.host, "-p", postgres.port, "-U", postgres.user, "-d", "postgres",
                                                            "-c", "select count(*) from pg_database where datname = '\(name)'"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines) != "0"
        }

        // MARK: WAL

        /// Real segments from a cluster archiving through wal-push, in its file repository and
        /// copied into an S3 one: a segment's bytes stored under the previous segment's name
        /// (with their own checksum in it, so the checksum cannot tell), a flipped byte and a
        /// truncated object. wal-fetch must refuse each (exit 126: PostgreSQL stops recovery
        /// instead of ending it early at a record it takes for the end of WAL) naming the
        /// object, and wal-check must list the misnamed segment.
        @Test(.enabled(if: TestServices.postgresEnabled), .timeLimit(.minutes(5)))
        func walSegments() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = TestServices.s3
            if TestServices.isCI { _ = try TestServices.requireS3() }
            try await withCleanup { cleanup in
                let repository = try temporaryDirectory("corruption-wal")
                cleanup.remove(repository)
                try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                    type = "file"
                    path = "\(repository)"
                    stanza = "test"
                    """) { cluster, pitr in
                    try cluster.sql("create table t (i int, pad text)")
                    for round in 0..<3 {
                        try cluster.sql("insert into t select g, md5(g::text) from generate_series(\(round * 20_000), \(round * 20_000 + 19_999)) g")
                        try cluster.sql("select pg_switch_wal()")
                    }
                    let archived = try await eventually(attempts: 600) {
                        (Int(try cluster.sql("select archived_count from pg_stat_archiver")) ?? 0) >= 3
                    }
                    try #require(archived, "PostgreSQL did not archive 3 segments")
                    let watch = try await shell(pitr.pgbackd, ["wal-watch", "--once", "--config", pitr.config])
                    try #require(watch.status == 0, "wal-watch: \(watch.stderr)")

                    let fileConfiguration = try Configuration.load(path: pitr.config)
                    let fileRepository = try await RepositoryFactory.open(fileConfiguration, logger: BackupHarness.logger)
                    let fileArchive = WALArchive(repository: fileRepository, level: 1, logger: BackupHarness.logger)
                    // The archived segments, in order: three consecutive ones are what the faults need.
                    let files = try await fileRepository.storage.list(prefix: fileRepository.walPrefix)
                        .compactMap { fileRepository.layout.walObjectName(ofKey: $0.key)?.file }.filter { $0.kind == .segment }.sorted()
                    try #require(files.count >= 3, "\(files)")
                    var segments: [(WALFileName, [UInt8])] = []
                    for file in files.prefix(3) { segments.append((file, try await fileArchive.fetch(file))) }
                    #expect(Set(segments.map(\.0)).count == 3)

                    let tally = Tally()
                    try await walFaults(config: pitr.config, pgbackd: pitr.pgbackd, archive: fileArchive, segments: segments, tally: tally, directory: cluster.base)
                    ReliabilityLedger.record(tally.figures("WAL segments, file repository"))

                    guard let s3 else { return }
                    let directory = try temporaryDirectory("corruption-wal-s3")
                    cleanup.remove(directory)
                    let config = "\(directory)/pgbackd.toml"
                    let prefix = "corruption-wal-\(UUID().uuidString.prefix(8).lowercased())"
                    try BackupHarness.s3TOML(postgres, s3, prefix: prefix, databases: ["postgres"]).write(toFile: config, atomically: true, encoding: .utf8)
                    let s3Repository = try await RepositoryFactory.open(try Configuration.load(path: config), logger: BackupHarness.logger)
                    let s3Archive = WALArchive(repository: s3Repository, level: 1, logger: BackupHarness.logger)
                    for (file, bytes) in segments { _ = try await s3Archive.push(file, bytes: bytes) }
                    let s3Tally = Tally()
                    do {
                        try await walFaults(config: config, pgbackd: pgbackdExecutable, archive: s3Archive, segments: segments, tally: s3Tally, directory: directory)
                    } catch {
                        await Self.removeObjects(config)
                        throw error
                    }
                    await Self.removeObjects(config)
                    ReliabilityLedger.record(s3Tally.figures("WAL segments, S3 repository (moto)"))
                }
            }
        }

        func walFaults(config: String, pgbackd: String, archive: WALArchive, segments: [(WALFileName, [UInt8])], tally: Tally, directory: String) async throws {
            let storage = archive.repository.storage
            let target = "\(directory)/RECOVERYXLOG"
            let (first, firstBytes) = segments[0], (second, secondBytes) = segments[1], (third, _) = segments[2]
            let firstObject = try await archive.locate(first), secondObject = try await archive.locate(second), thirdObject = try await archive.locate(third)
            let firstStored = try await storage.getAll(key: firstObject.key)
            let secondStored = try await storage.getAll(key: secondObject.key)
            let thirdStored = try await storage.getAll(key: thirdObject.key)

            func fetchRefuses(_ file: WALFileName, naming key: String, _ words: [String]) async throws -> Bool {
                try? FileManager.default.removeItem(atPath: target)
                // A copy an earlier call prefetched (checked against its checksum) would be served
                // instead of the damaged object: this asks the archive.
                try? FileManager.default.removeItem(atPath: WALPrefetcher.directory(forTarget: target))
                let fetch = try await shell(pgbackd, ["wal-fetch", file.name, target, "--config", config])
                let named = fetch.status == 126 && fetch.stderr.contains(key) && words.allSatisfy { fetch.stderr.contains($0) }
                #expect(named, "wal-fetch \(file.name): exit \(fetch.status): \(fetch.stderr)")
                #expect(!FileManager.default.fileExists(atPath: target), "nothing is handed to PostgreSQL")
                return named && !FileManager.default.fileExists(atPath: target)
            }

            // The second segment's bytes under the first one's name, with their own checksum in
            // it (a hand-made copy): the checksum matches, the page header does not.
            let misnamedKey = archive.repository.walKey(first, sha256: WALObjectName.sha256(of: secondBytes))
            try await storage.delete(key: firstObject.key)
            _ = try await storage.put(key: misnamedKey, bytes: secondStored)
            var outcome = Outcome()
            if try await fetchRefuses(first, naming: misnamedKey, ["is not \(first.name)", second.name]) { outcome.detectedBy.append("wal-fetch") } else { outcome.missedBy.append("wal-fetch") }
            let check = try await shell(pgbackd, ["wal-check", "--config", config])
            let checkNamed = check.status == 1 && check.stdout.contains("MISNAMED") && check.stdout.contains(misnamedKey) && check.stdout.contains(secondObject.key)
            #expect(checkNamed, "wal-check: exit \(check.status): \(check.stdout) \(check.stderr)")
            if checkNamed { outcome.detectedBy.append("wal-check") } else { outcome.missedBy.append("wal-check") }
            tally.record("WAL under the wrong name", outcome)
            try await storage.delete(key: misnamedKey)
            _ = try await storage.put(key: firstObject.key, bytes: firstStored)

            // A flipped byte and a truncation (wal-check reads names only: wal-fetch is the reader).
            var flipped = thirdStored
            flipped[flipped.count / 2] ^= 0x01
            _ = try await storage.put(key: thirdObject.key, bytes: flipped)
            var flip = Outcome()
            if try await fetchRefuses(third, naming: thirdObject.key, ["corrupt"]) { flip.detectedBy.append("wal-fetch") } else { flip.missedBy.append("wal-fetch") }
            tally.record("bit flip", flip)
            _ = try await storage.put(key: thirdObject.key, bytes: Array(thirdStored.dropLast(100)))
            var cut = Outcome()
            if try await fetchRefuses(third, naming: thirdObject.key, ["corrupt"]) { cut.detectedBy.append("wal-fetch") } else { cut.missedBy.append("wal-fetch") }
            tally.record("truncation", cut)
            _ = try await storage.put(key: thirdObject.key, bytes: thirdStored)

            // Put right: every segment comes back with its own bytes, and wal-check is clean.
            for (file, bytes) in segments {
                try? FileManager.default.removeItem(atPath: target)
                let fetch = try await shell(pgbackd, ["wal-fetch", file.name, target, "--config", config])
                #expect(fetch.status == 0, "wal-fetch \(file.name): \(fetch.stderr)")
                let back = (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: target)))) ?? []
                #expect(back == bytes)
                if back != bytes { tally.lost += 1 }
                tally.objectsVerified += 1
                tally.runs += 1
            }
            try? FileManager.default.removeItem(atPath: target)
            _ = firstBytes
            let clean = try await shell(pgbackd, ["wal-check", "--config", config])
            #expect(clean.status == 0, "\(clean.stdout) \(clean.stderr)")
        }
    }
}

/// A small seeded generator (SplitMix64), so a long run's fault places are the same each time.
private struct CorruptionRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
