import Foundation
import Logging
@testable import PGBackupCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A killed base or upgrade drill leaves its throw-away cluster in `drill.staging_dir`, its
/// server still running (pg_ctl started it, so it is no child of pgbackd). The next drill stops
/// that server and removes the directory, and leaves alone what a running drill holds, what
/// `--keep` kept, and what is not a drill cluster. (Found by the kill suite,
/// Reliability/Kills: before, the server and the restored cluster stayed for good.)
struct ClusterDirectoryLockTests {
    let logger = Logger(label: "test")

    func makeParent() throws -> String {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-cluster-lock-test-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        return parent
    }

    func cluster(_ parent: String, _ name: String, withLock: Bool, age: TimeInterval = 0) throws -> String {
        let directory = "\(parent)/\(name)"
        try FileManager.default.createDirectory(atPath: "\(directory)/data", withIntermediateDirectories: true)
        if withLock { _ = FileManager.default.createFile(atPath: "\(directory)/\(ClusterDirectoryLock.lockName)", contents: nil) }
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: directory)
        return directory
    }

    @Test func theNextDrillStopsAKilledDrillsServerAndRemovesItsClusterOnly() throws {
        let parent = try makeParent()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let exists = { FileManager.default.fileExists(atPath: $0) }

        // A killed drill's cluster, with a "server" running in its data directory.
        let killed = try cluster(parent, "pgbackd-drill-killed", withLock: true)
        let server = Process()
        // A stand-in for the postmaster that, like it, acts on SIGQUIT (whatever this test
        // process's children inherit).
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-c", "import signal, time; signal.signal(signal.SIGQUIT, signal.SIG_DFL); "
                            + "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGQUIT]); open('ready', 'w').close(); time.sleep(300)"]
        server.currentDirectoryURL = URL(fileURLWithPath: "\(killed)/data")
        try server.run()
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
        for _ in 0..<300 where !FileManager.default.fileExists(atPath: "\(killed)/data/ready") { usleep(20_000) }
        try "\(server.processIdentifier)\n\(killed)/data\n".write(toFile: "\(killed)/data/postmaster.pid", atomically: true, encoding: .utf8)
        // A postmaster.pid naming a process that runs elsewhere (a reused pid): not signalled.
        let reused = try cluster(parent, "pgbackd-scratch-reused", withLock: true)
        try "\(getpid())\n".write(toFile: "\(reused)/data/postmaster.pid", atomically: true, encoding: .utf8)

        let running = try cluster(parent, "pgbackd-drill-running", withLock: false)
        let lock = try ClusterDirectoryLock(base: running)
        let kept = try cluster(parent, "pgbackd-drill-kept", withLock: true)
        _ = FileManager.default.createFile(atPath: "\(kept)/\(ClusterDirectoryLock.keptName)", contents: nil)
        let justCreated = try cluster(parent, "pgbackd-scratch-new", withLock: false)
        let oldWithoutLock = try cluster(parent, "pgbackd-scratch-old", withLock: false, age: 7200)
        let unrelated = try cluster(parent, "something-else", withLock: true)

        ClusterDirectoryLock.removeAbandoned(in: parent, logger: logger)
        server.waitUntilExit()
        #expect(server.terminationReason == .uncaughtSignal && server.terminationStatus == SIGQUIT, "the abandoned server gets an immediate shutdown")
        #expect(!exists(killed))
        #expect(!exists(reused), "its directory goes; the process the pid names now is not ours and lives on")
        #expect(!exists(oldWithoutLock))
        #expect(exists(running), "a directory whose lock is held belongs to a running drill")
        #expect(exists(kept), "a --keep cluster stays")
        #expect(exists(justCreated), "one without a lock may be between mkdir and its lock")
        #expect(exists(unrelated))

        lock.markKept()
        lock.release()
        ClusterDirectoryLock.removeAbandoned(in: parent, logger: logger)
        #expect(exists(running), "kept when its drill ended with --keep")
    }

    /// A program the killed drill ran (tar extracting the backup) goes on writing into the
    /// cluster directory: it is stopped before the directory is removed, and a removal that
    /// fails half-way keeps the lock file, so the next drill tries again. (Found by the kill
    /// suite's long run: the directory stayed, its lock file deleted, so no later drill took it.)
    @Test func aProgramStillWritingInAKilledDrillsClusterIsStoppedAndTheClusterRemoved() throws {
        let parent = try makeParent()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let killed = try cluster(parent, "pgbackd-drill-tar", withLock: true)
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", "touch ready; i=0; while true; do i=$((i+1)); mkdir -p d$i && echo x > d$i/f; done"]
        writer.currentDirectoryURL = URL(fileURLWithPath: "\(killed)/data")
        try writer.run()
        defer { if writer.isRunning { kill(writer.processIdentifier, SIGKILL) } }
        for _ in 0..<300 where !FileManager.default.fileExists(atPath: "\(killed)/data/ready") { usleep(20_000) }

        ClusterDirectoryLock.removeAbandoned(in: parent, logger: logger)
        #expect(!writer.isRunning || { usleep(500_000); return !writer.isRunning }(), "the program writing in the killed drill's cluster was left running")
        #expect(!FileManager.default.fileExists(atPath: killed))
    }

    /// The kill suite's long run killed a base drill between the mkdir of its directory and its
    /// lock: the lockless directory waited an hour. Now a directory is made under a hidden name
    /// with its lock inside and renamed, so a visible one always has its lock, and a hidden one
    /// a kill left goes once a minute old.
    @Test func aDirectoryIsMadeWithItsLockHeldAndOneKilledBeingMadeGoesAfterAMinute() throws {
        let parent = try makeParent()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let exists = { FileManager.default.fileExists(atPath: $0) }

        let made = try ClusterDirectoryLock.create(base: "\(parent)/pgbackd-drill-made")
        #expect(exists("\(made.base)/\(ClusterDirectoryLock.lockName)"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["pgbackd-drill-made"], "nothing hidden is left once made")
        ClusterDirectoryLock.removeAbandoned(in: parent, logger: logger)
        #expect(exists(made.base), "held: a running drill's")

        let fresh = try cluster(parent, "\(ClusterDirectoryLock.newPrefix)pgbackd-drill-fresh", withLock: false, age: 10)
        let stale = try cluster(parent, "\(ClusterDirectoryLock.newPrefix)pgbackd-drill-stale", withLock: false, age: 120)
        let staleLocked = try cluster(parent, "\(ClusterDirectoryLock.newPrefix)pgbackd-drill-locked", withLock: true, age: 0)
        ClusterDirectoryLock.removeAbandoned(in: parent, logger: logger)
        #expect(exists(fresh), "one being made right now is left alone")
        #expect(!exists(stale), "one a kill left while it was being made goes once a minute old")
        #expect(!exists(staleLocked), "one whose lock nobody holds goes at once")

        made.release()
        ClusterDirectoryLock.removeAbandoned(in: parent, logger: logger)
        #expect(!exists(made.base), "released without removal: a killed drill's, removed by the next")
    }
}
