import Foundation
import OffloadedWork
import PGBackdSupport

#if canImport(Glibc)
import Glibc
#endif

/// The embedded default repository: objects are files under a root directory.
///
/// An upload writes to a hidden temp file beside its target, fsyncs it, renames it into place and
/// fsyncs the directory, so a crash leaves either the old state or the whole new object, never a
/// torn one. Leftover temp files are what ``abortIncompleteUploads(prefix:startedBefore:)`` removes.
public struct FileStorage: ObjectStorage {
    public let root: String
    static let tempMarker = ".pgbackd-tmp-"

    public init(root: String) {
        self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
    }

    func path(of key: String) -> String { root + "/" + key }

    public func makeUpload(key: String, expectedSize: Int64?) async throws -> any ObjectUpload {
        try validate(key: key)
        let target = path(of: key)
        let queue = DispatchQueue(label: "pgbackd.file-upload")
        return try await offload(on: queue) { () throws -> FileUpload in
            let directory = (target as NSString).deletingLastPathComponent
            try makeDirectories(directory, key: key)
            let temp = directory + "/" + Self.tempMarker + UUID().uuidString + "-" + (target as NSString).lastPathComponent
            let file = try durably(key: key) { () throws(DurableFileError) in try DurableFile.Writer(creating: temp, mode: 0o640) }
            return FileUpload(key: key, target: target, file: file, queue: queue)
        }
    }

