import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The lock on a drill's throw-away cluster directory under `drill.staging_dir`
/// (`pgbackd-drill-<id>` of a base drill, `pgbackd-scratch-<id>` of an upgrade drill), held with
/// `flock` for as long as the drill runs.
///
/// A drill killed mid-way (SIGKILL, OOM, a crash) cannot stop its server or remove its directory:
/// the server (started by `pg_ctl`, so no child of pgbackd) goes on running, and the directory
/// holds a whole restored cluster. The next drill (of any kind) therefore removes every such directory whose
/// lock it can take: its server is stopped (immediate shutdown, SIGQUIT, to the postmaster of
/// `data/postmaster.pid`, when that process really runs in that data directory), then the
/// directory goes. One kept with `--keep` is marked and left alone. A drill's directory is made
/// under a hidden name (`.pgbackd-new-…`) with its lock inside, held, then renamed: a kill between
/// mkdir and the lock (the kill suite's long run hit it) leaves a hidden directory, removed once a
/// minute old; a visible one without a lock file (a version before locks) once an hour old.
final class ClusterDirectoryLock: Sendable {
    static let prefixes = ["pgbackd-drill-", "pgbackd-scratch-"]
    /// A directory being made (``create(base:)``), before it has its name.
    static let newPrefix = ".pgbackd-new-"
    static let lockName = ".pgbackd-lock"
    static let keptName = ".pgbackd-kept"

    let base: String
    private let descriptor: Int32

    /// Makes `base` (mode 0700) with its lock file inside, held: no drill ever sees `base` without it.
    static func create(base: String) throws(StagingError) -> ClusterDirectoryLock {
        let parent = (base as NSString).deletingLastPathComponent
        let hidden = parent + "/" + newPrefix + (base as NSString).lastPathComponent
        try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        guard mkdir(hidden, 0o700) == 0 else {
            throw StagingError(message: "cannot create the drill cluster directory \(hidden): \(String(cString: strerror(errno)))")
        }
        let held: ClusterDirectoryLock
        do {
            held = try ClusterDirectoryLock(base: hidden)
        } catch {
            rmdir(hidden)
            throw error
        }
        guard rename(hidden, base) == 0 else {
            let reason = String(cString: strerror(errno))
            held.release()
            try? removeTree(hidden)
            throw StagingError(message: "cannot create the drill cluster directory \(base): \(reason)")
        }
        return ClusterDirectoryLock(base: base, descriptor: held.descriptor)
    }

    private init(base: String, descriptor: Int32) {
        self.base = base
        self.descriptor = descriptor
    }

    /// Takes the lock of `base` (which exists).
    init(base: String) throws(StagingError) {
        self.base = base
        let fd = open(base + "/" + Self.lockName, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0, flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw StagingError(message: "cannot lock the drill cluster directory \(base): \(reason)")
        }
        descriptor = fd
    }

    /// Marks the directory kept (`--keep`): later drills leave it alone.
    func markKept() {
        _ = FileManager.default.createFile(atPath: base + "/" + Self.keptName, contents: nil)
    }

    func release() {
        close(descriptor)
    }

    /// Removes the directory, still locked, its lock file last: a drill killed half-way through
    /// leaves a directory the next drill can still take.
    func removeDirectory() {
        try? Self.removeTree(base)
    }

    static func removeTree(_ directory: String) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name != lockName {
            try FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        // Only an empty directory goes with its lock file: anything that appeared meanwhile keeps
        // both for the next drill.
        guard try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy({ $0 == lockName }) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: directory])
        }
        try FileManager.default.removeItem(atPath: directory)
    }

    /// Stops the servers of, and removes, the cluster directories in `parent` whose drill is gone.
    static func removeAbandoned(in parent: String, logger: Logger, now: Date = Date()) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for name in names where (prefixes + [newPrefix]).contains(where: { name.hasPrefix($0) }) {
            let directory = parent + "/" + name
            guard !FileManager.default.fileExists(atPath: directory + "/" + keptName) else { continue }
            let fd = open(directory + "/" + lockName, O_RDWR | O_CLOEXEC)
            let openError = errno
            if fd < 0 {
                guard openError == ENOENT else { continue }
                let modified = (try? FileManager.default.attributesOfItem(atPath: directory)[.modificationDate] as? Date) ?? now
                guard now.timeIntervalSince(modified) > (name.hasPrefix(newPrefix) ? 60 : 3600) else { continue }
            }
            defer { if fd >= 0 { close(fd) } }
            // Held: a running drill owns it.
            if fd >= 0, flock(fd, LOCK_EX | LOCK_NB) != 0 { continue }
            guard stopServer(dataDirectory: directory + "/data", logger: logger), stopProcesses(below: directory, logger: logger) else {
                logger.warning("cannot stop the server of an abandoned drill cluster; left in place", metadata: ["drill.cluster": "\(directory)"])
                continue
            }
            do {
                // The lock file last: a removal that fails half-way is retried by the next drill.
                try removeTree(directory)
                logger.notice("removed a drill cluster left by a drill that did not finish", metadata: ["drill.cluster": "\(directory)"])
            } catch {
                logger.warning("cannot remove an abandoned drill cluster", metadata: ["drill.cluster": "\(directory)", "drill.error": "\(error)"])
            }
        }
    }

    /// Stops the postmaster running in `dataDirectory`, if any; false when it will not stop.
    static func stopServer(dataDirectory: String, logger: Logger) -> Bool {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
              let pid = text.split(separator: "\n").first.flatMap({ Int32($0.trimmingCharacters(in: .whitespaces)) }), pid > 0 else { return true }
        // Only a process that runs in this very data directory (a pid may have been reused).
        let real = URL(fileURLWithPath: dataDirectory).resolvingSymlinksInPath().path
        guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"),
              URL(fileURLWithPath: cwd).resolvingSymlinksInPath().path == real else { return true }
        logger.notice("stopping the server of an abandoned drill cluster", metadata: ["drill.cluster_pid": "\(pid)"])
        kill(pid, SIGQUIT)
        for attempt in 0..<600 {
            guard isRunning(pid) else { return true }
            if attempt == 300 { kill(pid, SIGKILL) }
            usleep(50_000)
        }
        return !isRunning(pid)
    }

    /// Kills (SIGKILL) what still works in `directory` once its drill is gone: a program the
    /// drill ran (tar extracting the backup, pg_checksums, ...) runs in a process group of its
    /// own and outlives a killed pgbackd. False when one will not end.
    static func stopProcesses(below directory: String, logger: Logger) -> Bool {
        let real = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        let inside = { (pid: Int32) -> Bool in
            guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") else { return false }
            return cwd == real || cwd.hasPrefix(real + "/")
        }
        let mine = getpid()
        // Again until none is found: one may have started another meanwhile.
        for _ in 0..<10 {
            let found = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { $0 != mine && isRunning($0) && inside($0) }
            guard !found.isEmpty else { return true }
            logger.notice("stopping programs left running by a drill that did not finish", metadata: ["drill.cluster_pids": "\(found)"])
            for pid in found { kill(pid, SIGKILL) }
            for _ in 0..<200 where found.contains(where: isRunning) { usleep(50_000) }
        }
        return false
    }

    /// Alive and not a zombie.
    private static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }
}
