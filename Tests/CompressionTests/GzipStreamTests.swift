import Compression
import SyntheticData
import Testing

@Suite struct GzipStreamTests {
    /// The WAL watcher compresses a spooled file piece by piece; what it stores must stay the
    /// object the one-shot compressor made of the whole file (same bytes, same size).
    @Test("pieces make the one-shot member, byte for byte", arguments: [1, 6] as [Int32])
    func piecesMakeTheOneShotMember(level: Int32) throws {
        let data = TestData.text(count: 1_500_000) + TestData.random(count: 700_000) + TestData.text(count: 900_000, seed: 3)
        for pieceSize in [1 << 20, 65_536, 999_983] {
            let stream = GzipStream(level: level)
            var output: [UInt8] = []
            var offset = 0
            repeat {
                let end = min(data.count, offset + pieceSize)
                output += data[offset..<end].withUnsafeBytes { stream.compress($0, finish: end == data.count) }
                offset = end
            } while offset < data.count
            #expect(output == Gzip.compress(data, level: level), "piece size \(pieceSize)")
            #expect(stream.bytesIn == Int64(data.count) && stream.bytesOut == Int64(output.count) && stream.isFinished)
        }
    }

    @Test func anEmptyInputIsOneEmptyMember() throws {
        let stream = GzipStream(level: 1)
        let output = [UInt8]().withUnsafeBytes { stream.compress($0, finish: true) }
        #expect(output == Gzip.compress([], level: 1))
        #expect(try Gzip.decompress(output) == [])
    }
}
