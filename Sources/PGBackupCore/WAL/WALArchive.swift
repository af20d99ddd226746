import Compression
import Dispatch
import Foundation
import Logging
import ObjectStorage
import OffloadedWork

/// WAL files in the repository: `<stanza>/wal/<timeline>/<name>.gz`, one gzip member each.
/// Uploads never overwrite: an existing object is compared, byte for byte after gunzip.
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
        let key = repository.walKey(file)
        // One queue per call, so parallel pushes compress in parallel.
        let queue = DispatchQueue(label: "pgbackd.wal.push")
        if try await repository.storage.head(key: key) != nil {
            return try await compareArchived(file, key: key, bytes: bytes, queue: queue)
        }
        let level = self.level
        let compressed = try await offload(on: queue) { Gzip.compress(bytes, level: level) }
        try await repository.storage.put(key: key, bytes: compressed)
        guard let info = try await repository.storage.head(key: key) else {
            throw WALError(.verifyFailed, message: "\(key) is not in the repository right after its upload committed: the storage lost it; \(file.name) stays unarchived")
        }
        guard info.size == Int64(compressed.count) else {
            throw WALError(.verifyFailed, message: "\(key) has \(info.size) bytes in the repository, but \(compressed.count) were uploaded; \(file.name) stays unarchived")
        }
        logger.debug("WAL file archived", metadata: [
            "wal.file": "\(file.name)", "wal.key": "\(key)", "wal.raw_bytes": "\(bytes.count)", "wal.stored_bytes": "\(info.size)",
        ])
        return .uploaded(info)
    }

    /// wal-push in sync mode: reads the WAL file at `path` (PostgreSQL's `%p`) and pushes it.
    public func push(path: String) async throws -> PushOutcome {
        guard let file = WALFileName((path as NSString).lastPathComponent) else {
            throw WALError(.invalidName, message: "\(path) is not a WAL file name (segment, .history, .backup or .partial); archive_command must pass %p")
        }
        let queue = DispatchQueue(label: "pgbackd.wal.read")
        let bytes = try await offload(on: queue) { try WALFiles.read(path) }
        return try await push(file, bytes: bytes)
    }

    private func compareArchived(_ file: WALFileName, key: String, bytes: [UInt8], queue: DispatchQueue) async throws -> PushOutcome {
        let archived: [UInt8]
        do {
            archived = try await fetch(file)
        } catch let error as WALError where error.code == .corrupt {
            throw WALError(.conflict, message: "\(file.name) is already archived as \(key), but that object is not valid gzip; it was not overwritten: inspect or remove it by hand", underlying: error)
        }
        guard archived == bytes else {
            throw WALError(.conflict, message: "\(file.name) is already archived as \(key) with different content (\(archived.count) bytes there, \(bytes.count) here); nothing was overwritten. Two clusters may be archiving into one stanza: check repository.stanza")
        }
        return .alreadyArchived
    }

    /// The raw bytes of an archived WAL file; the gzip CRC-32 and length trailer are the check.
    /// - Throws: ``WALError`` `.notFound` when it is not archived, `.corrupt` when it does not decompress.
    public func fetch(_ file: WALFileName) async throws -> [UInt8] {
        let key = repository.walKey(file)
        let stored: [UInt8]
        do {
            stored = try await repository.storage.getAll(key: key)
        } catch let error as StorageError where error.code == .notFound {
            throw WALError(.notFound, message: "\(file.name) is not in the WAL archive (no object \(key))")
        }
        let queue = DispatchQueue(label: "pgbackd.wal.fetch")
        do {
            return try await offload(on: queue) { try Gzip.decompress(stored) }
        } catch let error as CompressionError {
            throw WALError(.corrupt, message: "archived object \(key) (\(file.name), \(stored.count) bytes) is corrupt: not a valid gzip stream", underlying: error)
        }
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
