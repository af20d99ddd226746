import Dispatch
import Foundation
import OffloadedWork
import PGBackdSupport

#if canImport(Glibc)
import Glibc
#endif

/// The spool directory: where `wal-push` leaves WAL files durably, without touching the network,
/// and where the watcher picks them up. A spooled file is `<spool>/<name>`; files being written
/// have a hidden temp name (`.<name>.<pid>.tmp`) and are never shipped.
public struct WALSpool: Sendable {
    public let directory: String
    /// wal-push refuses when the spool holds this many bytes (or would, with the new file).
    public let maxBytes: Int64
    private let queue = DispatchQueue(label: "pgbackd.wal.spool")

    public init(directory: String, maxBytes: Int64) {
        self.directory = directory
        self.maxBytes = maxBytes
    }

    public init(_ configuration: WALConfiguration) {
        self.init(directory: configuration.spoolDirectory, maxBytes: configuration.maxSpoolBytes)
    }

    public enum PushOutcome: Sendable, Equatable {
        /// Copied into the spool and fsynced.
        case spooled
        /// The same name with the same bytes was spooled already.
        case alreadySpooled
    }

    public struct SpooledFile: Sendable, Hashable {
        public var file: WALFileName
        public var size: Int64
        public var modified: Date
    }

    /// Copies the WAL file at `source` into the spool: temp name, fsync, link into place (which
    /// never replaces an existing file), fsync the directory. The bytes are copied by the kernel
    /// (`sendfile`, page cache to page cache): `wal-push` never holds a segment in its memory.
    /// - Throws: ``WALError`` `.conflict` when the name is spooled with other bytes, `.spoolFull`
    ///   when the spool is at its limit.
    public func push(source: String) async throws -> PushOutcome {
        let directory = self.directory, maxBytes = self.maxBytes
        return try await offload(on: queue) { try Self.pushBlocking(source: source, directory: directory, maxBytes: maxBytes) }
    }

    /// ``push(source:)`` on the calling thread: for `wal-push`, a process that does nothing else
    /// (no executor, no dispatch queue), and for the queue above.
    public static func pushBlocking(source: String, directory: String, maxBytes: Int64) throws -> PushOutcome {
        let baseName = WALFiles.baseName(source)
        guard let file = WALFileName(baseName) else {
            throw WALError(.invalidName, message: "\(source) is not a WAL file name (segment, .history, .backup or .partial); archive_command must pass %p")
        }
        let input = try WALFiles.SourceFile(opening: source)
        try makeDirectory(directory)
        let target = "\(directory)/\(file.name)"
        if let outcome = try compareExisting(target, with: input, name: file.name) { return outcome }
        let used = try usedBytes(directory)
        guard used + input.size <= maxBytes else {
            throw WALError(.spoolFull, message: "the WAL spool \(directory) holds \(used >> 20) MiB, its limit (wal.max_spool_mib) is \(maxBytes >> 20) MiB: \(file.name) stays in pg_wal until the watcher ships the backlog (is 'pgbackd wal-watch' or the daemon running, is the repository reachable?)")
        }
        let temp = "\(directory)/.\(file.name).\(getpid()).tmp"
        unlink(temp)
        var copied: Int64 = 0
        do throws(DurableFileError) {
            let writer = try DurableFile.Writer(creating: temp, mode: 0o600)
            copied = try writer.copy(from: input.fd, count: input.size)
            if copied == input.size { try writer.finish() } else { writer.discard() }
        } catch {
            // A failed write leaves no temp file behind (the writer removes it).
            if error.code == .noSpace { throw fileSystemFull(directory, file: file, detail: error.message) }
            throw WALFiles.ioError(error)
        }
        guard copied == input.size else {
            throw WALError(.io, message: "\(source) shrank while being read (\(copied) of \(input.size) bytes)")
        }
        defer { unlink(temp) }
        // link(2), unlike rename(2), fails when the target exists: a concurrent push of the
        // same name can never overwrite a spooled file.
        if link(temp, target) != 0 {
            if errno == ENOSPC { throw fileSystemFull(directory, file: file, detail: "cannot link \(temp) to \(target): \(String(cString: strerror(errno)))") }
            guard errno == EEXIST else { throw WALFiles.ioError("cannot link \(temp) to \(target)") }
            if let outcome = try compareExisting(target, with: input, name: file.name) { return outcome }
            throw WALError(.io, message: "\(target) appeared and vanished while spooling it; retry")
        }
        unlink(temp)
        try WALFiles.fsyncDirectory(directory)
        return .spooled
    }

