import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

/// A temp directory holding a fake pg_wal and a spool, removed when the test ends.
final class WALTestDirectory {
    let path: String
    var pgWal: String { "\(path)/pg_wal" }
    var spool: String { "\(path)/spool" }

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-wal-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: "\(path)/pg_wal", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes a fake WAL file into pg_wal and returns its path.
    @discardableResult
    func walFile(_ name: String, bytes: [UInt8]) throws -> String {
        let file = "\(pgWal)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    func spooled() throws -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: spool))?.sorted() ?? []
    }
}

func walBytes(_ seed: UInt8, count: Int = 64 << 10) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 / 7) &+ seed }
}

@Suite struct WALSpoolTests {
    let segment = "000000010000000000000001"

    @Test func copiesDurablyUnderItsName() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        let source = try directory.walFile(segment, bytes: walBytes(1))
        #expect(try await spool.push(source: source) == .spooled)
        #expect(try directory.spooled() == [segment])
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: "\(directory.spool)/\(segment)"))) == walBytes(1))
        #expect(FileManager.default.fileExists(atPath: source), "the source in pg_wal is PostgreSQL's to remove")
    }

    @Test func identicalContentIsAlreadySpooled() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        let source = try directory.walFile(segment, bytes: walBytes(1))
        #expect(try await spool.push(source: source) == .spooled)
        #expect(try await spool.push(source: source) == .alreadySpooled)
        #expect(try directory.spooled() == [segment])
    }

    @Test func differentContentIsAConflictAndNothingIsOverwritten() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        let source = try directory.walFile(segment, bytes: walBytes(1))
        _ = try await spool.push(source: source)
        try directory.walFile(segment, bytes: walBytes(2))
        let error = await #expect(throws: WALError.self) { try await spool.push(source: source) }
        #expect(error?.code == .conflict)
        #expect(error?.description.contains(segment) == true)
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: "\(directory.spool)/\(segment)"))) == walBytes(1))
        #expect(try directory.spooled() == [segment], "no temp file is left behind")
    }

    @Test func fullSpoolRefuses() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 100 << 10)
        _ = try await spool.push(source: try directory.walFile(segment, bytes: walBytes(1)))
        let next = try directory.walFile("000000010000000000000002", bytes: walBytes(2))
        let error = await #expect(throws: WALError.self) { try await spool.push(source: next) }
        #expect(error?.code == .spoolFull)
        #expect(error?.description.contains("max_spool_mib") == true)
        #expect(try directory.spooled() == [segment])
        // A retry of what is spooled already still succeeds: it needs no room.
        #expect(try await spool.push(source: "\(directory.pgWal)/\(segment)") == .alreadySpooled)
    }

    @Test func rejectsForeignNames() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        let source = try directory.walFile("postmaster.pid", bytes: [1, 2, 3])
        let error = await #expect(throws: WALError.self) { try await spool.push(source: source) }
        #expect(error?.code == .invalidName)
    }

    @Test func pendingIsInShippingOrderAndSkipsTempFiles() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        for name in ["000000020000000000000004", "00000002.history", "000000010000000000000003"] {
            _ = try await spool.push(source: try directory.walFile(name, bytes: walBytes(3, count: 100)))
        }
        try Data([1]).write(to: URL(fileURLWithPath: "\(directory.spool)/.000000010000000000000009.123.tmp"))
        #expect(try await spool.pending().map(\.file.name) == ["000000010000000000000003", "00000002.history", "000000020000000000000004"])
    }
}

@Suite struct WALArchiveTests {
    let file = WALFileName("000000010000000000000001")!

    func archive(_ storage: MemoryStorage = MemoryStorage()) -> WALArchive {
        WALArchive(repository: Repository(storage: storage, stanza: "main"), level: 1, logger: Logger(label: "test"))
    }

