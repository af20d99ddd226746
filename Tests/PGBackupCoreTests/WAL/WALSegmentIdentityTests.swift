import Compression
import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

/// A segment is fetched only as the segment its page header says it is (issue #16: a segment
/// stored under another segment's name, with its own checksum in the object name, was handed to
/// PostgreSQL, which takes the wrong page address for the end of WAL and ends recovery early).
@Suite struct WALSegmentIdentityTests {
    static let segmentSize = 16 << 20

    /// The bytes of a segment as PostgreSQL writes it: the long page header of `name` (`tli`
    /// in it), the rest zero.
    static func segment(_ name: String, tli: UInt32? = nil, size: Int = segmentSize) -> [UInt8] {
        let file = WALFileName(name)!
        var bytes = [UInt8](repeating: 0, count: size)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            for index in 0..<MemoryLayout<T>.size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
        }
        let number = file.segmentNumber(segmentSize: segmentSize)!
        put(UInt16(0xD110), at: 0)          // XLOG_PAGE_MAGIC of PostgreSQL 15
        put(UInt16(0x0002), at: 2)          // XLP_LONG_HEADER
        put(tli ?? file.timeline, at: 4)
        put(UInt64(number) * UInt64(segmentSize), at: 8)
        put(UInt64(7_000_000_000_000_000_001), at: 24)
        put(UInt32(segmentSize), at: 32)
        put(UInt32(8192), at: 36)
        return bytes
    }

    @Test func aSegmentMatchingItsNamePasses() {
        let name = "0000000100000002000000FE"
        #expect(WALArchive.segmentHeaderProblem(Self.segment(name), file: WALFileName(name)!) == nil)
        // The first segment of timeline 2 starts as a copy of timeline 1's.
        #expect(WALArchive.segmentHeaderProblem(Self.segment("000000020000000000000005", tli: 1), file: WALFileName("000000020000000000000005")!) == nil)
        // A partial segment, and files without a page header (history, backup label, test bytes) pass.
        #expect(WALArchive.segmentHeaderProblem(Self.segment("000000010000000000000005"), file: WALFileName("000000010000000000000005.partial")!) == nil)
        #expect(WALArchive.segmentHeaderProblem(Array("1\t0/5000000\tno recovery target specified\n".utf8), file: WALFileName("00000002.history")!) == nil)
        #expect(WALArchive.segmentHeaderProblem(walBytes(3), file: WALFileName(name)!) == nil)
    }

    @Test func anotherSegmentsBytesAreNamed() throws {
        let problem = try #require(WALArchive.segmentHeaderProblem(Self.segment("000000010000000000000006"), file: WALFileName("000000010000000000000005")!))
        #expect(problem.contains("0/6000000") && problem.contains("000000010000000000000006") && problem.contains("0/5000000"), "\(problem)")
        let later = try #require(WALArchive.segmentHeaderProblem(Self.segment("000000030000000000000005"), file: WALFileName("000000020000000000000005")!))
        #expect(later.contains("timeline 3"), "\(later)")
        let short = try #require(WALArchive.segmentHeaderProblem(Array(Self.segment("000000010000000000000005").prefix(8192)), file: WALFileName("000000010000000000000005")!))
        #expect(short.contains("8192 bytes"), "\(short)")
    }

    @Test func fetchRefusesASegmentStoredUnderTheWrongName() async throws {
        let storage = MemoryStorage()
        let archive = WALArchive(repository: Repository(storage: storage, stanza: "main"), level: 1, logger: Logger(label: "test"))
        let fifth = WALFileName("000000010000000000000005")!, sixth = WALFileName("000000010000000000000006")!
        let sixthBytes = Self.segment(sixth.name)
        _ = try await archive.push(fifth, bytes: Self.segment(fifth.name))
        #expect(try await archive.fetch(fifth) == Self.segment(fifth.name))
        // The sixth segment's bytes, as a hand-made copy stores them: under the fifth's name,
        // with their own checksum, so the checksum in the name matches.
        let right = try await archive.locate(fifth)
        try await storage.delete(key: right.key)
        let wrongKey = archive.repository.walKey(fifth, sha256: WALObjectName.sha256(of: sixthBytes))
        _ = try await storage.put(key: wrongKey, bytes: Gzip.compress(sixthBytes, level: 1))
        let error = await #expect(throws: WALError.self) { try await archive.fetch(fifth) }
        #expect(error?.code == .corrupt)
        #expect(error?.description.contains(wrongKey) == true && error?.description.contains("is not \(fifth.name)") == true, "\(String(describing: error))")
        #expect(ExitStatus.walFetch(try #require(error)) == .fatalForRecovery)
    }

    @Test func walCheckListsSegmentsArchivedWithTheSameContent() async throws {
        let storage = MemoryStorage()
        let repository = Repository(storage: storage, stanza: "main")
        let archive = WALArchive(repository: repository, level: 1, logger: Logger(label: "test"))
        let fifth = WALFileName("000000010000000000000005")!, sixth = WALFileName("000000010000000000000006")!
        let sixthBytes = Self.segment(sixth.name)
        _ = try await archive.push(sixth, bytes: sixthBytes)
        let wrongKey = repository.walKey(fifth, sha256: WALObjectName.sha256(of: sixthBytes))
        _ = try await storage.put(key: wrongKey, bytes: Gzip.compress(sixthBytes, level: 1))
        let report = try await WALCheck(repository: repository).run()
        #expect(!report.isComplete)
        #expect(report.sameContent.count == 1 && report.sameContent.first?.keys.contains(wrongKey) == true)
        #expect(report.problems.contains { $0.contains(wrongKey) && $0.contains("same content") }, "\(report.problems)")
    }
}