    /// Spooled files ready to ship, oldest first (``WALFileName`` order). Temp files and foreign
    /// names are left alone.
    public func pending() async throws -> [SpooledFile] {
        let directory = self.directory
        return try await offload(on: queue) {
            guard let dir = opendir(directory) else {
                if errno == ENOENT { return [] }
                throw WALFiles.ioError("cannot list the WAL spool \(directory)")
            }
            defer { closedir(dir) }
            var files: [SpooledFile] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                guard !name.hasPrefix("."), let file = WALFileName(name) else { continue }
                var status = stat()
                guard stat("\(directory)/\(name)", &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { continue }
                files.append(SpooledFile(file: file, size: Int64(status.st_size),
                                         modified: Date(timeIntervalSince1970: TimeInterval(status.st_mtim.tv_sec))))
            }
            return files.sorted { $0.file < $1.file }
        }
    }

    /// Where `file` is (or would be) spooled.
    public func path(of file: WALFileName) -> String { "\(directory)/\(file.name)" }

    /// Deletes a shipped file and fsyncs the spool, so it does not come back after a crash.
    public func remove(_ file: WALFileName) async throws {
        let directory = self.directory
        try await offload(on: queue) {
            let path = "\(directory)/\(file.name)"
            guard unlink(path) == 0 || errno == ENOENT else { throw WALFiles.ioError("cannot delete the shipped file \(path)") }
            try WALFiles.fsyncDirectory(directory)
        }
    }

    /// Bytes in the spool, temp files included.
    public func usedBytes() async throws -> Int64 {
        let directory = self.directory
        return try await offload(on: queue) { try Self.usedBytes(directory) }
    }

    // MARK: blocking helpers, on the queue

    /// The spool's file system has no room: as a spool at `max_spool_mib`, PostgreSQL keeps the
    /// file in pg_wal and retries, and `spool.full` is raised.
    private static func fileSystemFull(_ directory: String, file: WALFileName, detail: String) -> WALError {
        WALError(.spoolFull, message: "the file system of the WAL spool \(directory) is full (\(detail)): \(file.name) stays in pg_wal and PostgreSQL retries it; free space there, let the watcher ship the backlog ('pgbackd wal-watch' or the daemon), or move wal.spool_dir to a larger file system")
    }

    private static func compareExisting(_ target: String, with input: WALFiles.SourceFile, name: String) throws -> PushOutcome? {
        guard access(target, F_OK) == 0 else { return nil }
        let existing = try WALFiles.SourceFile(opening: target)
        guard try existing.hasSameBytes(as: input) else {
            throw WALError(.conflict, message: "\(name) is already in the WAL spool (\(target)) with different content (\(existing.size) bytes there, \(input.size) pushed); nothing was overwritten. Two clusters may be archiving into one spool or stanza: check archive_command and repository.stanza")
        }
        return .alreadySpooled
    }

    private static func usedBytes(_ directory: String) throws -> Int64 {
        guard let dir = opendir(directory) else { throw WALFiles.ioError("cannot list the WAL spool \(directory)") }
        defer { closedir(dir) }
        var total: Int64 = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard name != ".", name != ".." else { continue }
            var status = stat()
            if stat("\(directory)/\(name)", &status) == 0, (status.st_mode & S_IFMT) == S_IFREG { total += Int64(status.st_size) }
        }
        return total
    }

    private static func makeDirectory(_ directory: String) throws {
        var status = stat()
        if stat(directory, &status) == 0 { return }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw WALError(.io, message: "cannot create the WAL spool \(directory) (wal.spool_dir): create it, owned by the PostgreSQL server's user", underlying: error)
        }
        try WALFiles.fsyncDirectory(WALFiles.directory(of: directory))
    }
}
