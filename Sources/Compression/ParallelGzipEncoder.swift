import CDeflate
import CZlib
import Dispatch
import OffloadedWork
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Gzip on all cores, for streams of gigabytes (pg_dump, base backups).
///
/// Input is cut into blocks; each block becomes one complete gzip member, compressed with
/// libdeflate on its own worker queue. Concatenated members are one gzip file (RFC 1952 §2.2):
/// `gunzip`, `pigz -d`, zlib's `inflate` in a loop and ``GzipDecoder`` read the stream whole.
/// libdeflate rather than zlib because at level 6 it is about 3.5× faster for the same size
/// (docs/decisions.md); the price of independent members is ~0.15 % of size at 1 MiB blocks,
/// since a block cannot refer back into the previous one.
///
/// Use it from one task: `compress` for each chunk, then `finish` once; write the returned chunks in
/// order. At most `maxBlocksInFlight` blocks are being compressed or waiting to be returned, so
/// memory stays near `2 × maxBlocksInFlight × blockSize` whatever the stream's size.
///
/// After a thrown error the stream is unusable (compression itself cannot fail; awaiting a worker
/// is merely declared throwing). Cancellation is the caller's business: a cancelled caller stops
/// feeding, and blocks already started finish on their queues and are dropped.
public struct ParallelGzipEncoder: Sendable {
    public let level: Int32
    public let workers: Int
    public let blockSize: Int

    /// Raw bytes accepted so far.
    public private(set) var rawByteCount = 0
    /// Compressed bytes returned so far, every member's header and trailer included.
    public private(set) var compressedByteCount = 0
    /// CRC-32 of the raw bytes whose compressed form has been returned; of all input after `finish`.
    /// Each member's trailer holds its own block's CRC; this one covers the whole stream.
    public private(set) var crc32: UInt32 = 0

    /// Two blocks per worker: one being compressed, one queued behind it, so a worker never idles
    /// while the caller is busy writing out the previous result.
    public var maxBlocksInFlight: Int { 2 * workers }
    /// Blocks started whose output has not been returned yet.
    public var blocksInFlight: Int { inFlight.count }

    /// One serial queue per worker, each with its own compressor: blocks go round-robin, so
    /// `workers` bounds the cores used. (A concurrent queue on the overcommitting pool would
    /// start a thread per queued block.)
    private let workerQueues: [BlockCompressor]
    /// The start of the next block, until it is full.
    private var pending: [UInt8] = []
    /// Oldest first.
    private var inFlight: [InFlightBlock] = []
    private var blocksStarted = 0
    private var finished = false

    /// - Parameters:
    ///   - level: level 0–9 on zlib's scale, or -1 for the default (6).
    ///   - workers: queues compressing at once; by default one per available core.
    ///   - blockSize: raw bytes per member. At 1 MiB the 18-byte member framing and the history
    ///     lost at each cut cost ~0.15 % of size, while every worker gets work early.
    public init(
        level: Int32,
        workers: Int = ProcessInfo.processInfo.activeProcessorCount,
        blockSize: Int = 1 << 20
    ) {
        precondition((-1...9).contains(level), "gzip level \(level) is not in -1...9")
        precondition(workers >= 1, "need at least one worker")
        precondition(blockSize >= 1, "block size must be positive")
        self.level = level == Z_DEFAULT_COMPRESSION ? 6 : level
        self.workers = workers
        self.blockSize = blockSize
        let level = self.level
        self.workerQueues = (0..<workers).map { BlockCompressor(level: level, label: "pgbackd.gzip.worker.\($0)") }
    }

    /// Takes `raw` (any length), starts compressing every block it completes, and returns the
    /// compressed output that is ready, in stream order; often empty. Suspends while
    /// `maxBlocksInFlight` blocks are outstanding, until the oldest is done.
    public mutating func compress(_ raw: [UInt8]) async throws -> [[UInt8]] {
        precondition(!finished, "compress after finish")
        rawByteCount += raw.count
        var output: [[UInt8]] = []
        var offset = 0
        while offset < raw.count {
            if pending.isEmpty && raw.count - offset >= blockSize {
                // A whole block straight from the input: no staging copy (none at all if it is exactly one).
                let block = raw.count == blockSize ? raw : Array(raw[offset..<offset + blockSize])
                offset += blockSize
                try await start(block, into: &output)
            } else {
                if pending.isEmpty { pending.reserveCapacity(blockSize) }
                let take = min(blockSize - pending.count, raw.count - offset)
                pending.append(contentsOf: raw[offset..<offset + take])
                offset += take
                if pending.count == blockSize {
                    let block = pending
                    pending = []
                    try await start(block, into: &output)
                }
            }
        }
        try await collectFinished(into: &output)
        return output
    }