    @Test func pushThenFetchRoundTrips() async throws {
        let storage = MemoryStorage()
        let archive = archive(storage)
        guard case .uploaded(let info) = try await archive.push(file, bytes: walBytes(1)) else {
            Issue.record("expected an upload")
            return
        }
        #expect(info.key == "main/wal/00000001/000000010000000000000001.gz")
        #expect(try await storage.getAll(key: info.key).prefix(2) == [0x1F, 0x8B], "a gzip file, readable with plain gunzip")
        #expect(try await archive.fetch(file) == walBytes(1))
        #expect(try await archive.push(file, bytes: walBytes(1)) == .alreadyArchived)
        let error = await #expect(throws: WALError.self) { try await archive.push(file, bytes: walBytes(2)) }
        #expect(error?.code == .conflict)
        #expect(try await archive.fetch(file) == walBytes(1))
    }

    @Test func missingIsNotFound() async throws {
        let error = await #expect(throws: WALError.self) { try await archive().fetch(file) }
        #expect(error?.code == .notFound)
    }

    @Test func corruptObjectFailsNamingItAndWritesNothing() async throws {
        let storage = MemoryStorage()
        let archive = archive(storage)
        _ = try await archive.push(file, bytes: walBytes(1))
        var bytes = try await storage.getAll(key: "main/wal/00000001/000000010000000000000001.gz")
        bytes[bytes.count / 2] ^= 0x40
        try await storage.put(key: "main/wal/00000001/000000010000000000000001.gz", bytes: bytes)
        let directory = try WALTestDirectory()
        let target = "\(directory.pgWal)/RECOVERYXLOG"
        let error = await #expect(throws: WALError.self) { try await archive.fetch(file, to: target) }
        #expect(error?.code == .corrupt)
        #expect(error?.description.contains("main/wal/00000001/000000010000000000000001.gz") == true)
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(!FileManager.default.fileExists(atPath: target + ".pgbackd-tmp"))
    }
}

@Suite struct WALShipperTests {
    func shipper(_ spool: WALSpool, _ storage: MemoryStorage) -> WALShipper {
        let logger = Logger(label: "test")
        return WALShipper(
            spool: spool, archive: WALArchive(repository: Repository(storage: storage, stanza: "main"), level: 1, logger: logger),
            parallelUploads: 2, alerts: AlertDispatcher(configuration: AlertsConfiguration(), logger: logger), logger: logger)
    }

    @Test func shipsEverythingAndEmptiesTheSpool() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        let names = (1...5).map { "00000001000000000000000\($0)" } + ["00000002.history"]
        for (index, name) in names.enumerated() {
            _ = try await spool.push(source: try directory.walFile(name, bytes: walBytes(UInt8(index), count: 1000)))
        }
        let storage = MemoryStorage()
        let result = try await shipper(spool, storage).pass()
        #expect(result.shipped.map(\.name) == names)
        #expect(result.isClean)
        #expect(try directory.spooled().isEmpty)
        #expect(try await storage.list(prefix: "main/wal/").count == 6)
    }

    @Test func alreadyArchivedIsDeletedConflictIsKept() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        let storage = MemoryStorage()
        let archive = WALArchive(repository: Repository(storage: storage, stanza: "main"), level: 1, logger: Logger(label: "test"))
        let same = WALFileName("000000010000000000000001")!, other = WALFileName("000000010000000000000002")!
        _ = try await archive.push(same, bytes: walBytes(1))
        _ = try await archive.push(other, bytes: walBytes(2))
        _ = try await spool.push(source: try directory.walFile(same.name, bytes: walBytes(1)))
        _ = try await spool.push(source: try directory.walFile(other.name, bytes: walBytes(9)))
        let result = try await shipper(spool, storage).pass()
        #expect(result.alreadyArchived == [same])
        #expect(result.conflicts.map(\.file) == [other])
        #expect(try directory.spooled() == [other.name])
        #expect(try await archive.fetch(other) == walBytes(2), "the archived object is never overwritten")
    }
}
