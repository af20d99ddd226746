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

/// Which DEFLATE compressor writes the gzip stream. Both write standard gzip that `gunzip` and
/// ``GzipDecoder`` read; they differ in speed, size and framing (docs/decisions.md has the figures).
public enum GzipEngine: String, Sendable, Hashable, CaseIterable {
    /// zlib, pigz-style: each block is raw deflate primed with the previous block's last 32 KiB
    /// and ended with a sync flush, so the blocks concatenate into one deflate stream and the
    /// output is a single gzip member, within 0.01 % of one zlib stream's size (`gzip -N`). About
    /// 2.5× the CPU of libdeflate at level 6, and 0.6 % smaller on PostgreSQL relation files.
    case zlib
    /// libdeflate, one complete gzip member per block (4 MiB by default). About 3.5× zlib's
    /// speed at level 6 on pg_dump output for +0.14 % of size; on relation files larger than zlib
    /// at the same level from 5 up (+0.6 % at 6), but level 8 stores less than zlib's 6 in 0.7×
    /// its CPU.
    case libdeflate

    /// Raw bytes per block unless the caller says otherwise. libdeflate's members start without
    /// history, and at 4 MiB that costs 0.1–0.25 % less than at 1 MiB (same CPU, measured on
    /// Daylog's dumps and relation files; docs/decisions.md). zlib's blocks are primed with the
    /// 32 KiB before them, so they lose nothing at 1 MiB and keep memory lower.
    public var defaultBlockSize: Int {
        switch self {
        case .zlib: 1 << 20
        case .libdeflate: 4 << 20
        }
    }
}

