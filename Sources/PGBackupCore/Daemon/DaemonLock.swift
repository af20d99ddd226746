import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Another daemon already serves this repository.
public struct DaemonLockError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        /// Another live process holds the lock.
        case held
        /// The lock file could not be opened or locked for another reason (`reason`).
        case unusable
        public var description: String { rawValue }
    }

    public var code: Code { reason == nil ? .held : .unusable }
    public var lockPath: String
    public var holderPID: Int32?
    public var repository: String
    public var reason: String?

    public var description: String {
        if let reason { return "cannot take the daemon lock \(lockPath) for \(repository): \(reason)" }
        let holder = holderPID.map { "pid \($0)" } ?? "another process"
        return "another pgbackd daemon (\(holder)) already runs for \(repository): it holds the lock \(lockPath); stop it first (one daemon per repository)"
    }
}

/// One daemon per repository *on this host*: `flock(2)` on `<state_dir>/daemon-<hash>.lock`,
/// where the hash names the repository (file path or S3 endpoint/bucket/prefix, and the stanza).
/// The holder's pid is written into the file for the error message. The kernel releases the lock
/// when the process dies, however it dies, so a stale lock file is harmless.
public final class DaemonLock: Sendable {
    public let path: String
    private let descriptor: Int32

    /// A stable identity for the repository the configuration names.
    public static func repositoryIdentity(_ configuration: Configuration) -> String {
        switch configuration.repository.kind {
        case .file(let path): "file:\(path)#\(configuration.repository.stanza)"
        case .s3(let s3): "s3:\(s3.endpoint)/\(s3.bucket)/\(s3.prefix)#\(configuration.repository.stanza)"
        }
    }

    public static func path(for configuration: Configuration) -> String {
        let digest = SHA256.hash(data: Data(repositoryIdentity(configuration).utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        return "\(configuration.daemon.stateDirectory)/daemon-\(configuration.repository.stanza)-\(digest).lock"
    }

    /// Takes the lock or throws ``DaemonLockError`` at once (never waits).
    public init(configuration: Configuration) throws {
        let path = Self.path(for: configuration)
        let description = RepositoryFactory.describe(configuration) + ", stanza \(configuration.repository.stanza)"
        self.path = path
        try? FileManager.default.createDirectory(atPath: configuration.daemon.stateDirectory, withIntermediateDirectories: true)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw DaemonLockError(lockPath: path, holderPID: nil, repository: description, reason: String(cString: strerror(errno)))
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let failure = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = read(fd, &buffer, buffer.count)
            close(fd)
            if failure != EWOULDBLOCK {
                throw DaemonLockError(lockPath: path, holderPID: nil, repository: description, reason: String(cString: strerror(failure)))
            }
            let pid = count > 0 ? Int32(String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) : nil
            throw DaemonLockError(lockPath: path, holderPID: pid, repository: description, reason: nil)
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }
}
