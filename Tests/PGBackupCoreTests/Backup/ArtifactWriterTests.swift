import Compression
import Foundation
import ObjectStorage
@testable import PGBackupCore
import Testing

/// ArtifactWriter hashes on queues of its own while compression runs: what it records must still
/// be the SHA-256s of the whole raw and stored streams, whatever the chunking.
@Suite struct ArtifactWriterTests {
    /// Half text (compressible), half noise, so blocks compress to different sizes.
    func sample(_ count: Int) -> [UInt8] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var bytes = [UInt8](repeating: 0, count: count)
        let text = Array("{\"type\":\"paragraph\",\"data\":{\"text\":\"journal entry\"}} ".utf8)
        for index in 0..<count {
            if (index >> 16) & 1 == 0 {
                bytes[index] = text[index % text.count]
            } else {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                bytes[index] = UInt8(truncatingIfNeeded: state)
            }
        }
        return bytes
    }

    @Test("hashes, sizes and CRC describe the whole stream, fed in blocks or odd chunks",
          arguments: [0, 1, 300_007, 1 << 22])
    func hashesCoverTheStream(chunk: Int) async throws {
        let repository = Repository(storage: MemoryStorage(), stanza: "main")
        let compression = try Configuration.parse("[compression]\nlevel = 1\nthreads = 2\n", file: "/etc/pgbackd/test.toml", environment: [:]).compression
        var writer = try await ArtifactWriter(repository: repository, relativeKey: "backups/x/db.dump.gz", content: .databaseDump,
                                              database: "db", compression: compression)
        #expect(writer.blockSize == 4 << 20)
        // 6 blocks and a tail: more than the encoder keeps in flight, so the hashing queues'
        // bound is reached; chunk 0 means "exactly one block per write", as streamChildOutput feeds it.
        let mebibyte = sample(1 << 20)
        var raw: [UInt8] = []
        raw.reserveCapacity(26 << 20)
        for index in 0..<25 {
            raw += mebibyte
            raw[raw.count - 1 - index] = UInt8(index)  // no two mebibytes alike
        }
        raw += mebibyte.prefix(12_345)
        let step = chunk == 0 ? writer.blockSize : chunk
        if chunk != 1 {
            for start in stride(from: 0, to: raw.count, by: step) {
                try await writer.write(Array(raw[start..<min(raw.count, start + step)]))
            }
        } else {
            // One-byte writes over the first 100 KiB, then the rest at once.
            for byte in raw.prefix(100_000) { try await writer.write([byte]) }
            try await writer.write(Array(raw.dropFirst(100_000)))
        }
        let artifact = try await writer.commit()
        #expect(artifact.rawSize == Int64(raw.count))

        // ArtifactVerifier computes both SHA-256s on its own and fails on any difference.
        let outcome = try await ArtifactVerifier(repository: repository).verify(artifact)
        #expect(outcome.rawSize == Int64(raw.count))
        #expect(outcome.storedSize == artifact.storedSize)

        var stored: [UInt8] = []
        for try await part in try await repository.storage.get(key: repository.key(relative: artifact.key), range: nil) { stored += part }
        var decoder = GzipDecoder()
        #expect(try decoder.decompress(stored) + decoder.finish() == raw)
        var check = ParallelGzipEncoder(level: 1, workers: 1)
        _ = try await check.compress(raw)
        _ = try await check.finish()
        #expect(artifact.crc32 == check.crc32)
    }
}
