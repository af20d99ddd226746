import Foundation
import Synchronization
import Testing

/// The fault-injection and security suite (issue #16). Its suites nest in this one, so one filter
/// (`IntegrationTests\.Reliability/`) selects them all: scripts/test.sh runs them in its
/// `reliability` row (and skips them in the others), then prints the figures they recorded with
/// scripts/reliability-table.py. `scripts/reliability.sh --long` runs the long size, whose table is
/// in docs/reliability.md.
@Suite enum Reliability {}

/// How much each reliability test does. `ci` fits the CI budget; `long` is the run behind the table
/// in docs/reliability.md (PGBACKD_RELIABILITY_SCALE=long).
enum ReliabilityScale: String, Sendable {
    case ci, long

    static let current = ReliabilityScale(rawValue: ProcessInfo.processInfo.environment["PGBACKD_RELIABILITY_SCALE"] ?? "ci") ?? .ci

    static func pick(ci: Int, long: Int) -> Int { current == .long ? long : ci }
}

/// What one reliability test measured. A count the test did not measure stays nil, so the table
/// can say "not measured" rather than print a 0 nobody counted.
struct ReliabilityFigures: Codable, Sendable {
    /// The table's row group: "S3 faults", "kills", "full disk", "corruption", "fuzz", "security", "SeaweedFS".
    var area: String
    /// What ran: "logical backup", "wal-push under pgbench", "manifest parser", ...
    var scenario: String
    /// Faults injected, by kind ("503 SlowDown", "reset mid-body", "SIGKILL pgbackd", "ENOSPC", "bit flip", ...).
    var faults: [String: Int] = [:]
    /// Complete runs of the job or check under test (fuzz: inputs tried).
    var runs = 0
    /// Processes killed.
    var kills = 0
    /// Stored objects (artifacts, segments, manifests) read back and compared or verified.
    var objectsVerified = 0
    /// Table rows compared with the source after a restore.
    var rowsVerified = 0
    /// Committed backups incomplete, acknowledged segments missing, restored rows that differ: nil when not measured.
    var lost: Int?
    /// Scratch databases, staging files, leases, open multipart uploads past the documented clean-up: nil when not measured.
    var leftOver: Int?
    /// Faults that were not detected or named (corruption, secrets found): nil when not measured.
    var missed: Int?
}

/// Appends figures as JSON lines to $PGBACKD_RELIABILITY_LEDGER (scripts/test.sh sets it for the
/// reliability row); without it, prints them, so a test run by hand still shows what it counted.
enum ReliabilityLedger {
    private static let lock = Mutex(())

    static func record(_ figures: ReliabilityFigures) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard var line = try? encoder.encode(figures) else { return }
        line.append(UInt8(ascii: "\n"))
        lock.withLock { _ in
            guard let path = ProcessInfo.processInfo.environment["PGBACKD_RELIABILITY_LEDGER"], !path.isEmpty else {
                print("[reliability] \(String(decoding: line, as: UTF8.self))", terminator: "")
                return
            }
            if !FileManager.default.fileExists(atPath: path) {
                _ = FileManager.default.createFile(atPath: path, contents: nil)
            }
            guard let handle = FileHandle(forWritingAtPath: path) else { return }
            defer { try? handle.close() }
            _ = try? handle.seekToEnd()
            try? handle.write(contentsOf: line)
        }
    }
}