    public func get(key: String, range: Range<Int64>?) async throws -> ObjectByteStream {
        try validate(key: key)
        let path = path(of: key)
        let (stream, producer) = ObjectByteStream.makeBlockingProducer()
        DispatchQueue(label: "pgbackd.file-read").async {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                producer.finish(throwing: errno == ENOENT || errno == ENOTDIR
                    ? StorageError(.notFound, key: key, message: "no object \(key) in \(root)")
                    : posixError("cannot open \(path)", key: key))
                return
            }
            defer { close(fd) }
            var offset = range?.lowerBound ?? 0
            let end = range?.upperBound ?? Int64.max
            let chunkSize = 1 << 20
            while offset < end, !producer.isCancelled {
                let want = Int(Swift.min(Int64(chunkSize), end - offset))
                var chunk = [UInt8](repeating: 0, count: want)
                let got = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(offset)) }
                if got < 0 {
                    if errno == EINTR { continue }
                    producer.finish(throwing: posixError("cannot read \(path)", key: key))
                    return
                }
                if got == 0 { break }
                chunk.removeLast(want - got)
                offset += Int64(got)
                guard producer.send(chunk) else { break }
            }
            producer.finish()
        }
        return stream
    }

    public func head(key: String) async throws -> ObjectInfo? {
        try validate(key: key)
        let path = path(of: key)
        return try await offload(on: DispatchQueue(label: "pgbackd.file-head")) {
            var info = stat()
            guard stat(path, &info) == 0 else {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw posixError("cannot stat \(path)", key: key)
            }
            guard (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            return ObjectInfo(key: key, size: Int64(info.st_size), lastModified: Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec)))
        }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        try await offload(on: DispatchQueue(label: "pgbackd.file-list")) {
            try walk(prefix: prefix).filter { !$0.isTemp }.map(\.info).sorted { $0.key < $1.key }
        }
    }

    public func delete(key: String) async throws {
        try validate(key: key)
        let path = path(of: key)
        try await offload(on: DispatchQueue(label: "pgbackd.file-delete")) {
            if unlink(path) != 0 && errno != ENOENT {
                throw posixError("cannot delete \(path)", key: key)
            }
        }
    }

    public func abortIncompleteUploads(prefix: String, startedBefore date: Date) async throws -> Int {
        try await offload(on: DispatchQueue(label: "pgbackd.file-abort")) {
            var removed = 0
            for entry in try walk(prefix: prefix) where entry.isTemp {
                if let modified = entry.info.lastModified, modified < date, unlink(path(of: entry.info.key)) == 0 {
                    removed += 1
                }
            }
            return removed
        }
    }

    /// Every file below the directory holding `prefix` whose key starts with `prefix`.
    /// Temp files match when the key they are writing does.
    ///
    /// A directory that does not exist holds nothing; one that cannot be read is an error, never
    /// an empty listing: "no backups" or "no such WAL file" must only ever mean that.
    private func walk(prefix: String) throws -> [(info: ObjectInfo, isTemp: Bool)] {
        let directoryPart = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
        let start = directoryPart.isEmpty ? root : path(of: directoryPart)
        var info = stat()
        guard stat(start, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return [] }
            throw posixError("cannot list \(start)", key: nil)
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return [] }
        var result: [(ObjectInfo, Bool)] = []
        try walkDirectory(start, relative: directoryPart) { key, entry in
            let name = (key as NSString).lastPathComponent
            let isTemp = name.hasPrefix(Self.tempMarker)
            // A temp name is marker + UUID (36) + "-" + the target's file name.
            let logicalName = isTemp ? String(name.dropFirst(Self.tempMarker.count + 37)) : name
            let logicalKey = String(key.dropLast(name.count)) + logicalName
            guard logicalKey.hasPrefix(prefix) else { return }
            let modified = Date(timeIntervalSince1970: TimeInterval(entry.st_mtim.tv_sec) + TimeInterval(entry.st_mtim.tv_nsec) / 1e9)
            result.append((ObjectInfo(key: key, size: Int64(entry.st_size), lastModified: modified), isTemp))
        }
        return result
    }

    /// Calls `visit` with the key and `stat` of every regular file below `directory`, depth first.
    /// Unlike FileManager's enumerator, which skips what it cannot open, every failure throws.
    private func walkDirectory(_ directory: String, relative: String, _ visit: (String, stat) throws -> Void) throws {
        guard let handle = opendir(directory) else { throw posixError("cannot list \(directory)", key: nil) }
        defer { closedir(handle) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(handle) else {
                if errno != 0 { throw posixError("cannot list \(directory)", key: nil) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names {
            let child = directory + "/" + name
            let key = relative.isEmpty ? name : relative + "/" + name
            var info = stat()
            guard lstat(child, &info) == 0 else {
                // Removed between readdir and lstat (a concurrent delete or commit): not there.
                if errno == ENOENT { continue }
                throw posixError("cannot stat \(child)", key: key)
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: try walkDirectory(child, relative: key, visit)
            case S_IFREG: try visit(key, info)
            default: continue
            }
        }
    }

    /// `mkdir -p`, fsyncing each parent whose entries changed so the new directories survive a crash.
    private func makeDirectories(_ directory: String, key: String) throws {
        var missing: [String] = []
        var current = directory
        while !current.isEmpty, current != "/", access(current, F_OK) != 0 {
            missing.append(current)
            current = (current as NSString).deletingLastPathComponent
        }
        for dir in missing.reversed() {
            if mkdir(dir, 0o750) != 0 && errno != EEXIST {
                throw posixError("cannot create directory \(dir)", key: key)
            }
            try fsyncDirectory((dir as NSString).deletingLastPathComponent, key: key)
        }
    }
}

final class FileUpload: ObjectUpload {
    let key: String
    let target: String
    let queue: DispatchQueue
    /// The temp file. Only touched on `queue`; dropped without commit or abort, it is closed
    /// and stays for abortIncompleteUploads.
    nonisolated(unsafe) private let file: DurableFile.Writer

    init(key: String, target: String, file: DurableFile.Writer, queue: DispatchQueue) {
        self.key = key
        self.target = target
        self.file = file
        self.queue = queue
    }

    func write(_ bytes: [UInt8]) async throws {
        try await offload(on: queue) { [self] in
            guard file.isOpen else { throw StorageError(.invalidArgument, key: key, message: "upload of \(key) is already finished") }
            try durably(key: key) { () throws(DurableFileError) in try file.write(bytes) }
        }
    }

    func commit() async throws -> ObjectInfo {
        try await offload(on: queue) { [self] in
            guard file.isOpen else { throw StorageError(.invalidArgument, key: key, message: "upload of \(key) is already finished") }
            try durably(key: key) { () throws(DurableFileError) in try file.commit(replacing: target) }
            return ObjectInfo(key: key, size: file.bytesWritten, lastModified: Date())
        }
    }

    func abort() async {
        _ = try? await offload(on: queue) { [self] in file.discard() }
    }
}

func fsyncDirectory(_ directory: String, key: String?) throws {
    try durably(key: key) { () throws(DurableFileError) in try DurableFile.fsyncDirectory(directory) }
}

/// A durable-file step (an upload's temp file, a directory's fsync), its failure said as the
/// storage contract says it: `accessDenied` for EACCES and EPERM, else `io`.
func durably<T>(key: String?, _ step: () throws(DurableFileError) -> T) throws(StorageError) -> T {
    do throws(DurableFileError) {
        return try step()
    } catch {
        throw storageError(errno: error.errno, message: error.message, key: key)
    }
}

func posixError(_ what: String, key: String?) -> StorageError {
    let code = errno
    return storageError(errno: code, message: "\(what): \(String(cString: strerror(code)))", key: key)
}

private func storageError(errno code: Int32, message: String, key: String?) -> StorageError {
    if code == EACCES || code == EPERM {
        return StorageError(.accessDenied, key: key, message: "\(message) for \(currentUserDescription()): give that user access to the repository directory (owner, group or mode), or run pgbackd as its owner")
    }
    var message = message
    if code == ENOSPC { message += " (the repository's file system is full)" }
    return StorageError(.io, key: key, message: message)
}

/// `user postgres (uid 105)`: who was refused, so the fix is obvious.
func currentUserDescription() -> String {
    let uid = geteuid()
    guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
    return "user \(String(cString: name)) (uid \(uid))"
}
