import Foundation
@testable import PGBackupCore
import Testing

@Suite struct WALWatcherConfigurationTests {
    func parse(_ text: String) throws -> Configuration {
        try Configuration.parse(text, file: "/etc/pgbackd/test.toml")
    }

    @Test func defaults() throws {
        let wal = try parse("").wal
        #expect(wal.rescanSeconds == 5)
        #expect(wal.prefetch == 4)
    }

    @Test func setAndValidated() throws {
        let wal = try parse("[wal]\nrescan_seconds = 30\nprefetch = 0").wal
        #expect(wal.rescanSeconds == 30)
        #expect(wal.prefetch == 0, "0 turns prefetching off")
        for (key, value) in [("rescan_seconds", "0"), ("rescan_seconds", "3601"), ("prefetch", "-1"), ("prefetch", "65")] {
            let error = #expect(throws: ConfigurationError.self) { try parse("[wal]\n\(key) = \(value)") }
            #expect(error?.key == "wal.\(key)")
        }
        let typo = #expect(throws: ConfigurationError.self) { try parse("[wal]\nprefetc = 2") }
        #expect(typo?.description.contains("did you mean 'prefetch'") == true)
    }

    /// The bound the watcher logs: per upload two 1 MiB pieces and zlib's state, plus for S3 the
    /// compressed segment a single PUT holds.
    @Test func memoryBoundFollowsTheSettings() throws {
        let pieces: Int64 = 2 << 20 + 320 << 10
        #expect(WALShipper.memoryBound(try parse("[wal]\nparallel_uploads = 3")) == 3 * pieces, "a file repository: pieces only")
        let secret = FileManager.default.temporaryDirectory.appendingPathComponent("secret-\(UUID().uuidString)").path
        try Data("s3cr3t".utf8).write(to: URL(fileURLWithPath: secret))
        defer { try? FileManager.default.removeItem(atPath: secret) }
        let s3 = try parse("""
            [repository]
            type = "s3"
            [repository.s3]
            endpoint = "http://127.0.0.1:9000"
            bucket = "backups"
            access_key_id = "AKIA"
            secret_access_key_file = "\(secret)"
            [wal]
            parallel_uploads = 4
            """)
        let segment: Int64 = 16 << 20
        #expect(WALShipper.memoryBound(s3) == 4 * (pieces + segment + segment / 1000 + (64 << 10)))
        #expect(WALShipper.memoryBound(s3) < 90 << 20, "4 uploads of 16 MiB segments stay under 90 MiB")
    }

    @Test func theShippedExampleDocumentsEveryKey() throws {
        let root = #filePath.split(separator: "/").dropLast(4).joined(separator: "/")
        let example = try String(contentsOfFile: "/\(root)/config/pgbackd.toml", encoding: .utf8)
        for key in ["rescan_seconds", "prefetch", "max_lag_seconds"] { #expect(example.contains("# \(key) = ")) }
        for event in ["wal.lag.resolved", "storage.reachable"] { #expect(example.contains(event)) }
    }
}
