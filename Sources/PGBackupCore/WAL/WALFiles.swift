import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Blocking POSIX file helpers for the WAL code. Call them only from a dispatch queue
/// (`offload(on:)`), never from the cooperative pool.
enum WALFiles {
    static func ioError(_ what: String) -> WALError {
        let code = errno
        var message = "\(what): \(String(cString: strerror(code)))"
        if code == EACCES || code == EPERM { message += " (check the owner and permissions: the PostgreSQL server's user runs wal-push)" }
        if code == ENOSPC { message += " (the file system is full)" }
        return WALError(.io, message: message)
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
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ioError("cannot create \(path)") }
        do {
            try bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw ioError("cannot write \(path)")
                    }
                    offset += n
                }
            }
            guard fsync(fd) == 0 else { throw ioError("cannot fsync \(path)") }
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        guard close(fd) == 0 else {
            let error = ioError("cannot close \(path)")
            unlink(path)
            throw error
        }
    }

    static func fsyncDirectory(_ directory: String) throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("cannot open directory \(directory)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ioError("cannot fsync directory \(directory)") }
    }

    /// Writes `bytes` to `path.pgbackd-tmp`, fsyncs it, renames it to `path` and fsyncs the
    /// directory: a reader sees the whole file or none.
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let temp = path + ".pgbackd-tmp"
        unlink(temp) // a leftover of an interrupted earlier attempt
        try writeNew(temp, bytes)
        guard rename(temp, path) == 0 else {
            let error = ioError("cannot rename \(temp) to \(path)")
            unlink(temp)
            throw error
        }
        try fsyncDirectory(directory(of: path))
    }

    static func directory(of path: String) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }
}
