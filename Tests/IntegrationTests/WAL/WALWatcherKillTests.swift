import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

/// Issue #4, acceptance 2: the real `pgbackd wal-watch` against a real S3 server (moto), killed
/// with SIGKILL at random points in 20 runs and restarted each time, loses no segment and never
/// deletes a spooled segment before its upload is confirmed.
@Suite(.serialized) struct WALWatcherKillTests {
    static let segments = 32
    static let segmentBytes = 16 << 20
    static let runs = 20

    @Test(.enabled(if: TestServices.s3 != nil || TestServices.isCI), .timeLimit(.minutes(10)))
    func sigkillAtRandomPointsLosesNothing() async throws {
        let s3 = try TestServices.requireS3()
        try await withCleanup { cleanup in
            let directory = try temporaryDirectory("wal-kill")
            cleanup.remove(directory)
            let spool = "\(directory)/spool"
            let prefix = "wal-kill-\(UUID().uuidString.prefix(8).lowercased())"
            let config = "\(directory)/pgbackd.toml"
            let toml = """
                [repository]
                type = "s3"
                stanza = "test"
                [repository.s3]
                endpoint = "\(s3.endpoint)"
                bucket = "\(s3.bucket)"
                region = "\(s3.region)"
                prefix = "\(prefix)"
                access_key_id = "\(s3.accessKeyID)"
                secret_access_key = "\(s3.secretAccessKey)"
                part_size_mib = 5
                parallel_parts = 2
                [wal]
                spool_dir = "\(spool)"
                parallel_uploads = 3
                rescan_seconds = 1
                \(TestServices.encryptionTOML)
                """
            try toml.write(toFile: config, atomically: true, encoding: .utf8)
            let configuration = try Configuration.parse(toml, file: config)
            let repository = try await RepositoryFactory.open(configuration, logger: BackupHarness.logger)
            do {
                try await run(config: config, spool: spool, directory: directory, repository: repository)
            } catch {
                await Self.removeObjects(repository)
                throw error
            }
            await Self.removeObjects(repository)
        }
    }

    static func removeObjects(_ repository: Repository) async {
        for object in (try? await repository.storage.list(prefix: "\(repository.stanza)/")) ?? [] {
            try? await repository.storage.delete(key: object.key)
        }
        _ = try? await repository.storage.abortIncompleteUploads(prefix: "\(repository.stanza)/", startedBefore: Date())
    }

    func run(config: String, spool: String, directory: String, repository: Repository) async throws {
        let archive = WALArchive(repository: repository, level: 1, logger: BackupHarness.logger)
        // Synthetic segments: valid names (crossing a log boundary), random content. The
        // originals stay in `pg_wal` to compare with.
        let walSpool = WALSpool(directory: spool, maxBytes: 1 << 40)
        let source = "\(directory)/pg_wal"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        var names: [WALFileName] = []
        for index in 0..<Self.segments {
            let number = 0xF0 + index // 0xF0...0xFF on log 0, then log 1
            let name = WALFileName("00000001" + WALFileName.hex8(UInt32(number >> 8)) + WALFileName.hex8(UInt32(number & 0xFF)))!
            let bytes = random.readData(ofLength: Self.segmentBytes)
            try #require(bytes.count == Self.segmentBytes)
            try bytes.write(to: URL(fileURLWithPath: "\(source)/\(name.name)"))
            _ = try await walSpool.push(source: "\(source)/\(name.name)")
            names.append(name)
        }
        try random.close()

        var verified: Set<WALFileName> = []
        /// Every segment gone from the spool is archived with exactly its bytes. Objects
        /// are never overwritten, so each is downloaded and compared once.
        func checkInvariant(_ when: String) async throws {
            let spooled = Set(try FileManager.default.contentsOfDirectory(atPath: spool).compactMap { WALFileName($0) })
            for name in names where !spooled.contains(name) && !verified.contains(name) {
                let bytes: [UInt8]
                do {
                    bytes = try await archive.fetch(name)
                } catch {
                    Issue.record("\(when): \(name.name) left the spool but is not archived: \(error)")
                    continue
                }
                let original = try Data(contentsOf: URL(fileURLWithPath: "\(source)/\(name.name)"))
                #expect(Data(bytes) == original, "\(when): \(name.name) is archived with other bytes")
                verified.insert(name)
            }
        }

        func spooled() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: spool).filter { WALFileName($0) != nil }.count
        }
        var killedWhileWorking = 0
        for run in 1...Self.runs {
            let before = try spooled()
            let process = try launchPgbackd(["wal-watch", "--config", config])
            // Anywhere from start-up (config, repository) to several uploads in, but no further
            // than this run's share of what is left: a fast watcher must not drain the spool
            // in the first runs and leave the later kills nothing to interrupt (CI saw 7 of 20).
            let share = max(1, before / (Self.runs - run + 1))
            let deadline = ContinuousClock.now + .milliseconds(Int.random(in: 50...1200))
            while ContinuousClock.now < deadline, try before - spooled() < share {
                try await Task.sleep(for: .milliseconds(10))
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "run \(run): wal-watch ended on its own (\(process.terminationStatus))")
            if before > 0 { killedWhileWorking += 1 }
            try await checkInvariant("after kill \(run)")
        }
        #expect(killedWhileWorking >= 10, "most kills must hit a watcher with work to do; make the runs shorter")

        // The last run finishes the job, and stops cleanly on SIGTERM, once it has started (a
        // SIGTERM before its signal handlers exist is a kill, not a stop).
        let log = "\(directory)/wal-watch.log"
        let process = try launchPgbackd(["wal-watch", "--config", config, "--log-level", "info"], log: log)
        let drained = try await eventually(attempts: 3000) {
            try spooled() == 0 && String(contentsOfFile: log, encoding: .utf8).contains("WAL watcher started")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: spool)
        #expect(drained, "the spool was not shipped: \(left)")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "SIGTERM is a graceful stop")

        try await checkInvariant("at the end")
        #expect(verified.count == Self.segments, "every segment archived with exactly its bytes")
        let objects = try await repository.storage.list(prefix: repository.walPrefix)
        #expect(objects.count == Self.segments, "\(objects.map(\.key))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool).filter { !$0.hasPrefix(".") }.isEmpty)
    }
}
