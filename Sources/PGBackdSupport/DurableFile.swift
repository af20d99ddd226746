#if canImport(Glibc)
import Glibc
#endif

/// The one durable write of pgbackd: every byte written (a write interrupted by a signal is
/// retried, a short one continued), the file fsynced, renamed over its target, the directory
/// fsynced. A crash leaves the old file or the whole new one, never a torn one, and a failure
/// leaves no temporary file behind.
///
/// Blocking POSIX calls: call them from a dispatch queue (`offload(on:)`), never from the
/// cooperative pool.
public enum DurableFile {
    /// Writes `bytes` to `temporaryPath` (default `<path>.pgbackd-tmp`; a leftover of an
    /// interrupted earlier attempt is removed first), fsyncs it, renames it over `path` and fsyncs
    /// the directory: a reader sees the old file or the whole new one.
    /// - Parameters:
    ///   - mode: the new file's permissions (less the umask).
    ///   - syncing: false skips both fsyncs: the replacement is still all-or-nothing for readers,
    ///     but a crash may lose it. Only for files whose content is checked before use.
    public static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o600, temporaryPath: String? = nil,
                               syncing: Bool = true) throws(DurableFileError) {
        let temp = temporaryPath ?? path + ".pgbackd-tmp"
        unlink(temp)
        let writer = try Writer(creating: temp, mode: mode)
        try writer.write(bytes)
        try writer.commit(replacing: path, syncing: syncing)
    }

    /// Creates `path`, which must not exist (`.alreadyExists` otherwise), with `bytes`, and fsyncs
    /// it. Its name is durable once the directory is fsynced (``fsyncDirectory(_:)``), which a
    /// caller that goes on to link or rename it does after that.
    public static func createNew(_ path: String, with bytes: [UInt8], mode: mode_t = 0o600) throws(DurableFileError) {
        let writer = try Writer(creating: path, mode: mode)
        try writer.write(bytes)
        try writer.finish()
    }

    /// Renames the existing file `source` over `target`, durably: its bytes fsynced first, the
    /// target's directory after. Across file systems this fails with errno EXDEV, which a caller
    /// can answer by copying (``replace(_:with:mode:temporaryPath:syncing:)``).
    public static func move(_ source: String, over target: String) throws(DurableFileError) {
        let fd = try openRetrying(source, O_RDONLY | O_CLOEXEC, 0, what: "cannot open")
        let failed = fsyncRetrying(fd)
        close(fd)
        if let failed { throw DurableFileError("cannot fsync", path: source, errno: failed) }
        guard rename(source, target) == 0 else { throw DurableFileError("cannot rename \(source) to", path: target, errno: errno) }
        try fsyncDirectory(directory(of: target))
    }

    /// fsync of a directory: makes the names created, renamed or removed in it durable.
    public static func fsyncDirectory(_ directory: String) throws(DurableFileError) {
        let fd = try openRetrying(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, what: "cannot open directory")
        defer { close(fd) }
        if let code = fsyncRetrying(fd) { throw DurableFileError("cannot fsync directory", path: directory, errno: code) }
    }

    /// The directory holding `path`: `.` for a bare name.
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// A file being written, for content that arrives in pieces (an upload). It is created under
    /// a name of the caller's choosing (a temporary one), and either committed over its target
    /// or discarded.
    ///
    /// Any failure ends the writer and removes its file. A writer dropped while still open
    /// closes it and leaves the file where it is, for the caller's own cleanup of temporary
    /// names (``FileStorage`` removes its stale uploads by name).
    ///
    /// Not thread-safe: one caller (one dispatch queue) at a time.
    public final class Writer {
        /// The file being written.
        public let path: String
        /// -1 once finished, committed, discarded or failed.
        private var fd: Int32
        public private(set) var bytesWritten: Int64 = 0
        public var isOpen: Bool { fd >= 0 }

        /// Creates `path`, which must not exist, with `mode` (less the umask).
        public init(creating path: String, mode: mode_t) throws(DurableFileError) {
            self.path = path
            fd = try openRetrying(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode, what: "cannot create")
        }

        deinit {
            if fd >= 0 { close(fd) }
        }

        public func write(_ bytes: [UInt8]) throws(DurableFileError) {
            let failure = bytes.withUnsafeBytes { buffer -> DurableFileError? in
                do throws(DurableFileError) {
                    try write(buffer)
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { throw failure }
        }

        /// Appends all of `buffer`.
        public func write(_ buffer: UnsafeRawBufferPointer) throws(DurableFileError) {
            try checkOpen("cannot write")
            let code = DurableFile.writeAll(fd, buffer) { Glibc.write($0, $1, $2) }
            if code != 0 { throw fail("cannot write", errno: code) }
            bytesWritten += Int64(buffer.count)
        }

        /// Appends `count` bytes of the file open as `source`, from its start (its file offset is
        /// not used or moved), copied by the kernel with `sendfile` (page cache to page cache, no
        /// buffer of ours); with `pread`/`write` through a 1 MiB buffer where the kernel cannot.
        /// - Returns: the bytes copied: fewer than `count` only when `source` ended early.
        /// - Throws: a read or write failure (the writer is then discarded, as by ``write(_:)``).
        public func copy(from source: Int32, count: Int64) throws(DurableFileError) -> Int64 {
            try checkOpen("cannot write")
            var offset: off_t = 0
            while Int64(offset) < count {
                let n = sendfile(fd, source, &offset, Int(min(count - Int64(offset), 1 << 30)))
                if n > 0 { continue }
                if n == 0 { break }
                if errno == EINTR { continue }
                if offset == 0, errno == EINVAL || errno == ENOSYS { return try copyThroughBuffer(from: source, count: count) }
                throw fail("cannot copy into", errno: errno)
            }
            bytesWritten += Int64(offset)
            return Int64(offset)
        }

        private func copyThroughBuffer(from source: Int32, count: Int64) throws(DurableFileError) -> Int64 {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            var offset: Int64 = 0
            while offset < count {
                let n = pread(source, buffer.baseAddress, Int(min(count - offset, Int64(buffer.count))), off_t(offset))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail("cannot read the source of", errno: errno)
                }
                if n == 0 { break }
                try write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                offset += Int64(n)
            }
            return offset
        }

        /// fsyncs (unless `syncing` is false) and closes the file: its bytes are on disk under ``path``.
        public func finish(syncing: Bool = true) throws(DurableFileError) {
            try checkOpen("cannot fsync")
            if syncing, let code = fsyncRetrying(fd) { throw fail("cannot fsync", errno: code) }
            let closed = close(fd)
            let code = errno
            fd = -1
            // A file system may report a failed write only now (NFS).
            if closed != 0 {
                unlink(path)
                throw DurableFileError("cannot close", path: path, errno: code)
            }
        }

        /// Finishes the file, renames it over `target` and fsyncs the target's directory
        /// (neither fsync when `syncing` is false).
        public func commit(replacing target: String, syncing: Bool = true) throws(DurableFileError) {
            try finish(syncing: syncing)
            guard rename(path, target) == 0 else {
                let code = errno
                unlink(path)
                throw DurableFileError("cannot rename \(path) to", path: target, errno: code)
            }
            if syncing { try DurableFile.fsyncDirectory(DurableFile.directory(of: target)) }
        }

        /// Closes and removes the file; nothing of it remains. Does nothing once it is finished.
        public func discard() {
            guard fd >= 0 else { return }
            unlink(path)
            close(fd)
            fd = -1
        }

        private func checkOpen(_ what: String) throws(DurableFileError) {
            guard fd >= 0 else { throw DurableFileError("\(what) (already finished)", path: path, errno: EBADF) }
        }

        private func fail(_ what: String, errno code: Int32) -> DurableFileError {
            discard()
            return DurableFileError(what, path: path, errno: code)
        }
    }

    /// Writes all of `buffer` to `fd` through `write` (the system call; a stand-in in tests):
    /// retried after EINTR, continued after a short write.
    /// - Returns: 0, or the errno of the call that failed (EIO for a write that wrote nothing).
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, using write: (Int32, UnsafeRawPointer, Int) -> Int) -> Int32 {
        guard let base = buffer.baseAddress else { return 0 }
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, base + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            offset += n
        }
        return 0
    }

    static func fsyncRetrying(_ fd: Int32) -> Int32? {
        while fsync(fd) != 0 {
            if errno != EINTR { return errno }
        }
        return nil
    }

    static func openRetrying(_ path: String, _ flags: Int32, _ mode: mode_t, what: String) throws(DurableFileError) -> Int32 {
        while true {
            let fd = open(path, flags, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw DurableFileError(what, path: path, errno: errno) }
        }
    }
}

