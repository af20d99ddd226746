import Foundation
@testable import PGBackupCore
import Testing

@Suite struct WALPositionTests {
    @Test func parsesAndPrintsLikePostgreSQL() {
        #expect(WALPosition("16/B374D848")?.value == 0x16_B374_D848)
        #expect(WALPosition("0/2000028")?.description == "0/2000028")
        #expect(WALPosition("0/2000028") ?? WALPosition(0) < WALPosition("1/0") ?? WALPosition(0))
        for bad in ["", "0", "0/", "/1", "x/1", "123456789/1", "1/2/3"] {
            #expect(WALPosition(bad) == nil, "\(bad)")
        }
    }

    @Test func segmentNamesFollowTheSegmentSize() {
        let lsn = WALPosition("1/2000028")!
        #expect(lsn.segment(timeline: 1, segmentSize: 16 << 20).name == "000000010000000100000002")
        #expect(lsn.segment(timeline: 3, segmentSize: 64 << 20).name == "000000030000000100000000")
        // On a boundary the previous segment holds the last byte.
        let boundary = WALPosition("0/3000000")!
        #expect(boundary.segment(timeline: 1, segmentSize: 16 << 20).name == "000000010000000000000003")
        #expect(boundary.previousByteSegment(timeline: 1, segmentSize: 16 << 20).name == "000000010000000000000002")
        // Crossing a log file: segment FF of log 0 is followed by segment 00 of log 1.
        let last = WALFileName("0000000100000000000000FF")!
        let number = last.segmentNumber(segmentSize: 16 << 20)!
        #expect(WALFileName.segment(timeline: 1, number: number + 1, segmentSize: 16 << 20).name == "000000010000000100000000")
    }

    @Test func positionsFromBackupLabelAndManifest() throws {
        let label = Array("""
            START WAL LOCATION: 0/5000028 (file 000000020000000000000005)
            CHECKPOINT LOCATION: 0/5000060
            BACKUP METHOD: streamed
            START TIMELINE: 2
            """.utf8)
        let manifest = Array(#"{ "PostgreSQL-Backup-Manifest-Version": 1, "Files": [], "WAL-Ranges": [ { "Timeline": 2, "Start-LSN": "0/5000028", "End-LSN": "0/5000100" } ] }"#.utf8)
        let positions = try BaseBackup.walPositions(label: label, manifest: manifest)
        #expect(positions == .init(start: WALPosition("0/5000028")!, stop: WALPosition("0/5000100")!, timeline: 2))
        #expect(throws: BackupError.self) { try BaseBackup.walPositions(label: label, manifest: nil) }
        #expect(throws: BackupError.self) { try BaseBackup.walPositions(label: nil, manifest: manifest) }
    }

    /// A tar made by GNU tar in ustar format, fed in awkward chunk sizes: only the named members are kept.
    @Test func tarCaptureKeepsOnlyTheNamedMembers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tar-capture-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: "\(directory)/base/1", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let label = Array("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n".utf8)
        let big = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(label).write(to: URL(fileURLWithPath: "\(directory)/backup_label"))
        try Data(big).write(to: URL(fileURLWithPath: "\(directory)/base/1/1259"))
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: "\(directory)/backup_manifest"))
        let tarFile = directory + ".tar"
        defer { try? FileManager.default.removeItem(atPath: tarFile) }
        let process = try Process.run(URL(fileURLWithPath: "/bin/tar"), arguments: ["--format=ustar", "-cf", tarFile, "-C", directory, "backup_label", "base", "backup_manifest"])
        process.waitUntilExit()
        let tar = Array(try Data(contentsOf: URL(fileURLWithPath: tarFile)))
        for chunkSize in [1, 511, 512, 4096, tar.count] {
            var capture = TarMemberCapture(wanted: ["backup_label", "backup_manifest"])
            var offset = 0
            while offset < tar.count {
                capture.consume(Array(tar[offset..<min(tar.count, offset + chunkSize)]))
                offset += chunkSize
            }
            #expect(!capture.malformed)
            #expect(capture.captured == ["backup_label": label, "backup_manifest": [1, 2, 3]], "chunk size \(chunkSize)")
        }
    }

    @Test func recoveryTargetTimesAsSelectNowPrintsThem() {
        let reference = Date(timeIntervalSince1970: 1_795_597_200)  // 2026-11-25 09:00:00 UTC
        #expect(RecoveryTarget.parseTimestamp("2026-11-25 09:00:00+00") == reference)
        #expect(RecoveryTarget.parseTimestamp("2026-11-25 10:00:00.5+01") == reference + 0.5)
        #expect(RecoveryTarget.parseTimestamp("2026-11-25T09:00:00Z") == reference)
        #expect(RecoveryTarget.parseTimestamp("2026-11-25 04:30:00-04:30") == reference)
        #expect(RecoveryTarget.parseTimestamp("2026-11-25 09:00:00") == nil, "no zone: PostgreSQL would use the server's TimeZone")
        #expect(RecoveryTarget.parseTimestamp("yesterday") == nil)
    }
}

