import Compression
import Dispatch
import Foundation
import Logging
import ObjectStorage
import OffloadedWork

/// WAL files in the repository: `<stanza>/wal/<timeline>/<name>-<sha256 of the raw bytes>.gz`,
/// one gzip member each (``WALObjectName``; old-style `<name>.gz` objects are still read).
/// Uploads never overwrite: a name already archived is compared by the checksum in its object
/// name (byte for byte after gunzip for an old-style object), so pushing what is there already
/// costs one LIST and no download. Reads list the name first and refuse to choose between two
/// objects for one name.
public struct WALArchive: Sendable {
    public let repository: Repository
    /// zlib level for uploads (`[compression] level`).
    public let level: Int32
    let logger: Logger

    public init(repository: Repository, level: Int, logger: Logger) {
        self.repository = repository
        self.level = Int32(level)
        self.logger = logger
    }

    public enum PushOutcome: Sendable, Equatable {
        /// Stored now and verified with HEAD.
        case uploaded(ObjectInfo)
        /// The same bytes were archived already.
        case alreadyArchived
    }

    /// Compresses and stores one WAL file, returning only once HEAD shows the object with the
    /// uploaded size.
    /// - Throws: ``WALError`` `.conflict` when the name is archived with other content.
    public func push(_ file: WALFileName, bytes: [UInt8]) async throws -> PushOutcome {
        // One queue per call, so parallel pushes hash and compress in parallel. The hash runs
        // while the LIST is on the wire.
        let queue = DispatchQueue(label: "pgbackd.wal.push")
        let hashing = OffloadedWork(on: queue) { WALObjectName.sha256(of: bytes) }
        let existing = try await repository.walObjects(for: file)
        let sha256 = try await hashing.value
        if !existing.isEmpty {
            return try await compareArchived(file, sha256: sha256, existing: existing) { bytes }
        }
        let key = repository.walKey(file, sha256: sha256)
        let level = self.level
        let compressed = try await offload(on: queue) { Gzip.compress(bytes, level: level) }
        try await repository.storage.put(key: key, bytes: compressed)
        return try await verifyStored(file, key: key, rawBytes: bytes.count, storedBytes: Int64(compressed.count))
    }

    /// Compresses and stores the WAL file at `path` (a spooled file, or `%p` in sync mode) as
    /// ``push(_:bytes:)`` does, streamed: the file is read twice in 1 MiB pieces (hashed while
    /// the LIST is on the wire, then compressed piece by piece into the upload), so the only
    /// whole copy is the compressed object a single PUT needs, held by the storage driver. The
    /// file must not change in between (checked by its size and times before the commit).
    public func push(_ file: WALFileName, contentsOf path: String) async throws -> PushOutcome {
        // One queue per call, so parallel pushes hash and compress in parallel.
        let queue = DispatchQueue(label: "pgbackd.wal.push")
        let source = try await offload(on: queue) { try WALFiles.SourceFile(opening: path) }
        let hashing = OffloadedWork(on: queue) { try WALObjectName.sha256(of: source) }
        let existing: [WALObject]
        do {
            existing = try await repository.walObjects(for: file)
        } catch {
            _ = try? await hashing.value
            throw error
        }
        let sha256 = try await hashing.value
        if !existing.isEmpty {
            return try await compareArchived(file, sha256: sha256, existing: existing) {
                try await offload(on: queue) { try WALFiles.read(path) }
            }
        }
        let key = repository.walKey(file, sha256: sha256)
        let gzip = GzipStream(level: level)
        let upload = try await repository.storage.makeUpload(key: key, expectedSize: source.size)
        do {
            var offset: Int64 = 0
            repeat {
                let start = offset
                let piece = try await offload(on: queue) { try Self.compressPiece(of: source, at: start, into: gzip) }
                offset = gzip.bytesIn
                if !piece.isEmpty { try await upload.write(piece) }
            } while !gzip.isFinished
            try await offload(on: queue) { try source.checkUnchanged() }
            _ = try await upload.commit()
        } catch {
            await upload.abort()
            throw error
        }
        return try await verifyStored(file, key: key, rawBytes: Int(source.size), storedBytes: gzip.bytesOut)
    }

    /// Size of the pieces a streamed push reads and compresses.
    static let pieceSize = 1 << 20

