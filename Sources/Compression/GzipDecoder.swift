import CDeflate
import CZlib

#if canImport(Glibc)
import Glibc
#endif

/// Streaming gunzip: feed compressed bytes in any chunking, get the raw bytes back.
///
/// Concatenated gzip members read as one stream, as `gunzip` does, so an artifact can be appended
/// to. Unlike `gunzip`, bytes after a member that do not start another member are an error, not a
/// warning: a backup with trailing garbage is not what was written. Each member's CRC-32 and
/// length are checked. After an error the decoder is unusable.
///
/// Two decoders share the work. pgbackd's artifacts are many members of at most a few MiB, each
/// with the same 10-byte header; such a member is buffered whole (up to the next copy of that
/// header) and decoded by libdeflate in one call, three to four times faster than zlib's
/// streaming inflate (docs/decisions.md, "Issue #17"). Anything else (a member whose end cannot be
/// found that way, a single huge member as the zlib engine writes, a header with optional fields,
/// any member libdeflate rejects) goes through zlib, which streams and names the fault. Memory:
/// at most ``maximumBufferedMember`` compressed bytes wait, plus one member's output; the last
/// member is only known complete at ``finish()``, which returns its bytes.
public struct GzipDecoder: Sendable {
    /// Compressed bytes buffered while looking for the end of a member before zlib takes over.
    public static let maximumBufferedMember = 32 << 20
    /// A member that says it inflates to more than this goes through zlib.
    static let maximumFastMemberOutput = 64 << 20

    private var inflater = Inflater(windowBits: 15 + 16)
    /// zlib is inside a member: every byte goes to it until the member's trailer.
    private var insideZlibMember = false
    /// Compressed offset where the current member began, for error context.
    private var memberStart = 0
    /// Bytes at a member boundary not decoded yet: the start of the next member(s).
    private var buffered: [UInt8] = []
    /// How far `buffered` has been searched for the next member header (not searched again).
    private var searchedUpTo = 0
    /// The first member's header when it has no optional fields: the boundary every later
    /// member of a pgbackd artifact starts with. nil until seen, or when members differ.
    private var memberHeader: [UInt8]?

    /// Members read to their end so far.
    public private(set) var memberCount = 0
    /// Of those, the members libdeflate decoded (the rest went through zlib).
    public private(set) var libdeflateMemberCount = 0
    /// Compressed bytes consumed so far.
    public private(set) var compressedByteCount = 0
    /// Raw bytes produced so far.
    public private(set) var rawByteCount = 0

    public init() {}

    /// Decompresses `compressed`, which may end anywhere, and returns the raw bytes it yields
    /// (members still incomplete are returned by a later call or by ``finish()``).
    public mutating func decompress(_ compressed: [UInt8]) throws(CompressionError) -> [UInt8] {
        var output: [UInt8] = []
        try feed(compressed[...], final: false, into: &output)
        rawByteCount += output.count
        return output
    }

    /// Decodes what is still buffered and checks that the stream ended cleanly: at least one
    /// member, and none cut short. Returns the raw bytes of the last member(s).
    public mutating func finish() throws(CompressionError) -> [UInt8] {
        var output: [UInt8] = []
        try feed([][...], final: true, into: &output)
        rawByteCount += output.count
        if insideZlibMember {
            throw CompressionError(
                .truncated, context: context(at: compressedByteCount),
                message: "input ends inside a gzip member that began at byte \(memberStart)")
        }
        if memberCount == 0 {
            throw CompressionError(.truncated, context: context(at: 0), message: "no gzip data")
        }
        return output
    }

    private mutating func feed(_ input: ArraySlice<UInt8>, final: Bool, into output: inout [UInt8]) throws(CompressionError) {
        var rest = input
        while true {
            if insideZlibMember {
                guard !rest.isEmpty else { return }
                rest = try inflateWithZlib(rest, into: &output)
                continue
            }
            if !rest.isEmpty {
                buffered.append(contentsOf: rest)
                rest = []
            }
            guard try decodeBufferedMembers(final: final, into: &output) else { return }
            // zlib takes the member at the start of `buffered`, and whatever follows it.
            rest = buffered[...]
            buffered = []
            searchedUpTo = 0
            insideZlibMember = true
            memberStart = compressedByteCount
            if memberCount > 0 { inflater.reset() }
            if rest.isEmpty { return }
        }
    }

