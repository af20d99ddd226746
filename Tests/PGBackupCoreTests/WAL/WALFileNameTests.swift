import ObjectStorage
@testable import PGBackupCore
import Testing

@Suite struct WALFileNameTests {
    @Test func segment() throws {
        let file = try #require(WALFileName("000000010000000A000000FF"))
        #expect(file.kind == .segment)
        #expect(file.timeline == 1)
        #expect(file.log == 0xA)
        #expect(file.segment == 0xFF)
        #expect(file.timelineHex == "00000001")
    }

    @Test func historyBackupPartial() throws {
        let history = try #require(WALFileName("0000000A.history"))
        #expect(history.kind == .history)
        #expect(history.timeline == 10)
        #expect(history.log == nil)
        let backup = try #require(WALFileName("000000020000000000000003.00000028.backup"))
        #expect(backup.kind == .backup)
        #expect(backup.timeline == 2)
        #expect(backup.segment == 3)
        let partial = try #require(WALFileName("000000020000000000000003.partial"))
        #expect(partial.kind == .partial)
    }

    @Test(arguments: [
        "", "00000001000000000000000", "0000000100000000000000011", "000000010000000000000001.gz",
        "000000010000000a00000001", "0000000G0000000000000001", "00000001.History", "0000001.history",
        ".000000010000000000000001", "000000010000000000000001.0000028.backup", "archive_status", "RECOVERYHISTORY",
    ])
    func rejects(_ name: String) {
        #expect(WALFileName(name) == nil)
    }

    @Test func shippingOrder() throws {
        let names = [
            "000000020000000000000005", "00000002.history", "000000010000000000000004",
            "000000010000000000000003.00000028.backup", "000000010000000000000003", "000000010000000000000004.partial",
        ]
        let sorted = names.compactMap { WALFileName($0) }.sorted().map(\.name)
        #expect(sorted == [
            "000000010000000000000003", "000000010000000000000003.00000028.backup", "000000010000000000000004",
            "000000010000000000000004.partial", "00000002.history", "000000020000000000000005",
        ])
    }

    static let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // SHA-256 of "test"

    @Test func repositoryKeysCarryTheRawChecksum() throws {
        let repository = Repository(storage: MemoryStorage(), stanza: "main")
        let sha = Self.sha
        #expect(WALObjectName.sha256(of: Array("test".utf8)) == sha)
        #expect(repository.walKey(try #require(WALFileName("000000010000000000000001")), sha256: sha)
                == "main/wal/00000001/000000010000000000000001-\(sha).gz")
        #expect(repository.walKey(try #require(WALFileName("00000003.history")), sha256: sha) == "main/wal/00000003/00000003.history-\(sha).gz")
        #expect(repository.walKey(try #require(WALFileName("000000030000000100000002.00000060.backup")), sha256: sha)
                == "main/wal/00000003/000000030000000100000002.00000060.backup-\(sha).gz")
        #expect(repository.walKey(try #require(WALFileName("000000030000000100000002.partial")), sha256: sha)
                == "main/wal/00000003/000000030000000100000002.partial-\(sha).gz")
        let old = WALObjectName(file: try #require(WALFileName("000000010000000000000001")), sha256: nil)
        #expect(repository.walKey(old) == "main/wal/00000001/000000010000000000000001.gz", "the old style, still read")
        #expect(repository.walKeyPrefix(try #require(WALFileName("000000010000000000000001"))) == "main/wal/00000001/000000010000000000000001")
    }

    @Test(arguments: ["000000010000000A000000FF", "0000000A.history", "000000020000000000000003.00000028.backup", "000000020000000000000003.partial"])
    func objectNamesRoundTripInBothStyles(_ name: String) throws {
        let file = try #require(WALFileName(name))
        let new = try #require(WALObjectName("\(name)-\(Self.sha).gz"))
        #expect(new.file == file)
        #expect(new.sha256 == Self.sha)
        #expect(new.description == "\(name)-\(Self.sha).gz")
        let old = try #require(WALObjectName("\(name).gz"))
        #expect(old.file == file)
        #expect(old.sha256 == nil)
        #expect(old.description == "\(name).gz")
        #expect(RepositoryLayout(stanza: "main").walObjectName(ofKey: "main/wal/\(file.timelineHex)/\(name)-\(Self.sha).gz") == new)
        #expect(RepositoryLayout(stanza: "main").walObjectName(ofKey: "main/wal/\(file.timelineHex)/\(name).gz") == old)
    }

    @Test(arguments: [
        "000000010000000000000001", "000000010000000000000001-", "000000010000000000000001-.gz",
        "000000010000000000000001-\(WALFileNameTests.sha.uppercased()).gz", "000000010000000000000001-\(WALFileNameTests.sha.dropLast()).gz",
        "000000010000000000000001-\(WALFileNameTests.sha)0.gz", "000000010000000000000001-\(WALFileNameTests.sha)", "000000010000000000000001-\(WALFileNameTests.sha).gz.tmp",
        "000000010000000000000001-\(WALFileNameTests.sha)-\(WALFileNameTests.sha).gz", "00000001000000000000001-\(WALFileNameTests.sha).gz", "postmaster.pid.gz",
        "000000010000000000000001.gz-\(WALFileNameTests.sha)", "-\(WALFileNameTests.sha).gz", ".000000010000000000000001.gz",
    ])
    func objectNamesRejected(_ name: String) {
        #expect(WALObjectName(name) == nil)
    }
}
