import Dispatch
import Foundation
import Logging
import OffloadedWork
import PGBackdSupport

#if canImport(Glibc)
import Glibc
#endif

/// wal-fetch with read-ahead. PostgreSQL runs one `restore_command` per segment and waits for
/// each, so recovery from an object store is bound by one download's latency per segment. When a
/// call finds the next segment not yet fetched, it lists them once (object names carry the
/// checksums) and downloads the requested one and the next `wal.prefetch` segments at the same
/// time, writes `%p` as soon as the requested one is verified,
/// and gives the others at most ``waitLimit`` before it exits; the following calls are served from
/// local disk.
///
/// Prefetched segments live in `.pgbackd-prefetch/` next to `%p` (in `pg_wal`), as
/// `<name>.<sha256 of its bytes>`: written under a hidden temp name and renamed, so a name is only
/// ever complete, and verified against that hash before it is served (by a rename into `%p`, on
/// the same file system). A missing segment is simply not prefetched; a prefetch failure never
/// fails the call. Nothing runs after the process exits.
public struct WALPrefetcher: Sendable {
    public let archive: WALArchive
    /// Segments to read ahead; 0 fetches just what is asked for.
    public let depth: Int
    /// How long a call waits for its prefetches after `%p` is written. Default 10 s.
    public let waitLimit: Duration
    let logger: Logger

    /// The size successors are computed with until a fetched segment shows the real one.
    static let defaultSegmentBytes = 16 << 20
    static let directoryName = ".pgbackd-prefetch"

    public init(archive: WALArchive, depth: Int, waitLimit: Duration = .seconds(10), logger: Logger) {
        self.archive = archive
        self.depth = max(0, depth)
        self.waitLimit = waitLimit
        self.logger = logger
    }

    /// Where prefetched segments for a `restore_command` target go.
    public static func directory(forTarget path: String) -> String {
        "\(WALFiles.directory(of: path))/\(directoryName)"
    }

    public enum Source: Sendable, Equatable {
        /// Served from the prefetch directory, after checking its hash.
        case prefetched
        /// Downloaded now.
        case archive
    }

