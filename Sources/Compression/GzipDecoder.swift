import CZlib

/// Streaming gunzip: feed compressed bytes in any chunking, get the raw bytes back.
///
/// Concatenated gzip members read as one stream, as `gunzip` does, so an artifact can be appended
/// to. Unlike `gunzip`, bytes after a member that do not start another member are an error, not a
/// warning: a backup with trailing garbage is not what was written. Each member's CRC-32 and
/// length are checked by zlib. After an error the decoder is unusable. Output per call is proportional to the input (deflate expands at
/// most ~1000×), so callers bound memory by bounding their input chunks.
public struct GzipDecoder: Sendable {
    private var inflater = Inflater(windowBits: 15 + 16)
    /// Bytes of the current member have been fed, and its trailer has not been read yet.
    private var insideMember = false
    /// Compressed offset where the current member began, for error context.
    private var memberStart = 0

    /// Members read to their end so far.
    public private(set) var memberCount = 0
    /// Compressed bytes consumed so far.
    public private(set) var compressedByteCount = 0
    /// Raw bytes produced so far.
    public private(set) var rawByteCount = 0

    public init() {}

    /// Decompresses `compressed`, which may end anywhere, and returns the raw bytes it yields.
    public mutating func decompress(_ compressed: [UInt8]) throws(CompressionError) -> [UInt8] {
        guard !compressed.isEmpty else { return [] }
        if !isKnownUniquelyReferenced(&inflater) {
            inflater = Inflater(copying: inflater)
        }
        var output: [UInt8] = []
        try compressed.withUnsafeBufferPointer { input throws(CompressionError) in
            var offset = 0
            while offset < input.count {
                if !insideMember {
                    if memberCount > 0 { inflater.reset() }
                    insideMember = true
                    memberStart = compressedByteCount
                }
                let piece = UnsafeBufferPointer(rebasing: input[offset..<min(input.count, offset + (1 << 30))])
                let outcome: Inflater.Outcome
                do throws(Inflater.Failure) {
                    outcome = try inflater.inflate(piece, into: &output)
                } catch {
                    throw failure(error, at: compressedByteCount + error.consumed)
                }
                switch outcome {
                case .needsInput:
                    offset += piece.count
                    compressedByteCount += piece.count
                case .memberEnd(let consumed):
                    offset += consumed
                    compressedByteCount += consumed
                    insideMember = false
                    memberCount += 1
                }
            }
        }
        rawByteCount += output.count
        return output
    }

    /// Checks that the stream ended cleanly: at least one member, and none cut short.
    public mutating func finish() throws(CompressionError) {
        if insideMember {
            throw CompressionError(
                .truncated, context: context(at: compressedByteCount),
                message: "input ends inside a gzip member that began at byte \(memberStart)")
        }
        if memberCount == 0 {
            throw CompressionError(.truncated, context: context(at: 0), message: "no gzip data")
        }
    }

    private func failure(_ failure: Inflater.Failure, at offset: Int) -> CompressionError {
        let code: CompressionError.Code
        switch failure.status {
        case Z_DATA_ERROR where failure.message == "incorrect data check" || failure.message == "incorrect length check":
            code = .checksumMismatch  // zlib's words for a gzip trailer that does not match the data
        case Z_DATA_ERROR, Z_NEED_DICT:
            code = .corrupt
        default:
            code = .zlib(failure.status)
        }
        return CompressionError(code, context: context(at: offset), message: failure.message)
    }

    private func context(at offset: Int) -> String {
        "gzip member \(memberCount + 1), near compressed byte \(offset)"
    }
}
