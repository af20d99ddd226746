import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A `pgbackd-restore-XXXXXX` directory in the staging area (`drill.staging_dir`), where a dump
/// is staged for pg_restore, held under an exclusive `flock` while in use.
///
/// A drill or restore killed mid-way (SIGKILL, OOM, a crash) leaves its directory behind, with a
/// staged dump that can be as large as the database. Whoever creates the next one removes every
/// such directory whose lock it can take: its owner is gone. One without a lock file (the moment
/// between mkdtemp and the lock, or a version before locks) is only removed once an hour old.
final class StagingDirectory: Sendable {
    static let prefix = "pgbackd-restore-"
    static let lockName = ".pgbackd-lock"

    let path: String
    private let lock: Int32

    init(in parent: String, logger: Logger) throws {
        Self.removeAbandoned(in: parent, logger: logger)
        var template = Array((parent + "/" + Self.prefix + "XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else {
            throw StagingError(message: "cannot create a directory in \(parent): \(String(cString: strerror(errno))); set drill.staging_dir")
        }
        path = String(cString: created)
        lock = open(path + "/" + Self.lockName, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            let reason = String(cString: strerror(errno))
            if lock >= 0 { close(lock) }
            try? FileManager.default.removeItem(atPath: path)
            throw StagingError(message: "cannot lock the staging directory \(path): \(reason)")
        }
    }

    /// Removes the directory (still holding its lock), then lets go of the lock.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
        close(lock)
    }

    static func removeAbandoned(in parent: String, logger: Logger, now: Date = Date()) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for name in names where name.hasPrefix(prefix) {
            let directory = parent + "/" + name
            let lockPath = directory + "/" + lockName
            let fd = open(lockPath, O_RDWR | O_CLOEXEC)
            let openError = errno
            if fd < 0 {
                guard openError == ENOENT else { continue }
                let modified = (try? FileManager.default.attributesOfItem(atPath: directory)[.modificationDate] as? Date) ?? now
                guard now.timeIntervalSince(modified) > 3600 else { continue }
            } else {
                defer { close(fd) }
                // Held: a running drill or restore owns it.
                guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            }
            do {
                try FileManager.default.removeItem(atPath: directory)
                logger.notice("removed a staging directory left by a drill or restore that did not finish", metadata: ["restore.staging": "\(directory)"])
            } catch {
                logger.warning("cannot remove an abandoned staging directory", metadata: ["restore.staging": "\(directory)", "restore.error": "\(error)"])
            }
        }
    }
}