    /// Compresses what is left and returns all remaining output.
    public mutating func finish() async throws -> [[UInt8]] {
        precondition(!finished, "finish called twice")
        var output: [[UInt8]] = []
        // An empty stream is still one (empty) member: gunzip rejects a zero-byte file.
        if !pending.isEmpty || blocksStarted == 0 {
            let block = pending
            pending = []
            try await start(block, into: &output)
        }
        while !inFlight.isEmpty {
            try await collectOldest(into: &output)
        }
        finished = true
        return output
    }

    private mutating func start(_ block: [UInt8], into output: inout [[UInt8]]) async throws {
        while inFlight.count >= maxBlocksInFlight {
            try await collectOldest(into: &output)
        }
        let worker = workerQueues[blocksStarted % workerQueues.count]
        let done = CompletionFlag()
        let work = OffloadedWork(on: worker.queue) {
            defer { done.set() }
            return worker.compress(block)
        }
        inFlight.append(InFlightBlock(work: work, done: done))
        blocksStarted += 1
    }

    /// Returns the finished blocks at the head of the line without waiting for any other.
    private mutating func collectFinished(into output: inout [[UInt8]]) async throws {
        while let oldest = inFlight.first, oldest.done.isSet {
            try await collectOldest(into: &output)
        }
    }

    private mutating func collectOldest(into output: inout [[UInt8]]) async throws {
        let block = try await inFlight.removeFirst().work.value
        crc32 = UInt32(crc32_combine(UInt(crc32), UInt(block.crc), block.rawCount))
        append(block.bytes, to: &output)
    }

    private mutating func append(_ bytes: [UInt8], to output: inout [[UInt8]]) {
        output.append(bytes)
        compressedByteCount += bytes.count
    }
}

/// A block being compressed. `done` lets `compress` see, without suspending, which blocks can be
/// returned now; `OffloadedWork` only offers a suspending wait.
private struct InFlightBlock: Sendable {
    let work: OffloadedWork<CompressedBlock>
    let done: CompletionFlag
}

private final class CompletionFlag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

struct CompressedBlock: Sendable {
    var bytes: [UInt8]
    var crc: UInt32
    var rawCount: Int
}

/// One worker: a serial queue and the libdeflate compressor only that queue touches. libdeflate
/// compressors are not thread-safe but are reusable, so each worker keeps one for the whole
/// stream instead of allocating its tables per block.
private final class BlockCompressor: @unchecked Sendable {
    let queue: DispatchQueue
    /// Used on `queue` only: that confinement is what makes the class Sendable.
    private let compressor: OpaquePointer

    init(level: Int32, label: String) {
        queue = DispatchQueue(label: label)
        // Only fails for a level outside 0...12 (checked by the encoder) or out of memory.
        guard let compressor = libdeflate_alloc_compressor(level) else {
            fatalError("libdeflate_alloc_compressor(\(level)) failed: out of memory")
        }
        self.compressor = compressor
    }

    deinit {
        libdeflate_free_compressor(compressor)
    }

    /// One block as one gzip member. Runs on `queue`; the CRC is computed here too (libdeflate
    /// computes it for the trailer, zlib's `crc32` is as fast), so the ordered stage only combines.
    func compress(_ block: [UInt8]) -> CompressedBlock {
        dispatchPrecondition(condition: .onQueue(queue))
        return block.withUnsafeBufferPointer { input in
            let bound = libdeflate_gzip_compress_bound(compressor, input.count)
            let bytes = [UInt8](unsafeUninitializedCapacity: bound) { output, count in
                count = libdeflate_gzip_compress(compressor, input.baseAddress, input.count, output.baseAddress, bound)
                // The bound is exact for the worst case, so 0 ("did not fit") cannot happen.
                precondition(count > 0, "libdeflate_gzip_compress overflowed its own bound")
            }
            let crc = CZlib.crc32(0, input.baseAddress, UInt32(input.count))
            return CompressedBlock(bytes: bytes, crc: UInt32(crc), rawCount: input.count)
        }
    }
}
