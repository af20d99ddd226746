import Compression
import SyntheticData
import Testing

@Suite struct GzipDecoderTests {
    /// A three-block parallel stream: corruption has somewhere in the middle to land.
    static func sample() async throws -> (data: [UInt8], compressed: [UInt8]) {
        (sampleData, try await encodeParallel(sampleData, level: 6, blockSize: 1 << 20).bytes)
    }
    static let sampleData = TestData.text(count: 3 << 20)

    func decodeError(_ compressed: [UInt8], chunkSizes: [Int] = [64 * 1024]) -> CompressionError? {
        do {
            _ = try decodeStreaming(compressed, chunkSizes: chunkSizes)
            return nil
        } catch let error as CompressionError {
            return error
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    @Test("compressed input fed in odd chunk sizes", arguments: [[1], [2, 3, 1000], [7919], [1 << 20]])
    func oddChunks(chunkSizes: [Int]) async throws {
        let data = TestData.text(count: 700_000)
        let compressed = try await encodeParallel(data, level: 6, blockSize: 100_000).bytes
        let (decoded, decoder) = try decodeStreaming(compressed, chunkSizes: chunkSizes)
        #expect(decoded == data)
        #expect(decoder.rawByteCount == data.count)
        #expect(decoder.compressedByteCount == compressed.count)
    }

    @Test("concatenated members decode as one stream, like gunzip")
    func concatenatedMembers() async throws {
        let parts = [TestData.text(count: 100_000, seed: 1), [], TestData.text(count: 2_500_000, seed: 2), [1, 2, 3],
                     TestData.text(count: 2_500_000, seed: 4)]
        var compressed = Gzip.compress(parts[0], level: 1)
        compressed += Gzip.compress(parts[1], level: 9)
        compressed += try await encodeParallel(parts[2], level: 6, blockSize: 1 << 20).bytes
        compressed += try await encodeParallel(parts[3], level: 0).bytes
        compressed += try await encodeParallel(parts[4], level: 6, engine: .zlib, blockSize: 1 << 20).bytes
        let whole = parts.flatMap { $0 }
        for chunkSizes in [[compressed.count], [1, 4099], [65_536]] {
            let (decoded, decoder) = try decodeStreaming(compressed, chunkSizes: chunkSizes)
            #expect(decoded == whole)
            #expect(decoder.memberCount == 1 + 1 + 3 + 1 + 1, "libdeflate writes one member per 1 MiB block, zlib one in all")
        }
        #expect(try gunzip(compressed) == whole)
    }

    @Test("pgbackd's members are decoded by libdeflate, in any chunking; a single zlib member by zlib")
    func libdeflateDecodesWholeMembers() async throws {
        let data = TestData.text(count: 3_500_000)
        let members = try await encodeParallel(data, level: 1, blockSize: 1 << 20).bytes
        for chunkSizes in [[members.count], [1, 4099], [65_536], [3 << 20]] {
            let (decoded, decoder) = try decodeStreaming(members, chunkSizes: chunkSizes)
            #expect(decoded == data)
            #expect(decoder.memberCount == 4)
            #expect(decoder.libdeflateMemberCount == 4, "chunks \(chunkSizes)")
        }
        let single = try await encodeParallel(data, level: 1, engine: .zlib, blockSize: 1 << 20).bytes
        let (decoded, decoder) = try decodeStreaming(single, chunkSizes: [65_536])
        #expect(decoded == data)
        #expect(decoder.memberCount == 1)
    }

    @Test("a member whose bytes contain the member header itself still decodes (zlib takes it)")
    func headerInsideMember() async throws {
        // Level 0 stores blocks verbatim, so raw bytes that repeat the header appear in the
        // compressed stream where the next member seems to begin.
        let probe = try await encodeParallel([1, 2, 3], level: 0).bytes
        let header = Array(probe.prefix(10))
        let data = TestData.text(count: 300_000, seed: 7) + header + TestData.text(count: 300_000, seed: 8)
        let compressed = try await encodeParallel(data, level: 0, blockSize: 1 << 20).bytes
        #expect(compressed.count > data.count, "stored blocks")
        let (decoded, decoder) = try decodeStreaming(compressed, chunkSizes: [65_536])
        #expect(decoded == data)
        #expect(decoder.memberCount == 1)
        #expect(decoder.libdeflateMemberCount == 0, "the false boundary sent the member to zlib")
        var damaged = compressed
        damaged[damaged.count - 6] ^= 0x01  // the CRC: zlib, not libdeflate, reports it
        #expect(decodeError(damaged)?.code == .checksumMismatch)
    }

    @Test("a flipped byte in the middle is detected, wherever it lands")
    func flippedByte() async throws {
        let (_, compressed) = try await Self.sample()
        for position in stride(from: compressed.count / 10, to: compressed.count - 8, by: compressed.count / 7) {
            var damaged = compressed
            damaged[position] ^= 0x10
            let error = decodeError(damaged)
            #expect(error?.code == .corrupt || error?.code == .checksumMismatch, "byte \(position): \(String(describing: error))")
        }
    }

    @Test("a wrong CRC or length in the trailer is a checksum mismatch")
    func wrongTrailer() async throws {
        let (_, compressed) = try await Self.sample()
        for offsetFromEnd in [8, 5, 4, 1] {  // CRC-32 bytes, then ISIZE bytes
            var damaged = compressed
            damaged[damaged.count - offsetFromEnd] ^= 0x01
            #expect(decodeError(damaged)?.code == .checksumMismatch, "trailer byte -\(offsetFromEnd)")
        }
    }

    @Test("a stream cut short is truncated at finish", arguments: [1, 4, 8, 9, 1000, 500_000])
    func truncated(dropped: Int) async throws {
        let (_, compressed) = try await Self.sample()
        let error = decodeError(Array(compressed.dropLast(dropped)))
        #expect(error?.code == .truncated)
        // 3 MiB in 1 MiB blocks is three members (~440 KB each); the cut lands in the last, or
        // for 500,000 bytes in the second, and the error names the member it cut.
        let member = dropped < 400_000 ? "member 3" : "member 2"
        #expect(error?.context.contains(member) == true, "\(String(describing: error))")
    }

    @Test("empty input, a bare header, a cut second member are truncated")
    func truncatedShapes() throws {
        let member = Gzip.compress(TestData.text(count: 10_000))
        #expect(decodeError([])?.code == .truncated)
        #expect(decodeError(Array(member.prefix(5)))?.code == .truncated)
        let error = decodeError(member + Array(member.prefix(member.count / 2)))
        #expect(error?.code == .truncated)
        #expect(error?.context.contains("member 2") == true)
    }

    @Test("not gzip, or garbage after a member, is corrupt")
    func notGzip() {
        let member = Gzip.compress(Array("hello".utf8))
        #expect(decodeError(Array("plain text, not gzip".utf8))?.code == .corrupt)
        #expect(decodeError(member + Array("trailing garbage".utf8))?.code == .corrupt)
        var badMethod = member
        badMethod[2] = 7
        #expect(decodeError(badMethod)?.code == .corrupt)
    }

    @Test("a copied decoder continues independently (copy on write)")
    func copyOnWrite() throws {
        let data = TestData.text(count: 400_000)
        let compressed = Gzip.compress(data)
        let half = compressed.count / 2
        var first = GzipDecoder()
        let head = try first.decompress(Array(compressed[..<half]))
        var second = first
        let tailFromSecond = try second.decompress(Array(compressed[half...])) + second.finish()
        let tailFromFirst = try first.decompress(Array(compressed[half...])) + first.finish()
        #expect(head + tailFromFirst == data)
        #expect(head + tailFromSecond == data)
    }
}
