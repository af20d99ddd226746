import Foundation
import ObjectStorage
@testable import PGBackupCore
import Synchronization
import Testing

/// Issue #5, acceptance 1: the real `pgbackd run` with a NOTIFY_SOCKET this test listens on, and
/// `@every` schedules (a pgbackd extension of the cron syntax) so it runs in well under 2 minutes.
@Suite(.serialized) struct DaemonRunTests {
    /// A datagram socket standing in for systemd's notification socket.
    final class NotifySocket: Sendable {
        let path: String
        let fd: Int32
        let messages = Mutex<[String]>([])
        let closed = Mutex(false)

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            try #require(bound == 0)
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let thread = Thread { [self] in
                var buffer = [UInt8](repeating: 0, count: 4096)
                while !closed.withLock({ $0 }) {
                    let count = recv(fd, &buffer, buffer.count, 0)
                    if count > 0 {
                        let message = String(decoding: buffer.prefix(count), as: UTF8.self)
                        messages.withLock { $0.append(message) }
                    }
                }
                close(fd)
            }
            thread.start()
        }

        func received(_ prefix: String) -> [String] { messages.withLock { $0.filter { $0.hasPrefix(prefix) } } }
        func stop() { closed.withLock { $0 = true } }
    }

    func launch(config: String, notifySocket: String, log: String) throws -> Process {
        try launchDaemon(config: config, log: log, environment: ["NOTIFY_SOCKET": notifySocket, "WATCHDOG_USEC": "1000000"],
                         removing: ["WATCHDOG_PID"])
    }

    func status(_ config: String) async throws -> [String: Any] {
        let result = try await shell(pgbackdExecutable, ["status", "--json", "--config", config])
        guard result.status == 0, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            Issue.record("status --json failed (\(result.status)): \(result.stderr)")
            return [:]
        }
        return object
    }

    func job(_ status: [String: Any], _ name: String) -> [String: Any] {
        ((status["jobs"] as? [[String: Any]]) ?? []).first { $0["job"] as? String == name } ?? [:]
    }

    func toml(_ postgres: TestServices.Postgres, repository: String, database: String, state: String, spool: String,
              binDirectory: String? = nil, schedule: String) -> String {
        BackupHarness.fileTOML(postgres, repository: repository, databases: [database], binDirectory: binDirectory, extra: """
            [schedule]
            \(schedule)
            [daemon]
            state_dir = "\(state)"
            stop_timeout_seconds = 3
            [wal]
            spool_dir = "\(spool)"
            rescan_seconds = 1
            """)
    }

    /// Objects of backups without a manifest: half-committed leftovers (as the storage lists
    /// them; an empty directory a file repository keeps is no object). Encrypted, an object is
    /// `<key>.enc`: its key is the name without the suffix.
    func uncommitted(_ repository: String) async throws -> [String] {
        let storage = FileStorage(root: repository)
        let objects = try await storage.list(prefix: "test/backups/").map { RepositoryObjects.key(file: $0.key) }
        let committed = Set(objects.filter { $0.hasSuffix("/manifest.json") }.map { $0.split(separator: "/")[2] })
        return objects.filter { !committed.contains($0.split(separator: "/")[2]) }
    }

    @Test(.enabled(if: TestServices.postgresEnabled), .timeLimit(.minutes(3)))
    func theDaemonRunsSchedulesReloadsAndStopsCleanly() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let fixture = try await DaylogFixture.create(postgres, entries: 300)
            cleanup.dropDatabase(fixture.name)
            let directory = try temporaryDirectory("daemon")
            cleanup.remove(directory)
            let repository = "\(directory)/repo", state = "\(directory)/state", spool = "\(directory)/spool"
            try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
            let config = "\(directory)/pgbackd.toml"
            let original = toml(postgres, repository: repository, database: fixture.name, state: state, spool: spool, schedule: """
                backup = "@every 4s"
                drill = "@every 6s"
                """)
            try original.write(toFile: config, atomically: true, encoding: .utf8)
            let notify = try NotifySocket(path: "\(directory)/notify.sock")
            defer { notify.stop() }
            let log = "\(directory)/daemon.log"
            let daemon = try launch(config: config, notifySocket: notify.path, log: log)
            defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }
            let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

            // READY, STATUS and WATCHDOG arrive.
            #expect(try await eventually(attempts: 150) { !notify.received("READY=1").isEmpty }, "no READY=1; log: \(logText())")
            #expect(try await eventually(attempts: 50) { !notify.received("STATUS=").isEmpty })
            #expect(try await eventually(attempts: 50) { !notify.received("WATCHDOG=1").isEmpty })
            #expect(notify.received("STATUS=").contains { $0.contains("next:") && $0.contains("backup at") })

            // Scheduled backups and drills run and appear in `status --json`.
            let ran = try await eventually(attempts: 600) {
                let status = try await self.status(config)
                return self.job(status, "backup")["last_success"] != nil && self.job(status, "drill")["last_success"] != nil
            }
            #expect(ran, "no successful backup and drill; log: \(logText())")
            let status = try await self.status(config)
            #expect(status["verified_backup_id"] is String)
            #expect((job(status, "backup")["last_success"] as? [String: Any])?["backup_id"] is String)
            #expect(job(status, "backup")["next_run"] is String)
            #expect(FileManager.default.fileExists(atPath: "\(state)/state.json"))

            // A second daemon on the same repository exits with the lock error, naming the pid.
            let second = try await shell(pgbackdExecutable, ["run", "--config", config])
            #expect(second.status == 75)
            #expect(second.stderr.contains("pid \(daemon.processIdentifier)"), "\(second.stderr)")
            #expect(second.stderr.contains("\(state)/daemon-"))

            // SIGHUP with a broken configuration: rejected, logged, the old one kept.
            try (original + "\n[metrics]\nlisen = \"x\"\n").write(toFile: config, atomically: true, encoding: .utf8)
            kill(daemon.processIdentifier, SIGHUP)
            #expect(try await eventually(attempts: 50) { logText().contains("configuration reload rejected") }, "\(logText())")
            #expect(logText().contains("did you mean 'listen'"))
            #expect(try await eventually(attempts: 50) { !notify.received("RELOADING=1").isEmpty })
            #expect(notify.received("RELOADING=1").allSatisfy { $0.contains("MONOTONIC_USEC=") })
            #expect(daemon.isRunning)

            // SIGHUP with a good one applies it: retention joins, the drill goes, and pg_dump
            // becomes one that stalls mid-upload.
            let marker = "\(directory)/pg_dump-started"
            let slow = try BackupHarness.wrappedPgDump(postgres, script: """
                touch "\(marker)"
                "$REAL" "$@" | { head -c 65536; sleep 60; cat; }
                """)
            try toml(postgres, repository: repository, database: fixture.name, state: state, spool: spool, binDirectory: slow, schedule: """
                backup = "@every 3s"
                retention = "@every 2s"
                """).write(toFile: config, atomically: true, encoding: .utf8)
            kill(daemon.processIdentifier, SIGHUP)
            #expect(try await eventually(attempts: 50) { logText().contains("configuration reloaded") }, "\(logText())")
            let retentionRan = try await eventually(attempts: 100) {
                self.job(try await self.status(config), "retention")["last_success"] != nil
            }
            #expect(retentionRan)

            // SIGTERM during an upload: ends within the stop timeout, nothing half-committed.
            #expect(try await eventually(attempts: 200) { FileManager.default.fileExists(atPath: marker) })
            try await Task.sleep(for: .milliseconds(500))
            let stopAt = ContinuousClock.now
            kill(daemon.processIdentifier, SIGTERM)
            #expect(try await eventually(attempts: 300) { !daemon.isRunning }, "daemon did not stop; log: \(logText())")
            let stopTook = ContinuousClock.now - stopAt
            #expect(stopTook < .seconds(3 + 10), "stop took \(stopTook)")
            #expect(daemon.terminationStatus == 0, "log: \(logText())")
            #expect(try await eventually(attempts: 20) { !notify.received("STOPPING=1").isEmpty })
            #expect(logText().contains("stop timeout reached; cancelling running jobs"))
            let leftovers = try await uncommitted(repository)
            #expect(leftovers.isEmpty, "half-committed: \(leftovers)")
            let saved = try #require(try DaemonState.load(stateDirectory: state))
            #expect(saved.history(.backup).lastRun?.outcome == .cancelled)

            // The next run commits, and still nothing is half there.
            try original.write(toFile: config, atomically: true, encoding: .utf8)
            let next = try await shell(pgbackdExecutable, ["backup", "--config", config])
            #expect(next.status == 0, "\(next.stderr)")
            #expect(try await uncommitted(repository).isEmpty)
        }
    }
}
