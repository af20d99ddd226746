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

    @Test func theShippedExampleDocumentsEveryKey() throws {
        let root = #filePath.split(separator: "/").dropLast(4).joined(separator: "/")
        let example = try String(contentsOfFile: "/\(root)/config/pgbackd.toml", encoding: .utf8)
        for key in ["rescan_seconds", "prefetch", "max_lag_seconds"] { #expect(example.contains("# \(key) = ")) }
        for event in ["wal.lag.resolved", "storage.reachable"] { #expect(example.contains(event)) }
    }
}