    /// Delivers `file` to `path` (PostgreSQL's `%f` and `%p`) and reads ahead.
    /// - Throws: what ``WALArchive/fetch(_:to:)`` throws for the requested file (`.notFound`
    ///   when it is not archived); never a prefetch failure.
    @discardableResult
    public func fetch(_ file: WALFileName, to path: String) async throws -> Source {
        guard depth > 0, file.kind == .segment else {
            try await archive.fetch(file, to: path)
            return .archive
        }
        let directory = Self.directory(forTarget: path)
        let queue = DispatchQueue(label: "pgbackd.wal.prefetch")
        let local: Int?
        do {
            local = try await offload(on: queue) { try Self.takePrefetched(file, directory: directory, to: path) }
        } catch {
            logger.warning("prefetched WAL file unusable; fetching it from the archive", metadata: ["wal.file": "\(file.name)", "wal.error": "\(error)"])
            local = nil
        }
        if let segmentBytes = local {
            logger.debug("WAL file served from the prefetch directory", metadata: ["wal.file": "\(file.name)", "wal.path": "\(path)"])
            let next = file.followingSegments(depth, segmentBytes: segmentBytes)
            let missing = await prepare(directory, keeping: next, queue: queue)
            // Read ahead again only when the window is used up, so that one call in
            // `depth + 1` waits for a batch of downloads and the others touch no network.
            if let first = next.first, missing.contains(first) {
                await prefetchAll(missing, listing: nil, into: directory)
            }
            return .prefetched
        }

        // Not prefetched: one LIST finds the file and its successors (their object names carry
        // the checksums), then all of them are downloaded at once. The requested file missing or
        // ambiguous fails here, before any download starts.
        let guessed = file.followingSegments(depth, segmentBytes: Self.defaultSegmentBytes)
        let missing = await prepare(directory, keeping: guessed, queue: queue)
        let archive = self.archive
        let listing = try await archive.repository.walObjects(for: [file] + missing)
        let object = try archive.object(file, among: listing[file] ?? [])
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask { try await archive.fetch(object) }
            if !missing.isEmpty {
                group.addTask {
                    await self.prefetchAll(missing, listing: listing, into: directory)
                    return nil
                }
            }
            // The requested file failing (not archived, corrupt) ends the group: the prefetches
            // are cancelled and the error is wal-fetch's.
            while let result = try await group.next() {
                guard let bytes = result else { continue }
                try await offload(on: queue) { try WALFiles.writeAtomically(path, bytes) }
                logger.debug("WAL file restored", metadata: ["wal.file": "\(file.name)", "wal.path": "\(path)", "wal.raw_bytes": "\(bytes.count)"])
                if bytes.count != Self.defaultSegmentBytes {
                    // A cluster with another wal_segment_size: read ahead with the real one.
                    let real = file.followingSegments(depth, segmentBytes: bytes.count)
                    let extra = await prepare(directory, keeping: real + guessed, queue: queue).filter { real.contains($0) && !missing.contains($0) }
                    if !extra.isEmpty {
                        group.addTask {
                            await self.prefetchAll(extra, listing: nil, into: directory)
                            return nil
                        }
                    }
                }
            }
        }
        return .archive
    }

    /// Downloads `files` concurrently into the directory, giving up after ``waitLimit``. Their
    /// objects come from `listing` when the caller has listed them already, else from one LIST
    /// here (inside the time limit).
    private func prefetchAll(_ files: [WALFileName], listing given: [WALFileName: [WALObject]]?, into directory: String) async {
        guard !files.isEmpty else { return }
        enum Event: Sendable {
            case listed([WALFileName: [WALObject]]?)
            case finished
            case timedOut
        }
        let limit = waitLimit
        let repository = archive.repository
        await withTaskGroup(of: Event.self) { group in
            group.addTask {
                try? await Task.sleep(for: limit)
                return .timedOut
            }
            if let given {
                group.addTask { .listed(given) }
            } else {
                group.addTask {
                    do {
                        return .listed(try await repository.walObjects(for: files))
                    } catch {
                        if !Task.isCancelled {
                            self.logger.info("WAL prefetch skipped: cannot list the archive; the files are fetched on demand", metadata: [
                                "wal.file": "\(files[0].name)", "wal.error": "\(error)",
                            ])
                        }
                        return .listed(nil)
                    }
                }
            }
            var pending = files.count
            // Set once the batch is given up (listing failed, time is up): a listing that comes
            // in after that starts no downloads, and the cancelled timer logs nothing.
            var stopped = false
            while let event = await group.next() {
                switch event {
                case .listed(let listing):
                    guard let listing, !stopped else {
                        stopped = true
                        group.cancelAll() // stops the timer
                        continue
                    }
                    for file in files {
                        let objects = listing[file] ?? []
                        group.addTask {
                            await self.prefetch(file, objects: objects, into: directory)
                            return .finished
                        }
                    }
                case .finished:
                    pending -= 1
                    if pending == 0 { group.cancelAll() } // stops the timer
                case .timedOut:
                    guard pending > 0, !stopped else { continue }
                    stopped = true
                    logger.info("WAL prefetch not finished in time; the rest is fetched on demand", metadata: [
                        "wal.pending": "\(pending)", "wal.prefetch_dir": "\(directory)",
                    ])
                    group.cancelAll()
                }
            }
        }
    }

    /// Downloads one successor into the directory; a missing or failing one is skipped (one
    /// with several objects too: the call that asks for it reports that).
    private func prefetch(_ file: WALFileName, objects: [WALObject], into directory: String) async {
        do {
            let bytes = try await archive.fetch(try archive.object(file, among: objects))
            let queue = DispatchQueue(label: "pgbackd.wal.prefetch.write")
            try await offload(on: queue) { try Self.store(bytes, as: file, in: directory) }
            logger.debug("WAL file prefetched", metadata: ["wal.file": "\(file.name)", "wal.raw_bytes": "\(bytes.count)"])
        } catch let error as WALError where error.code == .notFound {
            logger.debug("WAL file to prefetch is not archived (yet)", metadata: ["wal.file": "\(file.name)"])
        } catch {
            if Task.isCancelled { return }
            logger.info("WAL prefetch failed; the file is fetched on demand", metadata: ["wal.file": "\(file.name)", "wal.error": "\(error)"])
        }
    }

    /// Creates the directory, removes leftovers (temp files of killed calls, entries outside the
    /// window) and returns the names in `window` that still need fetching, in order. Errors only
    /// disable prefetching for this call.
    private func prepare(_ directory: String, keeping window: [WALFileName], queue: DispatchQueue) async -> [WALFileName] {
        do {
            return try await offload(on: queue) {
                if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw WALFiles.ioError("cannot create the prefetch directory \(directory)") }
                let wanted = Set(window)
                // This process's own temp files belong to prefetches still running (a second
                // prepare runs once the real segment size is known): removing one would make its
                // rename fail. Those of other processes are leftovers of killed calls.
                let ownTemp = ".\(getpid()).tmp"
                var present: Set<WALFileName> = []
                for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
                    if let entry = Self.parseEntry(name), wanted.contains(entry.file), !present.contains(entry.file) {
                        present.insert(entry.file)
                    } else if name.hasPrefix("."), name.hasSuffix(ownTemp) {
                        continue
                    } else {
                        unlink("\(directory)/\(name)")
                    }
                }
                return window.filter { !present.contains($0) }
            }
        } catch {
            logger.warning("WAL prefetch disabled for this call", metadata: ["wal.prefetch_dir": "\(directory)", "wal.error": "\(error)"])
            return []
        }
    }

    // MARK: blocking helpers, on a queue

    static func entryName(_ file: WALFileName, sha256: String) -> String { "\(file.name).\(sha256)" }

    static func parseEntry(_ name: String) -> (file: WALFileName, sha256: String)? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].utf8.count == 64, parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
              let file = WALFileName(String(parts[0])), file.kind == .segment else { return nil }
        return (file, String(parts[1]))
    }

    static func hex(_ bytes: [UInt8]) -> String { WALObjectName.sha256(of: bytes) }

    /// Temp name, then rename: the entry's name appears only with all its bytes. No fsync: the
    /// hash in the name is checked before use, so a file torn by a crash is never served.
    static func store(_ bytes: [UInt8], as file: WALFileName, in directory: String) throws {
        let target = "\(directory)/\(entryName(file, sha256: hex(bytes)))"
        try WALFiles.durably { () throws(DurableFileError) in
            try DurableFile.replace(target, with: bytes, temporaryPath: "\(directory)/.\(file.name).\(getpid()).tmp", syncing: false)
        }
    }

    /// Moves a prefetched `file` into `path` after checking its hash, fsyncing it first and the
    /// directory after, as ``WALArchive/fetch(_:to:)`` does. A damaged entry is deleted.
    /// - Returns: the segment's size, or nil when it is not prefetched.
    static func takePrefetched(_ file: WALFileName, directory: String, to path: String) throws -> Int? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory),
              let name = names.first(where: { parseEntry($0)?.file == file }),
              let expected = parseEntry(name)?.sha256 else { return nil }
        let entry = "\(directory)/\(name)"
        let bytes = try WALFiles.read(entry)
        guard hex(bytes) == expected else {
            unlink(entry)
            throw WALError(.corrupt, message: "prefetched \(entry) does not match its SHA-256 (\(bytes.count) bytes); deleted")
        }
        do throws(DurableFileError) {
            try DurableFile.move(entry, over: path)
        } catch where error.errno == EXDEV {
            try WALFiles.writeAtomically(path, bytes)
            unlink(entry)
        } catch {
            throw WALFiles.ioError(error)
        }
        return bytes.count
    }
}

extension WALFileName {
    /// The `count` segments after this one on the same timeline, for a cluster whose segments
    /// have `segmentBytes` bytes (a power of two from 1 MiB to 1 GiB); empty for other files
    /// or sizes. A segment's number runs to 4 GiB / segment size, then the log number goes up.
    func followingSegments(_ count: Int, segmentBytes: Int) -> [WALFileName] {
        guard kind == .segment, var log, var segment, count > 0,
              segmentBytes >= 1 << 20, segmentBytes <= 1 << 30, segmentBytes & (segmentBytes - 1) == 0 else { return [] }
        let perLog = UInt64(1) << 32 / UInt64(segmentBytes)
        var result: [WALFileName] = []
        for _ in 0..<count {
            if UInt64(segment) + 1 >= perLog {
                guard log < UInt32.max else { break }
                log += 1
                segment = 0
            } else {
                segment += 1
            }
            guard let next = WALFileName(timelineHex + Self.hex8(log) + Self.hex8(segment)) else { break }
            result.append(next)
        }
        return result
    }
}