/// Why a durable write failed: what (``Code``, from the errno), on which path, and the system's
/// own words.
public struct DurableFileError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// This user may not create, write or rename there (EACCES, EPERM).
        public static let accessDenied = Code(name: "accessDenied")
        /// A file that must be new exists (EEXIST).
        public static let alreadyExists = Code(name: "alreadyExists")
        /// The directory (or the file) does not exist (ENOENT, ENOTDIR).
        public static let notFound = Code(name: "notFound")
        /// The file system is full or the quota used up (ENOSPC, EDQUOT).
        public static let noSpace = Code(name: "noSpace")
        /// Any other failure of the file system.
        public static let io = Code(name: "io")
        public var description: String { name }

        static func of(errno code: Int32) -> Code {
            switch code {
            case EACCES, EPERM: .accessDenied
            case EEXIST: .alreadyExists
            case ENOENT, ENOTDIR: .notFound
            case ENOSPC, EDQUOT: .noSpace
            default: .io
            }
        }
    }

    public var code: Code
    /// The file or directory the failing call was about.
    public var path: String
    public var errno: Int32
    /// `cannot create /var/lib/x/.tmp: Permission denied`.
    public var message: String

    public init(_ code: Code, path: String, errno: Int32, message: String) {
        self.code = code
        self.path = path
        self.errno = errno
        self.message = message
    }

    /// `what` is the failed step ("cannot fsync"); the path and the errno's text follow it.
    init(_ what: String, path: String, errno code: Int32) {
        self.init(.of(errno: code), path: path, errno: code, message: "\(what) \(path): \(String(cString: strerror(code)))")
    }

    public var description: String { message }
}
