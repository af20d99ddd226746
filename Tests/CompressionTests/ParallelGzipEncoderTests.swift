import CZlib
@testable import Compression
import SyntheticData
import Testing

@Suite struct ParallelGzipEncoderTests {
    static let blockSize = 64 * 1024
    /// Edge sizes around the block size, and a many-block stream with an odd tail.
    static let sizes = [0, 1, 1000, blockSize - 1, blockSize, blockSize + 1, 2 * blockSize, 7 * blockSize + 12_345]
    static let engines = GzipEngine.allCases

    /// libdeflate writes one member per block; zlib one member for the whole stream.
    static func expectedMembers(_ engine: GzipEngine, size: Int, blockSize: Int = blockSize) -> Int {
        switch engine {
        case .libdeflate: max(1, (size + blockSize - 1) / blockSize)
        case .zlib: 1
        }
    }

    @Test("round trip through GzipDecoder and gunzip", arguments: engines, [0, 1, 6, 9] as [Int32])
    func roundTrip(engine: GzipEngine, level: Int32) async throws {
        for size in Self.sizes {
            let data = TestData.text(count: size, seed: UInt64(size))
            let (compressed, encoder) = try await encodeParallel(data, level: level, engine: engine, blockSize: Self.blockSize)

            #expect(Array(compressed.prefix(3)) == [0x1F, 0x8B, 8])
            #expect(encoder.engine == engine)
            #expect(encoder.rawByteCount == size)
            #expect(encoder.compressedByteCount == compressed.count)
            #expect(encoder.crc32 == zlibCRC32(data))

            let (decoded, decoder) = try decodeStreaming(compressed, chunkSizes: [compressed.count])
            #expect(decoded == data, "\(engine) level \(level), \(size) bytes")
            #expect(decoder.memberCount == Self.expectedMembers(engine, size: size), "\(engine), \(size) bytes")
            #expect(try Gzip.decompress(compressed) == data)
            #expect(try gunzip(compressed) == data, "gunzip reads \(engine) level \(level), \(size) bytes")
        }
    }

    @Test("input fed in odd chunk sizes gives the same stream", arguments: engines, [[1, 7, 4093], [100_003], [65_536, 1], [1 << 20]])
    func oddChunks(engine: GzipEngine, chunkSizes: [Int]) async throws {
        let data = TestData.text(count: 5 * Self.blockSize + 777)
        let reference = try await encodeParallel(data, level: 6, engine: engine, blockSize: Self.blockSize, chunkSizes: [data.count]).bytes
        let (compressed, _) = try await encodeParallel(data, level: 6, engine: engine, blockSize: Self.blockSize, chunkSizes: chunkSizes)
        #expect(compressed == reference, "block cuts depend on the byte count only, not on how it arrived")
        #expect(try Gzip.decompress(compressed) == data)
    }

    @Test("drain returns every started block's output and leaves the stream unchanged", arguments: engines)
    func drainMidStream(engine: GzipEngine) async throws {
        let data = TestData.text(count: 3 * Self.blockSize + 1000)
        let reference = try await encodeParallel(data, level: 1, engine: engine, blockSize: Self.blockSize, chunkSizes: [data.count]).bytes
        var encoder = ParallelGzipEncoder(level: 1, engine: engine, workers: 2, blockSize: Self.blockSize)
        var stream: [UInt8] = []
        // Two whole blocks and a partial one: drain hands back both blocks, keeps the partial one.
        for chunk in try await encoder.compress(Array(data[0..<(2 * Self.blockSize + 500)])) { stream += chunk }
        for chunk in try await encoder.drain() { stream += chunk }
        #expect(encoder.blocksInFlight == 0)
        #expect(encoder.crc32 == zlibCRC32(Array(data[0..<(2 * Self.blockSize)])))
        for chunk in try await encoder.compress(Array(data[(2 * Self.blockSize + 500)...])) { stream += chunk }
        for chunk in try await encoder.finish() { stream += chunk }
        #expect(stream == reference)
    }

    /// Two libdeflate blocks (the second of 5 bytes), five zlib blocks; made once for all six
    /// cases, and no larger: it is made byte by byte on the cooperative pool, which the suite's
    /// timing-bound tests share.
    static let randomData = TestData.random(count: 4 << 20 + 5)

    @Test("default blocks (libdeflate 4 MiB, zlib 1 MiB), several workers, incompressible data", arguments: engines, [1, 2, 4])
    func workersAndRandomData(engine: GzipEngine, workers: Int) async throws {
        let data = Self.randomData
        let (compressed, encoder) = try await encodeParallel(data, level: 6, engine: engine, workers: workers, chunkSizes: [300_000])
        #expect(encoder.crc32 == zlibCRC32(data))
        #expect(try gunzip(compressed) == data)
    }

    @Test("the worker count does not change the stream", arguments: engines)
    func workersGiveTheSameBytes(engine: GzipEngine) async throws {
        let data = TestData.text(count: 6 * Self.blockSize + 99)
        let one = try await encodeParallel(data, level: 6, engine: engine, workers: 1, blockSize: Self.blockSize).bytes
        let three = try await encodeParallel(data, level: 6, engine: engine, workers: 3, blockSize: Self.blockSize).bytes
        #expect(one == three)
    }

