import CShims
import CZlib

/// The size of deflate's history window, and so of the dictionary that primes each parallel block.
let deflateWindowSize = 32 * 1024

/// Owns one zlib deflate stream.
///
/// The `z_stream` lives at a fixed heap address because zlib keeps a back pointer to it
/// (`state->strm`) and rejects calls made through a moved copy.
final class Deflater {
    private let stream: UnsafeMutablePointer<z_stream>

    /// `windowBits` -15 gives raw deflate (no framing), 31 gives zlib's own gzip framing.
    /// `memLevel` 8 is zlib's default; 9 doubles the hash table and the symbol buffer (fewer,
    /// better-fitted Huffman blocks) for ~0.13 % less output on relation files at ~5 % more CPU.
    init(level: Int32, windowBits: Int32, memLevel: Int32 = 8) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = pgbackd_deflate_init2(stream, level, windowBits, memLevel, Z_DEFAULT_STRATEGY)
        // Only fails on bad arguments (checked by callers) or out of memory, where Swift traps too.
        precondition(status == Z_OK, "deflateInit2 failed with \(status)")
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Starts a new stream with the same settings, keeping the allocated state (a per-block
    /// compressor reuses one stream instead of allocating zlib's ~270 KiB of tables per block).
    func reset() {
        let status = deflateReset(stream)
        precondition(status == Z_OK, "deflateReset failed with \(status)")
    }

    /// Primes the history window so a block cut from the middle of a stream compresses as well as
    /// if it had not been cut (raw deflate only; right after init or `reset`). Only the last
    /// 32 KiB matter: zlib keeps no more.
    func setDictionary(_ dictionary: UnsafeBufferPointer<UInt8>) {
        guard let base = dictionary.baseAddress, !dictionary.isEmpty else { return }
        let status = deflateSetDictionary(stream, base, UInt32(dictionary.count))
        precondition(status == Z_OK, "deflateSetDictionary failed with \(status)")
    }

    /// Compresses all of `input` and returns what deflate emits for `flush`: with `Z_SYNC_FLUSH`
    /// the output ends on a byte boundary, with `Z_FINISH` the stream is complete.
    /// `input` must be under 4 GiB (zlib counts in 32 bits).
    func deflate(_ input: UnsafeBufferPointer<UInt8>, flush: Int32) -> [UInt8] {
        lending(input, to: stream) { deflateLent(flush: flush) }
    }

    private func deflateLent(flush: Int32) -> [UInt8] {
        var output: [UInt8] = []
        while true {
            // deflateBound covers Z_FINISH in one call; a sync flush adds a few bytes, hence the
            // margin, and the loop covers anything beyond.
            let room = Int(deflateBound(stream, UInt(stream.pointee.avail_in))) + 64
            var status = Z_OK
            let piece = [UInt8](unsafeUninitializedCapacity: room) { buffer, count in
                stream.pointee.next_out = buffer.baseAddress
                stream.pointee.avail_out = UInt32(room)
                status = CZlib.deflate(stream, flush)
                count = room - Int(stream.pointee.avail_out)
            }
            if output.isEmpty { output = piece } else { output += piece }
            switch status {
            case Z_STREAM_END:
                return output
            case Z_OK, Z_BUF_ERROR:
                // Done when all input is taken and deflate stopped with room to spare.
                if flush != Z_FINISH && stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 {
                    return output
                }
            default:
                preconditionFailure("deflate failed with \(status)")
            }
        }
    }
}

/// Owns one zlib inflate stream (gzip framing, CRC and length checked by zlib).
///
/// `@unchecked Sendable` because `GzipDecoder` must be `Sendable` to be moved onto an offload
/// queue; it keeps this class copy-on-write (it mutates it only while uniquely referenced, like
/// Array's storage), so no two threads ever touch the same stream.
final class Inflater: @unchecked Sendable {
    enum Outcome {
        /// All input was taken; the member goes on.
        case needsInput
        /// The member's trailer was read and checked; `consumed` bytes of the input belong to it.
        case memberEnd(consumed: Int)
    }

    /// A zlib failure, turned into `CompressionError` by the caller, who knows the context.
    struct Failure: Error {
        var status: Int32
        var message: String
        var consumed: Int
    }

    private let stream: UnsafeMutablePointer<z_stream>
    /// inflate writes here and the produced bytes are appended to the caller's array: output is
    /// copied once, and a call fed a few bytes costs no more than those bytes' output.
    private let scratch = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 256 * 1024)

    init(windowBits: Int32) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = pgbackd_inflate_init2(stream, windowBits)
        precondition(status == Z_OK, "inflateInit2 failed with \(status)")
    }

    /// A copy at the same point of the stream (window and all), for copy-on-write.
    init(copying other: Inflater) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = inflateCopy(stream, other.stream)
        precondition(status == Z_OK, "inflateCopy failed with \(status)")
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        scratch.deallocate()
    }

    /// Starts a new member (gunzip reads concatenated members as one stream).
    func reset() {
        let status = inflateReset(stream)
        precondition(status == Z_OK, "inflateReset failed with \(status)")
    }

    /// Inflates `input` (under 4 GiB) until it is used up or the member ends, appending the output.
    func inflate(_ input: UnsafeBufferPointer<UInt8>, into output: inout [UInt8]) throws(Failure) -> Outcome {
        try lending(input, to: stream) { () throws(Failure) in try inflateLent(inputCount: input.count, into: &output) }
    }

    private func inflateLent(inputCount: Int, into output: inout [UInt8]) throws(Failure) -> Outcome {
        while true {
            stream.pointee.next_out = scratch.baseAddress
            stream.pointee.avail_out = UInt32(scratch.count)
            let status = CZlib.inflate(stream, Z_NO_FLUSH)
            let produced = scratch.count - Int(stream.pointee.avail_out)
            output.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[..<produced]))
            let consumed = inputCount - Int(stream.pointee.avail_in)
            switch status {
            case Z_STREAM_END:
                return .memberEnd(consumed: consumed)
            case Z_OK, Z_BUF_ERROR:
                // Z_BUF_ERROR here only means "no progress possible": the input is used up.
                if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 { return .needsInput }
            case Z_NEED_DICT:
                throw Failure(status: status, message: "stream asks for a preset dictionary", consumed: consumed)
            default:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                throw Failure(status: status, message: message, consumed: consumed)
            }
        }
    }
}

/// Lends `input` (under 4 GiB: zlib counts in 32 bits) to `stream` for the length of `body`, and
/// takes the buffer pointers back after it, so none outlives the call that lent them.
private func lending<T, E: Error>(_ input: UnsafeBufferPointer<UInt8>, to stream: UnsafeMutablePointer<z_stream>, _ body: () throws(E) -> T) throws(E) -> T {
    precondition(input.count <= Int(UInt32.max))
    stream.pointee.next_in = input.baseAddress.map { UnsafeMutablePointer(mutating: $0) }
    stream.pointee.avail_in = UInt32(input.count)
    defer {
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
    }
    return try body()
}