/// Gzip on all cores, for streams of gigabytes (pg_dump, base backups).
///
/// Input is cut into blocks, each compressed on its own worker queue by the chosen ``GzipEngine``:
/// with libdeflate each block becomes one complete gzip member (concatenated members are one gzip
/// file, RFC 1952 §2.2: `gunzip`, `pigz -d`, zlib's `inflate` in a loop and ``GzipDecoder`` read
/// the stream whole); with zlib the blocks are pieces of one deflate stream in one member, each
/// primed with the 32 KiB before it, as pigz does.
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
    public let engine: GzipEngine
    public let workers: Int
    public let blockSize: Int

    /// Raw bytes accepted so far.
    public private(set) var rawByteCount = 0
    /// Compressed bytes returned so far, every gzip header and trailer included.
    public private(set) var compressedByteCount = 0
    /// CRC-32 of the raw bytes whose compressed form has been returned; of all input after `finish`.
    /// With libdeflate each member's trailer holds its own block's CRC; this one covers the
    /// whole stream (and is the zlib engine's one trailer).
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
    /// zlib engine: the last block started, whose tail primes the next one (shares its storage
    /// with that block: no copy, and at most one block more in memory).
    private var previousBlock: [UInt8] = []
    /// zlib engine: the one gzip header has been returned.
    private var headerWritten = false
    /// Oldest first.
    private var inFlight: [InFlightBlock] = []
    private var blocksStarted = 0
    private var finished = false

    /// - Parameters:
    ///   - level: level 0–9 on zlib's scale, or -1 for the default (6).
    ///   - engine: the compressor (``GzipEngine``); libdeflate unless told otherwise.
    ///   - workers: queues compressing at once; by default one per available core.
    ///   - blockSize: raw bytes per block; nil for the engine's ``GzipEngine/defaultBlockSize``.
    ///     libdeflate's 18-byte member framing and the history lost at each cut cost ~0.15 % of
    ///     size at 1 MiB and about a quarter of that at 4 MiB; zlib's 4-byte sync marker per
    ///     block well under 0.1 %. zlib blocks under 32 KiB still decode correctly but prime the
    ///     next block with less history.
    public init(
        level: Int32,
        engine: GzipEngine = .libdeflate,
        workers: Int = ProcessInfo.processInfo.activeProcessorCount,
        blockSize: Int? = nil
    ) {
        let blockSize = blockSize ?? engine.defaultBlockSize
        precondition((-1...9).contains(level), "gzip level \(level) is not in -1...9")
        precondition(workers >= 1, "need at least one worker")
        precondition(blockSize >= 1, "block size must be positive")
        self.level = level == Z_DEFAULT_COMPRESSION ? 6 : level
        self.engine = engine
        self.workers = workers
        self.blockSize = blockSize
        let level = self.level
        self.workerQueues = (0..<workers).map {
            BlockCompressor(engine: engine, level: level, label: "pgbackd.gzip.worker.\($0)")
        }
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
                try await start(block, isLast: false, into: &output)
            } else {
                if pending.isEmpty { pending.reserveCapacity(blockSize) }
                let take = min(blockSize - pending.count, raw.count - offset)
                pending.append(contentsOf: raw[offset..<offset + take])
                offset += take
                if pending.count == blockSize {
                    let block = pending
                    pending = []
                    try await start(block, isLast: false, into: &output)
                }
            }
        }
        try await collectFinished(into: &output)
        return output
    }

    /// Waits for every block started so far and returns their output, in stream order. Bytes
    /// short of a whole block stay pending (cutting them off early would change the stream):
    /// for a caller whose input pauses, so finished output does not wait for the next input.
    public mutating func drain() async throws -> [[UInt8]] {
        precondition(!finished, "drain after finish")
        var output: [[UInt8]] = []
        while !inFlight.isEmpty {
            try await collectOldest(into: &output)
        }
        return output
    }

    /// Compresses what is left and returns all remaining output.
    public mutating func finish() async throws -> [[UInt8]] {
        precondition(!finished, "finish called twice")
        var output: [[UInt8]] = []
        switch engine {
        case .libdeflate:
            // An empty stream is still one (empty) member: gunzip rejects a zero-byte file.
            if !pending.isEmpty || blocksStarted == 0 {
                let block = pending
                pending = []
                try await start(block, isLast: true, into: &output)
            }
        case .zlib:
            // Always a last block, even an empty one: it carries the final-block bit.
            let block = pending
            pending = []
            try await start(block, isLast: true, into: &output)
        }
        while !inFlight.isEmpty {
            try await collectOldest(into: &output)
        }
        if engine == .zlib {
            let size = UInt32(truncatingIfNeeded: rawByteCount)  // ISIZE is the length mod 2^32
            let trailer = withUnsafeBytes(of: crc32.littleEndian) { Array($0) }
                + withUnsafeBytes(of: size.littleEndian) { Array($0) }
            append(trailer, to: &output)
        }
        previousBlock = []
        finished = true
        return output
    }

    private mutating func start(_ block: [UInt8], isLast: Bool, into output: inout [[UInt8]]) async throws {
        while inFlight.count >= maxBlocksInFlight {
            try await collectOldest(into: &output)
        }
        let worker = workerQueues[blocksStarted % workerQueues.count]
        let dictionary = previousBlock  // empty for libdeflate, and for zlib's first block
        let done = CompletionFlag()
        let work = OffloadedWork(on: worker.queue) {
            defer { done.set() }
            return worker.compress(block, dictionary: dictionary, isLast: isLast)
        }
        inFlight.append(InFlightBlock(work: work, done: done))
        if engine == .zlib { previousBlock = block }
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
        if engine == .zlib && !headerWritten {
            let header = gzipHeader(level: level)
            output.append(header)
            compressedByteCount += header.count
            headerWritten = true
        }
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

/// One worker: a serial queue and the compressor only that queue touches. Neither libdeflate
/// compressors nor zlib streams are thread-safe, but both are reusable, so each worker keeps one
/// for the whole stream instead of allocating its tables per block.
private final class BlockCompressor: @unchecked Sendable {
    private enum Codec {
        /// A libdeflate compressor, freed in `deinit`.
        case libdeflate(OpaquePointer)
        /// A raw deflate stream (no framing: the encoder writes the one gzip header and trailer).
        case zlib(Deflater)
    }

    let queue: DispatchQueue
    /// Used on `queue` only: that confinement is what makes the class Sendable.
    private let codec: Codec
    private let level: Int32

    init(engine: GzipEngine, level: Int32, label: String) {
        queue = DispatchQueue(label: label)
        self.level = level
        switch engine {
        case .libdeflate:
            // Only fails for a level outside 0...12 (checked by the encoder) or out of memory.
            guard let compressor = libdeflate_alloc_compressor(level) else {
                fatalError("libdeflate_alloc_compressor(\(level)) failed: out of memory")
            }
            codec = .libdeflate(compressor)
        case .zlib:
            // memLevel 9, as pgBackRest's gz compressor: with zlib's default 8 a base backup
            // stored 0.15 % more than pgBackRest's at the same level (docs/decisions.md).
            codec = .zlib(Deflater(level: level, windowBits: -15, memLevel: 9))
        }
    }

    deinit {
        if case .libdeflate(let compressor) = codec {
            libdeflate_free_compressor(compressor)
        }
    }

    /// One block: with libdeflate a whole gzip member (`dictionary` and `isLast` unused); with
    /// zlib a piece of one raw deflate stream, primed with the end of `dictionary` and ended with
    /// a sync flush, or with the final block when `isLast`. Runs on `queue`; the block's CRC comes
    /// from here too (libdeflate's from its member trailer, zlib's from one `crc32` pass), so the
    /// ordered stage only combines.
    func compress(_ block: [UInt8], dictionary: [UInt8], isLast: Bool) -> CompressedBlock {
        dispatchPrecondition(condition: .onQueue(queue))
        return block.withUnsafeBufferPointer { input in
            switch codec {
            case .libdeflate(let compressor):
                let bound = libdeflate_gzip_compress_bound(compressor, input.count)
                let bytes = [UInt8](unsafeUninitializedCapacity: bound) { output, count in
                    count = libdeflate_gzip_compress(compressor, input.baseAddress, input.count, output.baseAddress, bound)
                    // The bound is exact for the worst case, so 0 ("did not fit") cannot happen.
                    precondition(count > 0, "libdeflate_gzip_compress overflowed its own bound")
                }
                // The member's trailer (RFC 1952: CRC-32, then ISIZE, little-endian) already holds
                // the block's CRC, computed by libdeflate while compressing: no second pass.
                let crc = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt32.self) }
                return CompressedBlock(bytes: bytes, crc: UInt32(littleEndian: crc), rawCount: input.count)
            case .zlib(let deflater):
                deflater.reset()
                if level != 0 {  // stored blocks never look back
                    dictionary.suffix(deflateWindowSize).withUnsafeBufferPointer { deflater.setDictionary($0) }
                }
                let bytes = deflater.deflate(input, flush: isLast ? Z_FINISH : Z_SYNC_FLUSH)
                let crc = CZlib.crc32(0, input.baseAddress, UInt32(input.count))
                return CompressedBlock(bytes: bytes, crc: UInt32(crc), rawCount: input.count)
            }
        }
    }
}

/// RFC 1952 header as zlib writes it: no name, mtime 0 (like `gzip -n`), OS Unix; XFL says
/// "fastest" or "best" as gzip does.
func gzipHeader(level: Int32) -> [UInt8] {
    let extraFlags: UInt8 = level == 9 ? 2 : (level < 2 ? 4 : 0)
    return [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, extraFlags, 3]
}
