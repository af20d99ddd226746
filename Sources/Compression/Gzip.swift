import CZlib

/// One-shot gzip for small objects (manifests, reports), on the calling thread.
///
/// Anything large goes through `ParallelGzipEncoder` and `GzipDecoder` instead, which stream and
/// keep zlib off the cooperative pool.
public enum Gzip {
    /// A single gzip member at `level` (0–9, or -1 for zlib's default, 6).
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        precondition((-1...9).contains(level), "gzip level \(level) is not in -1...9")
        let deflater = Deflater(level: level, windowBits: 15 + 16)
        var output: [UInt8] = []
        bytes.withUnsafeBufferPointer { input in
            var offset = 0
            repeat {
                // zlib counts input in 32 bits: feed anything huge in pieces.
                let end = min(input.count, offset + (1 << 30))
                let piece = UnsafeBufferPointer(rebasing: input[offset..<end])
                output += deflater.deflate(piece, flush: end == input.count ? Z_FINISH : Z_NO_FLUSH)
                offset = end
            } while offset < input.count
        }
        return output
    }

    /// The raw bytes of gzip data (concatenated members read as one), checked end to end.
    public static func decompress(_ bytes: [UInt8]) throws(CompressionError) -> [UInt8] {
        var decoder = GzipDecoder()
        let output = try decoder.decompress(bytes)
        return try output + decoder.finish()
    }
}