    /// The gzip output for the next piece of `source` from `offset`; the last piece finishes the
    /// member (an empty file is one empty member).
    private static func compressPiece(of source: WALFiles.SourceFile, at offset: Int64, into gzip: GzipStream) throws -> [UInt8] {
        let want = Int(min(Int64(pieceSize), source.size - offset))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(want, 1), alignment: 16)
        defer { buffer.deallocate() }
        let got = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]), at: offset)
        guard got == want else { throw source.shrank(at: offset + Int64(got)) }
        return gzip.compress(UnsafeRawBufferPointer(rebasing: buffer[..<got]), finish: offset + Int64(got) >= source.size)
    }

    /// HEAD must show the object with the size that was uploaded.
    private func verifyStored(_ file: WALFileName, key: String, rawBytes: Int, storedBytes: Int64) async throws -> PushOutcome {
        guard let info = try await repository.storage.head(key: key) else {
            throw WALError(.verifyFailed, message: "\(key) is not in the repository right after its upload committed: the storage lost it; \(file.name) stays unarchived")
        }
        guard info.size == storedBytes else {
            throw WALError(.verifyFailed, message: "\(key) has \(info.size) bytes in the repository, but \(storedBytes) were uploaded; \(file.name) stays unarchived")
        }
        logger.debug("WAL file archived", metadata: [
            "wal.file": "\(file.name)", "wal.key": "\(key)", "wal.raw_bytes": "\(rawBytes)", "wal.stored_bytes": "\(info.size)",
        ])
        return .uploaded(info)
    }

    /// wal-push in sync mode: reads the WAL file at `path` (PostgreSQL's `%p`) and pushes it.
    public func push(path: String) async throws -> PushOutcome {
        guard let file = WALFileName((path as NSString).lastPathComponent) else {
            throw WALError(.invalidName, message: "\(path) is not a WAL file name (segment, .history, .backup or .partial); archive_command must pass %p")
        }
        return try await push(file, contentsOf: path)
    }

    /// Already archived: the same bytes only if every object of the name says so. A checksum in
    /// the name settles it without a download; an old-style object is downloaded and compared.
    private func compareArchived(_ file: WALFileName, sha256: String, existing: [WALObject],
                                 bytes readBytes: () async throws -> [UInt8]) async throws -> PushOutcome {
        var local: [UInt8]?
        for object in existing {
            if let archived = object.name.sha256 {
                guard archived == sha256 else {
                    throw WALError(.conflict, message: "\(file.name) is already archived as \(object.key) with different content (SHA-256 \(archived) there, \(sha256) here); nothing was overwritten. Two clusters may be archiving into one stanza: check repository.stanza")
                }
                continue
            }
            let archived: [UInt8]
            do {
                archived = try await fetch(object)
            } catch let error as WALError where error.code == .corrupt {
                throw WALError(.conflict, message: "\(file.name) is already archived as \(object.key), but that object is not valid gzip; it was not overwritten: inspect or remove it by hand", underlying: error)
            }
            let bytes: [UInt8]
            if let local { bytes = local } else {
                bytes = try await readBytes()
                local = bytes
            }
            guard archived == bytes else {
                throw WALError(.conflict, message: "\(file.name) is already archived as \(object.key) with different content (\(archived.count) bytes there, \(bytes.count) here); nothing was overwritten. Two clusters may be archiving into one stanza: check repository.stanza")
            }
        }
        logger.debug("WAL file already archived with the same content", metadata: [
            "wal.file": "\(file.name)", "wal.key": "\(existing.map(\.key).joined(separator: ", "))",
        ])
        return .alreadyArchived
    }

    /// The one archived object of `file`: one LIST.
    /// - Throws: ``WALError`` `.notFound` when there is none, `.ambiguous` when there are several.
    public func locate(_ file: WALFileName) async throws -> WALObject {
        try object(file, among: try await repository.walObjects(for: file))
    }

    /// The one object among `objects` (the listing of `file`'s prefix). Several are never
    /// resolved by picking one: recovery replaying the wrong cluster's WAL is worse than stopping.
    func object(_ file: WALFileName, among objects: [WALObject]) throws -> WALObject {
        switch objects.count {
        case 0:
            throw WALError(.notFound, message: "\(file.name) is not in the WAL archive (no object \(repository.walKeyPrefix(file))[-<sha256>].gz)")
        case 1:
            return objects[0]
        default:
            throw WALError(.ambiguous, message: "the WAL archive holds \(objects.count) objects for \(file.name) (\(objects.map(\.key).sorted().joined(separator: ", "))) and pgbackd does not choose between them: find out which one this cluster archived (two clusters archiving into one stanza?), move the others out of the repository, and retry")
        }
    }

    /// The raw bytes of an archived WAL file, checked by the gzip CRC-32 and length trailer and,
    /// for a new-style object, against the SHA-256 in its name.
    /// - Throws: ``WALError`` `.notFound` when it is not archived, `.ambiguous` when several
    ///   objects claim the name, `.corrupt` when it does not decompress or match its checksum.
    public func fetch(_ file: WALFileName) async throws -> [UInt8] {
        try await fetch(try await locate(file))
    }

    /// The raw bytes of one listed object, checked as ``fetch(_:)-(WALFileName)`` describes. An
    /// object that was listed but is gone by the GET fails with the storage's error, not
    /// `.notFound`: wal-fetch must not report the end of the archive for a file that was there.
    public func fetch(_ object: WALObject) async throws -> [UInt8] {
        let stored = try await repository.storage.getAll(key: object.key)
        let queue = DispatchQueue(label: "pgbackd.wal.fetch")
        let expected = object.name.sha256
        let (bytes, actual): ([UInt8], String?)
        do {
            (bytes, actual) = try await offload(on: queue) {
                let raw = try Gzip.decompress(stored)
                return (raw, expected == nil ? nil : WALObjectName.sha256(of: raw))
            }
        } catch let error as CompressionError {
            throw WALError(.corrupt, message: "archived object \(object.key) (\(object.file.name), \(stored.count) bytes) is corrupt: not a valid gzip stream", underlying: error)
        }
        if let expected, let actual, actual != expected {
            throw WALError(.corrupt, message: "archived object \(object.key) (\(object.file.name)) is corrupt: its \(bytes.count) bytes have SHA-256 \(actual), not the \(expected) in its name, although the gzip stream is intact; it was changed after it was archived")
        }
        if let problem = Self.segmentHeaderProblem(bytes, file: object.file) {
            throw WALError(.corrupt, message: "archived object \(object.key) is not \(object.file.name): \(problem); it was stored under the wrong name (its checksum cannot tell: it is the checksum of these bytes). Move it out of the repository; recovery must not replay it as \(object.file.name)")
        }
        return bytes
    }

    /// Whether a segment's (or `.partial`'s) bytes are the segment its name says, by the long
    /// page header PostgreSQL writes at the start of every segment: `xlp_pageaddr` is the
    /// segment's first LSN (timeline, log and segment numbers of the name), `xlp_seg_size` its
    /// size, `xlp_tli` its timeline or an earlier one (the first segment of a new timeline
    /// starts as a copy of the old one's). A segment's checksum in its object name proves only
    /// that these bytes were stored; this proves they are the segment PostgreSQL asked for, which
    /// it would otherwise take as the end of WAL and end recovery early. Nil when it matches,
    /// and for history and backup label files, which have no page header.
    static func segmentHeaderProblem(_ bytes: [UInt8], file: WALFileName) -> String? {
        guard file.kind == .segment || file.kind == .partial, let log = file.log, let segment = file.segment else { return nil }
        func little<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var value: T = 0
            for index in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + index]) << (8 * index) }
            return value
        }
        // XLogLongPageHeaderData: magic u16, info u16, tli u32, pageaddr u64, rem_len u32,
        // (padding), sysid u64 at 24, seg_size u32 at 32, xlog_blcksz u32 at 36.
        // Bytes that do not start with such a header (no PostgreSQL magic 0xD0xx/0xD1xx, no
        // XLP_LONG_HEADER, implausible sizes) are not told apart here: their checksum is what
        // vouches for them. Every segment PostgreSQL writes has one.
        guard bytes.count >= 40 else { return nil }
        let magic = little(0, UInt16.self), info = little(2, UInt16.self), tli = little(4, UInt32.self), pageAddress = little(8, UInt64.self)
        let segmentSize = little(32, UInt32.self), blockSize = little(36, UInt32.self)
        let longHeader: UInt16 = 0x0002 // XLP_LONG_HEADER
        guard magic >> 8 == 0xD0 || magic >> 8 == 0xD1, info & longHeader != 0,
              segmentSize.nonzeroBitCount == 1, segmentSize >= 1 << 20, segmentSize <= 1 << 30,
              blockSize.nonzeroBitCount == 1, blockSize >= 1 << 10, blockSize <= 1 << 16
        else { return nil }
        let segmentsPerLog = UInt64(0x1_0000_0000) / UInt64(segmentSize)
        let expected = (UInt64(log) * segmentsPerLog + UInt64(segment)) * UInt64(segmentSize)
        let lsn = { (value: UInt64) in "\(String(value >> 32, radix: 16, uppercase: true))/\(String(value & 0xFFFF_FFFF, radix: 16, uppercase: true))" }
        guard pageAddress == expected else {
            let number = pageAddress / UInt64(segmentSize)
            let holds = WALFileName.segment(timeline: tli, number: number, segmentSize: Int(segmentSize)).name
            return "its page header says it starts at \(lsn(pageAddress)) on timeline \(tli) (the WAL of \(holds)), not at \(lsn(expected))"
        }
        guard tli <= file.timeline else {
            return "its page header says timeline \(tli), later than the name's \(file.timeline)"
        }
        guard file.kind == .partial || bytes.count == Int(segmentSize) else {
            return "it has \(bytes.count) bytes, but its page header says segments have \(segmentSize)"
        }
        return nil
    }

    /// wal-fetch: the file, decompressed and checked, written to `path` atomically
    /// (`path.pgbackd-tmp`, fsync, rename, fsync the directory). Nothing is written on failure.
    public func fetch(_ file: WALFileName, to path: String) async throws {
        let bytes = try await fetch(file)
        let queue = DispatchQueue(label: "pgbackd.wal.fetch")
        try await offload(on: queue) { try WALFiles.writeAtomically(path, bytes) }
        logger.debug("WAL file restored", metadata: ["wal.file": "\(file.name)", "wal.path": "\(path)", "wal.raw_bytes": "\(bytes.count)"])
    }
}
