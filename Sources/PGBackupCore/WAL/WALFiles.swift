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

    /// The last path component (`NSString.lastPathComponent` without Foundation: a trailing `/`
    /// is dropped first).
    static func baseName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/"), trimmed != "/" else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// A WAL file open for reading in pieces (`pread`, so its offset is never shared state):
    /// what `wal-push` copies and the watcher hashes and compresses, never whole in memory.
    final class SourceFile: @unchecked Sendable {
        // @unchecked: the descriptor and the stat are immutable; reads are positional (`pread`),
        // so calls from any thread, one at a time (an offload queue), share no state.
        let path: String
        let fd: Int32
        /// Size when opened; a file that shrinks after is reported by whoever reads it.
        let size: Int64
        private let identity: stat

        init(opening path: String) throws {
            self.path = path
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ioError("cannot open \(path)") }
            var status = stat()
            guard fstat(fd, &status) == 0 else {
                let error = ioError("cannot stat \(path)")
                close(fd)
                throw error
            }
            identity = status
            size = Int64(status.st_size)
        }

        deinit { close(fd) }

        /// Fills `buffer` from `offset` (fewer bytes only at the end of the file).
        func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
            var done = 0
            while done < buffer.count {
                let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ioError("cannot read \(path)")
                }
                if n == 0 { break }
                done += n
            }
            return done
        }

        /// Calls `body` with each piece of the file in order, `chunkSize` bytes at a time, through
        /// one buffer; fails when the file ends before ``size``.
        func forEachChunk(chunkSize: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, min(chunkSize, Int(size))), alignment: 16)
            defer { buffer.deallocate() }
            var offset: Int64 = 0
            while offset < size {
                let want = Int(min(Int64(buffer.count), size - offset))
                let got = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]), at: offset)
                guard got == want else { throw shrank(at: offset + Int64(got)) }
                try body(UnsafeRawBufferPointer(rebasing: buffer[..<got]))
                offset += Int64(got)
            }
        }

        /// Whether both files hold the same bytes (sizes first, then piece by piece).
        func hasSameBytes(as other: SourceFile) throws -> Bool {
            guard size == other.size else { return false }
            let chunk = 256 << 10
            let mine = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
            let theirs = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
            defer {
                mine.deallocate()
                theirs.deallocate()
            }
            var offset: Int64 = 0
            while offset < size {
                let want = Int(min(Int64(chunk), size - offset))
                let a = try read(into: UnsafeMutableRawBufferPointer(rebasing: mine[..<want]), at: offset)
                let b = try other.read(into: UnsafeMutableRawBufferPointer(rebasing: theirs[..<want]), at: offset)
                guard a == want else { throw shrank(at: offset + Int64(a)) }
                guard b == want else { throw other.shrank(at: offset + Int64(b)) }
                guard memcmp(mine.baseAddress!, theirs.baseAddress!, want) == 0 else { return false }
                offset += Int64(want)
            }
            return true
        }

        /// Throws unless the file is still the one opened, unchanged (size, modification and
        /// change times): a file read twice (hashed, then compressed) must not change in between.
        func checkUnchanged() throws {
            var status = stat()
            guard fstat(fd, &status) == 0 else { throw ioError("cannot stat \(path)") }
            guard status.st_size == identity.st_size, status.st_mtim.tv_sec == identity.st_mtim.tv_sec,
                  status.st_mtim.tv_nsec == identity.st_mtim.tv_nsec, status.st_ctim.tv_sec == identity.st_ctim.tv_sec,
                  status.st_ctim.tv_nsec == identity.st_ctim.tv_nsec
            else {
                throw WALError(.io, message: "\(path) changed while it was being shipped (size or times differ from when it was opened); it stays spooled and is shipped again")
            }
        }

        func shrank(at offset: Int64) -> WALError {
            WALError(.io, message: "\(path) shrank while being read (\(offset) of \(size) bytes)")
        }
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
