import Foundation
import PGBackdSupport

#if canImport(Glibc)
import Glibc
#endif

/// Blocking POSIX file helpers for the WAL code. Call them only from a dispatch queue
/// (`offload(on:)`), never from the cooperative pool.
enum WALFiles {
    static func ioError(_ what: String) -> WALError {
        let code = errno
        return ioError(errno: code, message: "\(what): \(String(cString: strerror(code)))")
    }

    private static func ioError(errno code: Int32, message: String) -> WALError {
        var message = message
        if code == EACCES || code == EPERM { message += " (check the owner and permissions: the PostgreSQL server's user runs wal-push)" }
        if code == ENOSPC { message += " (the file system is full)" }
        return WALError(.io, message: message)
    }

    static func ioError(_ error: DurableFileError) -> WALError {
        ioError(errno: error.errno, message: error.message)
    }

    /// A ``DurableFile`` step, its failure as a ``WALError`` `.io`.
    static func durably<T>(_ step: () throws(DurableFileError) -> T) throws(WALError) -> T {
        do throws(DurableFileError) {
            return try step()
        } catch {
            throw ioError(error)
        }
    }

    /// The whole file; WAL files are at most a segment (16 MiB by default).
    static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("cannot open \(path)") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw ioError("cannot stat \(path)") }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var offset = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while offset < buffer.count {
                let n = Glibc.read(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ioError("cannot read \(path)")
                }
                if n == 0 { break }
                offset += n
            }
        }
        guard offset == bytes.count else {
            throw WALError(.io, message: "\(path) shrank while being read (\(offset) of \(bytes.count) bytes)")
        }
        return bytes
    }

    /// Creates `path` (which must not exist) with `bytes` and fsyncs it. Mode 0600.
    static func writeNew(_ path: String, _ bytes: [UInt8]) throws {
        try durably { () throws(DurableFileError) in try DurableFile.createNew(path, with: bytes) }
    }

    static func fsyncDirectory(_ directory: String) throws {
        try durably { () throws(DurableFileError) in try DurableFile.fsyncDirectory(directory) }
    }

    /// Writes `bytes` to `path.pgbackd-tmp`, fsyncs it, renames it to `path` and fsyncs the
    /// directory: a reader sees the whole file or none.
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        try durably { () throws(DurableFileError) in try DurableFile.replace(path, with: bytes) }
    }

    static func directory(of path: String) -> String { DurableFile.directory(of: path) }
}
