import Compression
import Crypto
import Dispatch
import Foundation
import ObjectStorage
import OffloadedWork
import Synchronization

/// Raw bytes in; gzip, both SHA-256s and the upload handled: the one path every artifact takes
/// into the repository, so dumps, globals and (later) base backups are stored alike.
///
/// Each byte is hashed and compressed once, and neither on the caller's task: a block goes to
/// its compression worker and to the raw stream's hashing queue at once, its compressed form to
/// the stored stream's hashing queue and to the upload. Fed with blocks of exactly ``blockSize``
/// bytes (as ``streamChildOutput`` delivers them), no byte is copied on the way to the compressor.
struct ArtifactWriter {
    let key: String
    let relativeKey: String
    let content: Artifact.Content
    let database: String?
    private let upload: any ObjectUpload
    private var encoder: ParallelGzipEncoder
    private let rawHash = SequentialHasher(label: "pgbackd.sha256.raw")
    private let storedHash = SequentialHasher(label: "pgbackd.sha256.stored")
    private(set) var rawSize: Int64 = 0
    private var storedSize: Int64 = 0

    /// `compression` chooses level, engine and threads.
    init(repository: Repository, relativeKey: String, content: Artifact.Content, database: String?, compression: CompressionConfiguration) async throws {
        self.key = repository.key(relative: relativeKey)
        self.relativeKey = relativeKey
        self.content = content
        self.database = database
        self.upload = try await repository.storage.makeUpload(key: key, expectedSize: nil)
        let threads = compression.threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : compression.threads
        self.encoder = ParallelGzipEncoder(level: Int32(compression.level), engine: compression.effectiveEngine, workers: threads)
    }

    /// The compressor this artifact is written with.
    var engine: GzipEngine { encoder.engine }
    /// The compressor's block: chunks of this size go to it without a copy.
    var blockSize: Int { encoder.blockSize }

    mutating func write(_ raw: [UInt8]) async throws {
        // Hashing waits its turn behind the blocks before it; it keeps no more of them than the
        // encoder keeps in flight (it is ~5× faster than level-1 compression, so rarely waits).
        await rawHash.update(raw, maxPending: encoder.maxBlocksInFlight)
        rawSize += Int64(raw.count)
        try await store(try await encoder.compress(raw))
    }

    /// Stores the output of every block compressed or being compressed (not a partial block):
    /// for when the input pauses, so what is ready goes on to the upload meanwhile.
    mutating func flush() async throws {
        try await store(try await encoder.drain())
    }

    /// Finishes the gzip stream and commits the object.
    mutating func commit() async throws -> Artifact {
        try await store(try await encoder.finish())
        let info = try await upload.commit()
        guard info.size == storedSize else {
            throw StorageError(.protocolError, key: key, message: "storage reports \(info.size) bytes for \(key) but \(storedSize) were written")
        }
        return Artifact(key: relativeKey, content: content, database: database,
                        rawSize: rawSize, rawSha256: await rawHash.finalize(),
                        storedSize: storedSize, storedSha256: await storedHash.finalize(),
                        crc32: encoder.crc32)
    }

    func abort() async {
        await upload.abort()
    }

    private mutating func store(_ blocks: [[UInt8]]) async throws {
        for block in blocks where !block.isEmpty {
            await storedHash.update(block, maxPending: encoder.maxBlocksInFlight)
            storedSize += Int64(block.count)
            try await upload.write(block)
        }
    }
}

/// SHA-256 of a stream, computed on a serial queue of its own in the order the blocks were
/// given, so hashing overlaps with compression and I/O instead of running on the caller's task.
/// Holds at most `maxPending` blocks (the caller's bound) not yet hashed.
final class SequentialHasher: @unchecked Sendable {
    private let queue: DispatchQueue
    /// Touched on `queue` only: that confinement is what makes the class Sendable.
    private var hash = SHA256()
    private let pending = Atomic(0)

    init(label: String) {
        queue = DispatchQueue(label: label)
    }

    func update(_ block: [UInt8], maxPending: Int) async {
        if pending.load(ordering: .acquiring) >= maxPending {
            // Everything queued before is done once this returns.
            _ = try? await offload(on: queue) {}
        }
        pending.add(1, ordering: .relaxed)
        queue.async { [self] in
            hash.update(data: block)
            pending.subtract(1, ordering: .releasing)
        }
    }

    /// The digest of everything given (hex), once the queue has hashed it.
    func finalize() async -> String {
        // The closure only reads confined state and cannot throw.
        try! await offload(on: queue) { [self] in hash.finalize().hexString }
    }
}

extension Digest {
    var hexString: String {
        self.map { String(format: "%02x", $0) }.joined()
    }
}
