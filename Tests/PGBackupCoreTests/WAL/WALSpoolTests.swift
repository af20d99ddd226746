import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Synchronization
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

    /// A whole 16 MiB segment is copied by the kernel (sendfile), not through a buffer of ours:
    /// every byte arrives, and a same-size file that differs in its last byte is a conflict.
    @Test func aSegmentIsCopiedWholeAndComparedToItsLastByte() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        var bytes = walBytes(5, count: 16 << 20)
        let source = try directory.walFile(segment, bytes: bytes)
        #expect(try await spool.push(source: source) == .spooled)
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: "\(directory.spool)/\(segment)"))) == bytes)
        #expect(try await spool.push(source: source) == .alreadySpooled)
        bytes[bytes.count - 1] ^= 1
        try directory.walFile(segment, bytes: bytes)
        let error = await #expect(throws: WALError.self) { try await spool.push(source: source) }
        #expect(error?.code == .conflict)
        #expect(error?.description.contains("(16777216 bytes there, 16777216 pushed)") == true)
        #expect(try directory.spooled() == [segment])
    }

    @Test func aMissingSourceIsAnIOErrorNamingIt() async throws {
        let directory = try WALTestDirectory()
        let spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        let error = await #expect(throws: WALError.self) { try await spool.push(source: "\(directory.pgWal)/\(segment)") }
        #expect(error?.code == .io)
        #expect(error?.description.contains("cannot open \(directory.pgWal)/\(segment)") == true)
        #expect(try directory.spooled().isEmpty)
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

/// Memory storage that counts calls by operation, to prove what a WAL operation does not do.
final class CountingStorage: ObjectStorage {
    enum Operation: Hashable, Sendable { case upload, get, head, list, delete, abort }
    let inner = MemoryStorage()
    private let counts = Mutex<[Operation: Int]>([:])

    func count(_ operation: Operation) -> Int { counts.withLock { $0[operation] ?? 0 } }
    func resetCounts() { counts.withLock { $0 = [:] } }
    private func record(_ operation: Operation) { counts.withLock { $0[operation, default: 0] += 1 } }

    func makeUpload(key: String, expectedSize: Int64?) async throws -> any ObjectUpload {
        record(.upload)
        return try await inner.makeUpload(key: key, expectedSize: expectedSize)
    }
    func get(key: String, range: Range<Int64>?) async throws -> ObjectByteStream {
        record(.get)
        return try await inner.get(key: key, range: range)
    }
    func head(key: String) async throws -> ObjectInfo? {
        record(.head)
        return try await inner.head(key: key)
    }
    func list(prefix: String) async throws -> [ObjectInfo] {
        record(.list)
        return try await inner.list(prefix: prefix)
    }
    func delete(key: String) async throws {
        record(.delete)
        try await inner.delete(key: key)
    }
    func abortIncompleteUploads(prefix: String, startedBefore date: Date) async throws -> Int {
        record(.abort)
        return try await inner.abortIncompleteUploads(prefix: prefix, startedBefore: date)
    }
}

@Suite struct WALArchiveTests {
    let file = WALFileName("000000010000000000000001")!
    var newKey: String { "main/wal/00000001/000000010000000000000001-\(WALObjectName.sha256(of: walBytes(1))).gz" }
    let oldKey = "main/wal/00000001/000000010000000000000001.gz"

    func archive(_ storage: any ObjectStorage = MemoryStorage()) -> WALArchive {
        WALArchive(repository: Repository(storage: storage, stanza: "main"), level: 1, logger: Logger(label: "test"))
    }

    /// What a push of `bytes` stores: gzip of them, as the archive compresses.
    func gzipped(_ bytes: [UInt8]) async throws -> [UInt8] {
        let scratch = MemoryStorage()
        guard case .uploaded(let info) = try await archive(scratch).push(file, bytes: bytes) else { throw CancellationError() }
        return try await scratch.getAll(key: info.key)
    }

    @Test func pushThenFetchRoundTrips() async throws {
        let storage = MemoryStorage()
        let archive = archive(storage)
        guard case .uploaded(let info) = try await archive.push(file, bytes: walBytes(1)) else {
            Issue.record("expected an upload")
            return
        }
        #expect(info.key == newKey, "the SHA-256 of the raw bytes is in the name")
        #expect(try await storage.getAll(key: info.key).prefix(2) == [0x1F, 0x8B], "a gzip file, readable with plain gunzip")
        #expect(try await archive.fetch(file) == walBytes(1))
        #expect(try await archive.push(file, bytes: walBytes(1)) == .alreadyArchived)
        let error = await #expect(throws: WALError.self) { try await archive.push(file, bytes: walBytes(2)) }
        #expect(error?.code == .conflict)
        #expect(error?.description.contains("different content") == true)
        #expect(try await archive.fetch(file) == walBytes(1))
        #expect(try await storage.list(prefix: "main/wal/").map(\.key) == [newKey], "nothing was overwritten or added")
    }

    @Test func identicalPushIsOneListAndNoDownload() async throws {
        let storage = CountingStorage()
        let archive = archive(storage)
        _ = try await archive.push(file, bytes: walBytes(1))
        storage.resetCounts()
        #expect(try await archive.push(file, bytes: walBytes(1)) == .alreadyArchived)
        #expect(storage.count(.list) == 1)
        #expect(storage.count(.get) == 0, "the checksum in the name settles it")
        #expect(storage.count(.upload) == 0)
        storage.resetCounts()
        let error = await #expect(throws: WALError.self) { try await archive.push(file, bytes: walBytes(2)) }
        #expect(error?.code == .conflict)
        #expect(storage.count(.get) == 0 && storage.count(.upload) == 0, "a conflict needs no download either")
    }

    @Test func otherFilesUnderTheSamePrefixAreNotTheName() async throws {
        let storage = MemoryStorage()
        let archive = archive(storage)
        // `<segment>.partial` and `<segment>.<offset>.backup` start with the segment's name.
        _ = try await archive.push(WALFileName(file.name + ".partial")!, bytes: walBytes(7))
        _ = try await archive.push(WALFileName(file.name + ".00000028.backup")!, bytes: walBytes(8))
        let missing = await #expect(throws: WALError.self) { try await archive.fetch(file) }
        #expect(missing?.code == .notFound)
        guard case .uploaded = try await archive.push(file, bytes: walBytes(1)) else {
            Issue.record("the segment is not archived yet: expected an upload")
            return
        }
        #expect(try await archive.fetch(file) == walBytes(1))
        #expect(try await archive.fetch(WALFileName(file.name + ".partial")!) == walBytes(7))
    }

    /// The watcher streams a spooled file (hashed, then compressed piece by piece): it stores
    /// the object a push of the whole bytes stores, under the same key.
    @Test func aStreamedPushStoresWhatAPushOfTheBytesStores() async throws {
        let directory = try WALTestDirectory()
        let bytes = walBytes(9, count: (3 << 20) + 12_345) + (0..<500_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let path = try directory.walFile(file.name, bytes: bytes)
        let streamed = MemoryStorage(), whole = MemoryStorage()
        guard case .uploaded(let info) = try await archive(streamed).push(file, contentsOf: path),
              case .uploaded(let reference) = try await archive(whole).push(file, bytes: bytes)
        else {
            Issue.record("expected two uploads")
            return
        }
        #expect(info.key == reference.key && info.size == reference.size)
        #expect(try await streamed.getAll(key: info.key) == whole.getAll(key: reference.key))
        #expect(try await archive(streamed).fetch(file) == bytes)
    }

    @Test func aStreamedPushComparesLikeAPushOfTheBytes() async throws {
        let directory = try WALTestDirectory()
        let storage = CountingStorage()
        let archive = archive(storage)
        let path = try directory.walFile(file.name, bytes: walBytes(1))
        #expect(try await archive.push(file, contentsOf: path) != .alreadyArchived)
        storage.resetCounts()
        #expect(try await archive.push(file, contentsOf: path) == .alreadyArchived)
        #expect(storage.count(.get) == 0 && storage.count(.upload) == 0)
        try directory.walFile(file.name, bytes: walBytes(2))
        let error = await #expect(throws: WALError.self) { try await archive.push(file, contentsOf: path) }
        #expect(error?.code == .conflict)
        // An old-style object is downloaded and compared with the file's bytes.
        let old = CountingStorage()
        try await old.put(key: oldKey, bytes: try await gzipped(walBytes(2)))
        old.resetCounts()
        #expect(try await self.archive(old).push(file, contentsOf: path) == .alreadyArchived)
        #expect(old.count(.get) == 1 && old.count(.upload) == 0)
        try directory.walFile(file.name, bytes: walBytes(3))
        let oldConflict = await #expect(throws: WALError.self) { try await self.archive(old).push(file, contentsOf: path) }
        #expect(oldConflict?.code == .conflict)
    }

    /// Hashed on the first read, compressed on the second: a file changed in between would be
    /// stored under another content's checksum, so the upload is aborted instead.
    @Test func aFileChangedBetweenItsTwoReadsIsNotCommitted() throws {
        let directory = try WALTestDirectory()
        let path = try directory.walFile(file.name, bytes: walBytes(1))
        let source = try WALFiles.SourceFile(opening: path)
        try source.checkUnchanged()
        usleep(10_000)
        let fd = open(path, O_WRONLY)
        #expect(fd >= 0)
        #expect(pwrite(fd, [UInt8(7)], 1, 100) == 1)
        close(fd)
        let error = #expect(throws: WALError.self) { try source.checkUnchanged() }
        #expect(error?.description.contains("changed while it was being shipped") == true)
    }

    @Test func missingIsNotFound() async throws {
        let error = await #expect(throws: WALError.self) { try await archive().fetch(file) }
        #expect(error?.code == .notFound)
    }

    @Test func corruptObjectFailsNamingItAndWritesNothing() async throws {
        let storage = MemoryStorage()
        let archive = archive(storage)
        _ = try await archive.push(file, bytes: walBytes(1))
        var bytes = try await storage.getAll(key: newKey)
        bytes[bytes.count / 2] ^= 0x40
        try await storage.put(key: newKey, bytes: bytes)
        let directory = try WALTestDirectory()
        let target = "\(directory.pgWal)/RECOVERYXLOG"
        let error = await #expect(throws: WALError.self) { try await archive.fetch(file, to: target) }
        #expect(error?.code == .corrupt)
        #expect(error?.description.contains(newKey) == true)
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(!FileManager.default.fileExists(atPath: target + ".pgbackd-tmp"))
    }

    /// Valid gzip of other bytes under the name: the CRC passes, the checksum in the name does not.
    @Test func contentNotMatchingItsNameIsCorruptAndWritesNothing() async throws {
        let storage = MemoryStorage()
        let archive = archive(storage)
        _ = try await archive.push(file, bytes: walBytes(1))
        try await storage.put(key: newKey, bytes: try await gzipped(walBytes(2)))
        let directory = try WALTestDirectory()
        let target = "\(directory.pgWal)/RECOVERYXLOG"
        let error = await #expect(throws: WALError.self) { try await archive.fetch(file, to: target) }
        #expect(error?.code == .corrupt)
        #expect(error?.description.contains(newKey) == true)
        #expect(error?.description.contains("SHA-256 \(WALObjectName.sha256(of: walBytes(2)))") == true)
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(!FileManager.default.fileExists(atPath: target + ".pgbackd-tmp"))
    }

    @Test func oldStyleObjectsAreStillReadAndCompared() async throws {
        let storage = CountingStorage()
        let archive = archive(storage)
        try await storage.put(key: oldKey, bytes: try await gzipped(walBytes(1)))
        #expect(try await archive.fetch(file) == walBytes(1))
        storage.resetCounts()
        #expect(try await archive.push(file, bytes: walBytes(1)) == .alreadyArchived)
        #expect(storage.count(.get) == 1, "no checksum in the name: downloaded and compared")
        let error = await #expect(throws: WALError.self) { try await archive.push(file, bytes: walBytes(2)) }
        #expect(error?.code == .conflict)
        #expect(try await storage.list(prefix: "main/wal/").map(\.key) == [oldKey], "no new-style object next to it")

        var bytes = try await storage.getAll(key: oldKey)
        bytes[bytes.count / 2] ^= 0x40
        try await storage.put(key: oldKey, bytes: bytes)
        let corrupt = await #expect(throws: WALError.self) { try await archive.fetch(file) }
        #expect(corrupt?.code == .corrupt, "the gzip CRC is an old-style object's check")
    }

    @Test func twoObjectsForOneNameAreNeverChosenBetween() async throws {
        let storage = MemoryStorage()
        let archive = archive(storage)
        _ = try await archive.push(file, bytes: walBytes(1))
        let otherKey = "main/wal/00000001/000000010000000000000001-\(WALObjectName.sha256(of: walBytes(2))).gz"
        try await storage.put(key: otherKey, bytes: try await gzipped(walBytes(2)))
        let directory = try WALTestDirectory()
        let target = "\(directory.pgWal)/RECOVERYXLOG"
        let error = await #expect(throws: WALError.self) { try await archive.fetch(file, to: target) }
        #expect(error?.code == .ambiguous)
        #expect(error?.description.contains(newKey) == true && error?.description.contains(otherKey) == true)
        #expect(!FileManager.default.fileExists(atPath: target))
        let prefetched = await #expect(throws: WALError.self) {
            try await WALPrefetcher(archive: archive, depth: 2, logger: Logger(label: "test")).fetch(file, to: target)
        }
        #expect(prefetched?.code == .ambiguous)
        #expect(!FileManager.default.fileExists(atPath: target))
        let push = await #expect(throws: WALError.self) { try await archive.push(file, bytes: walBytes(1)) }
        #expect(push?.code == .conflict, "one of them holds other content")
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