@Suite struct WALCheckTests {
    static func segments(_ timeline: UInt32, _ numbers: ClosedRange<UInt64>, except missing: Set<UInt64> = []) -> [WALFileName] {
        numbers.filter { !missing.contains($0) }.map { WALFileName.segment(timeline: timeline, number: $0, segmentSize: 16 << 20) }
    }

    static func base(_ id: String, timeline: UInt32 = 1, start: UInt64, stop: UInt64) -> Manifest {
        var manifest = RepositoryTests.manifest(id: id)
        manifest.kind = .base
        manifest.databases = []
        let name = { (n: UInt64) in WALFileName.segment(timeline: timeline, number: n, segmentSize: 16 << 20).name }
        manifest.wal = WALRange(timeline: timeline, startLSN: "0/0", stopLSN: "0/0", segmentSize: 16 << 20,
                                startSegment: name(start), stopSegment: name(stop))
        return manifest
    }

    @Test func completeArchiveHasNoGaps() {
        let report = WALCheck.analyze(archived: Self.segments(1, 2...300), bases: [Self.base("b1", start: 5, stop: 6)])
        #expect(report.isComplete)
        #expect(report.timelines.map(\.segments) == [299])
        #expect(report.timelines.first?.lastSegment == "00000001000000010000002C")
        #expect(report.backups.first?.consistent == true && report.backups.first?.recoverableToLatest == true)
    }

    @Test func gapsAreListedAsRangesAndOnlyFromTheOldestBackup() {
        // 3 and 4 are missing before the backup's start: not needed. 10 and 20...22 are needed.
        let archived = Self.segments(1, 1...30, except: [3, 4, 10, 20, 21, 22])
        let report = WALCheck.analyze(archived: archived, bases: [Self.base("b1", start: 5, stop: 6)])
        #expect(report.gaps.map(\.description) == [
            "00000001000000000000000A is missing",
            "3 segments missing, 000000010000000000000014 to 000000010000000000000016",
        ])
        #expect(report.backups.first?.consistent == true)
        #expect(report.backups.first?.recoverableToLatest == false)
    }

    @Test func aBackupWhoseStopSegmentIsMissingIsNotConsistent() {
        let report = WALCheck.analyze(archived: Self.segments(1, 5...5) + Self.segments(1, 7...9), bases: [Self.base("b1", start: 5, stop: 6)])
        #expect(report.backups.first?.consistent == false)
        #expect(report.gaps.count == 1)
    }

    @Test func laterTimelinesNeedTheirHistoryFile() {
        let archived = Self.segments(1, 1...8) + Self.segments(2, 8...12)
        let withoutHistory = WALCheck.analyze(archived: archived, bases: [Self.base("b1", start: 2, stop: 3)])
        #expect(withoutHistory.missingHistory == [2])
        #expect(!withoutHistory.isComplete)
        #expect(withoutHistory.backups.first?.recoverableToLatest == false)
        let withHistory = WALCheck.analyze(archived: archived + [WALFileName("00000002.history")!], bases: [Self.base("b1", start: 2, stop: 3)])
        #expect(withHistory.isComplete)
        #expect(withHistory.timelines.map(\.hasHistory) == [true, true])
    }

    @Test func aTrailingGapAfterTheNewestArchivedSegmentCannotBeSeen() {
        // Nothing archived after 6: nothing is known to be missing.
        let report = WALCheck.analyze(archived: Self.segments(1, 5...6), bases: [Self.base("b1", start: 5, stop: 6)])
        #expect(report.isComplete)
    }
}