    @Test("tiny blocks, down to one byte each, still make one readable stream", arguments: engines)
    func tinyBlocks(engine: GzipEngine) async throws {
        let data = TestData.text(count: 200_000)
        for blockSize in [100, 4096] {
            let (compressed, _) = try await encodeParallel(data, level: 6, engine: engine, blockSize: blockSize, chunkSizes: [9_999])
            #expect(try Gzip.decompress(compressed) == data)
        }
        let (oneByteBlocks, _) = try await encodeParallel(Array(data.prefix(3000)), level: 1, engine: engine, blockSize: 1)
        #expect(try gunzip(oneByteBlocks) == Array(data.prefix(3000)))
    }

    @Test("one big compress call stays within the in-flight bound and returns output as it goes", arguments: engines)
    func boundedInFlight(engine: GzipEngine) async throws {
        let data = TestData.text(count: 40 * Self.blockSize)
        var encoder = ParallelGzipEncoder(level: 1, engine: engine, workers: 2, blockSize: Self.blockSize)
        let first = try await encoder.compress(data)
        #expect(encoder.blocksInFlight <= encoder.maxBlocksInFlight)
        // Everything beyond the bound had to be awaited, so it comes back from this very call.
        #expect(first.count >= 40 - encoder.maxBlocksInFlight, "the blocks that were awaited")
        var compressed = first.flatMap { $0 }
        compressed += try await encoder.finish().flatMap { $0 }
        #expect(encoder.blocksInFlight == 0)
        #expect(try Gzip.decompress(compressed) == data)
    }

    static let ratioData = TestData.text(count: 8 << 20, seed: 3)

    /// Level 0 stores; 1–9 are libdeflate's, which in its 4 MiB members should beat or match one zlib stream.
    @Test("libdeflate: size within 1% of single-stream zlib at the same level", arguments: [0, 1, 6, 9] as [Int32])
    func ratio(level: Int32) async throws {
        let data = Self.ratioData
        let parallel = try await encodeParallel(data, level: level, chunkSizes: [256 * 1024]).bytes
        let single = Gzip.compress(data, level: level)
        let excess = Double(parallel.count) / Double(single.count) - 1
        #expect(excess < 0.01, "parallel \(parallel.count) vs single \(single.count) bytes: \(excess * 100)%")
        #expect(try Gzip.decompress(parallel) == data)
    }

    /// What `engine = "zlib"` promises (docs/decisions.md): primed 1 MiB blocks store what one
    /// zlib stream with the same settings (level, memLevel 9) stores, give or take the 4-byte
    /// sync marker per block, so a base tar is no larger than pgBackRest's gz files at that level.
    @Test("zlib: primed blocks within 0.1% of one zlib stream with the same settings", arguments: [1, 4, 6, 9] as [Int32])
    func zlibRatio(level: Int32) async throws {
        let data = Self.ratioData
        let parallel = try await encodeParallel(data, level: level, engine: .zlib, chunkSizes: [256 * 1024]).bytes
        let single = data.withUnsafeBufferPointer { Deflater(level: level, windowBits: 31, memLevel: 9).deflate($0, flush: Z_FINISH) }
        let excess = Double(parallel.count) / Double(single.count) - 1
        #expect(abs(excess) < 0.001, "parallel \(parallel.count) vs single \(single.count) bytes: \(excess * 100)%")
        #expect(try Gzip.decompress(parallel) == data)
    }

    @Test("level -1 means the default, 6", arguments: engines)
    func defaultLevel(engine: GzipEngine) async throws {
        let data = TestData.text(count: 300_000)
        let defaultLevel = try await encodeParallel(data, level: -1, engine: engine, blockSize: Self.blockSize).bytes
        let six = try await encodeParallel(data, level: 6, engine: engine, blockSize: Self.blockSize).bytes
        #expect(defaultLevel == six)
    }

    @Test("the engine defaults to libdeflate; engine names are the configuration's words")
    func engineNames() {
        #expect(ParallelGzipEncoder(level: 6, workers: 1).engine == .libdeflate)
        #expect(ParallelGzipEncoder(level: 6, workers: 1).blockSize == 4 << 20, "libdeflate: 4 MiB members")
        #expect(ParallelGzipEncoder(level: 6, engine: .zlib, workers: 1).blockSize == 1 << 20, "zlib: 1 MiB primed blocks")
        #expect(ParallelGzipEncoder(level: 6, workers: 1, blockSize: 65_536).blockSize == 65_536, "the caller's size wins")
        #expect(GzipEngine.allCases.map(\.rawValue) == ["zlib", "libdeflate"])
    }
}

@Suite struct GzipTests {
    @Test("one-shot round trip; gunzip reads it", arguments: [0, 1, 6, 9] as [Int32])
    func roundTrip(level: Int32) throws {
        for data in [[], [42], TestData.text(count: 100_000)] as [[UInt8]] {
            let compressed = Gzip.compress(data, level: level)
            #expect(try Gzip.decompress(compressed) == data)
            #expect(try gunzip(compressed) == data)
        }
    }

    @Test("reads what system gzip writes")
    func readsSystemGzip() throws {
        let data = TestData.text(count: 500_000)
        let compressed = try runTool("/bin/gzip", ["-c", "-6"], input: data)
        #expect(try Gzip.decompress(compressed) == data)
    }
}
