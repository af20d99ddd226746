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

    @Test func repositoryKeys() throws {
        let repository = Repository(storage: MemoryStorage(), stanza: "main")
        #expect(repository.walKey(try #require(WALFileName("000000010000000000000001"))) == "main/wal/00000001/000000010000000000000001.gz")
        #expect(repository.walKey(try #require(WALFileName("00000003.history"))) == "main/wal/00000003/00000003.history.gz")
        #expect(repository.walKey(try #require(WALFileName("000000030000000100000002.00000060.backup")))
                == "main/wal/00000003/000000030000000100000002.00000060.backup.gz")
    }
}