    /// Decodes every complete member at the start of `buffered` with libdeflate. Returns true
    /// when the member now at its start must go through zlib instead, false when it waits for
    /// more input (or nothing is left).
    private mutating func decodeBufferedMembers(final: Bool, into output: inout [UInt8]) throws(CompressionError) -> Bool {
        var start = 0
        defer {
            if start > 0 {
                buffered.removeFirst(start)
                searchedUpTo = max(0, searchedUpTo - start)
            }
        }
        while start < buffered.count {
            let available = buffered.count - start
            guard available >= 18 else { return final }  // header + trailer; zlib names a short tail
            if memberHeader == nil && memberCount == 0 {
                memberHeader = Self.plainHeader(buffered[start..<start + 10])
            }
            guard let header = memberHeader, buffered[start..<start + 10].elementsEqual(header) else { return true }
            let end: Int
            if let next = nextHeader(header, after: start) {
                end = next
            } else if final {
                end = buffered.count
            } else {
                return available > Self.maximumBufferedMember
            }
            guard let consumed = decodeWithLibdeflate(buffered[start..<end], into: &output) else { return true }
            start += consumed
            compressedByteCount += consumed
            memberCount += 1
            libdeflateMemberCount += 1
        }
        return false
    }

    /// The offset of the next occurrence of `header` after the member starting at `start`.
    private mutating func nextHeader(_ header: [UInt8], after start: Int) -> Int? {
        let from = max(start + 18, searchedUpTo)
        let last = buffered.count - header.count
        guard from <= last else { return nil }
        let found: Int? = buffered.withUnsafeBufferPointer { bytes in
            var index = from
            while index <= last {
                // memchr for the first byte, then compare the rest.
                guard let hit = memchr(bytes.baseAddress! + index, Int32(header[0]), last - index + 1) else { return nil }
                index = bytes.baseAddress!.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                if header.withUnsafeBufferPointer({ memcmp(bytes.baseAddress! + index, $0.baseAddress!, header.count) == 0 }) {
                    return index
                }
                index += 1
            }
            return nil
        }
        searchedUpTo = found ?? (last + 1)
        return found
    }

    /// One member, and maybe bytes after it, decoded in one call. Returns the compressed bytes
    /// the member took, or nil when libdeflate cannot decode it (zlib then does, or says why).
    private func decodeWithLibdeflate(_ member: ArraySlice<UInt8>, into output: inout [UInt8]) -> Int? {
        // The trailer's ISIZE (length mod 2^32) sizes the output when `member` is exactly one member.
        let trailer = member.endIndex - 4
        let declared = (0..<4).reduce(0) { $0 | Int(member[trailer + $1]) << (8 * $1) }
        guard declared <= Self.maximumFastMemberOutput, let decompressor = libdeflate_alloc_decompressor() else { return nil }
        defer { libdeflate_free_decompressor(decompressor) }
        var consumed = 0
        var succeeded = false
        // Uninitialised capacity, not zeros: no pass over the output before libdeflate's own.
        let decoded = [UInt8](unsafeUninitializedCapacity: declared) { out, count in
            var produced = 0
            let result = member.withUnsafeBufferPointer { input in
                libdeflate_gzip_decompress_ex(decompressor, input.baseAddress, input.count, out.baseAddress, declared, &consumed, &produced)
            }
            succeeded = result == LIBDEFLATE_SUCCESS && consumed > 0
            count = succeeded ? produced : 0
        }
        guard succeeded else { return nil }
        if output.isEmpty { output = decoded } else { output.append(contentsOf: decoded) }
        return consumed
    }

    /// Feeds zlib until its member ends; returns the input after that member.
    private mutating func inflateWithZlib(_ input: ArraySlice<UInt8>, into output: inout [UInt8]) throws(CompressionError) -> ArraySlice<UInt8> {
        if !isKnownUniquelyReferenced(&inflater) {
            inflater = Inflater(copying: inflater)
        }
        var offset = input.startIndex
        while offset < input.endIndex {
            let pieceEnd = min(input.endIndex, offset + (1 << 30))
            let outcome: Inflater.Outcome
            do throws(Inflater.Failure) {
                outcome = try input[offset..<pieceEnd].withUnsafeBufferPointer { piece throws(Inflater.Failure) in
                    try inflater.inflate(piece, into: &output)
                }
            } catch {
                throw failure(error, at: compressedByteCount + error.consumed)
            }
            switch outcome {
            case .needsInput:
                compressedByteCount += pieceEnd - offset
                offset = pieceEnd
            case .memberEnd(let consumed):
                compressedByteCount += consumed
                insideZlibMember = false
                memberCount += 1
                return input[(offset + consumed)...]
            }
        }
        return input[input.endIndex...]
    }

    /// A gzip header without optional fields (FLG = 0), the kind every member of a pgbackd
    /// artifact carries; nil for anything else.
    private static func plainHeader(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        let header = Array(bytes)
        return header[0] == 0x1F && header[1] == 0x8B && header[2] == 8 && header[3] == 0 ? header : nil
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
