import CZlib

/// One gzip member written in pieces: each call compresses the next piece of input and returns
/// what zlib emits for it, so a large input is compressed through a fixed buffer instead of
/// whole in memory. The member is byte for byte the one ``Gzip/compress(_:level:)`` makes of
/// the whole input (zlib's output does not depend on how its input is cut without flushes).
///
/// Not thread-safe: one caller (one dispatch queue) at a time. `@unchecked Sendable` so that
/// it can be handed from one offload to the next; its user never calls it concurrently.
public final class GzipStream: @unchecked Sendable {
    private let deflater: Deflater
    public private(set) var bytesIn: Int64 = 0
    public private(set) var bytesOut: Int64 = 0
    public private(set) var isFinished = false

    /// `level` 0–9, or -1 for zlib's default (6).
    public init(level: Int32) {
        precondition((-1...9).contains(level), "gzip level \(level) is not in -1...9")
        deflater = Deflater(level: level, windowBits: 15 + 16)
    }

    /// Compresses `input` (under 4 GiB); with `finish` the member ends after it and no further
    /// call is allowed.
    public func compress(_ input: UnsafeRawBufferPointer, finish: Bool) -> [UInt8] {
        precondition(!isFinished, "the gzip member was finished already")
        let output = deflater.deflate(input.assumingMemoryBound(to: UInt8.self), flush: finish ? Z_FINISH : Z_NO_FLUSH)
        bytesIn += Int64(input.count)
        bytesOut += Int64(output.count)
        isFinished = finish
        return output
    }
}
