import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

@Suite struct WALPrefetchTests {
    /// 1 MiB segments (`initdb --wal-segsize=1`): small, and a real segment size.
    static let segmentBytes = 1 << 20

    func name(_ segment: Int, log: Int = 0) -> WALFileName {
        WALFileName("00000001" + WALFileName.hex8(UInt32(log)) + WALFileName.hex8(UInt32(segment)))!
    }

    struct Setup {
        let storage = CountingStorage()
        let directory: WALTestDirectory
        let archive: WALArchive
        var target: String { "\(directory.pgWal)/RECOVERYXLOG" }
        var prefetchDirectory: String { "\(directory.pgWal)/.pgbackd-prefetch" }

        init() throws {
            directory = try WALTestDirectory()
            archive = WALArchive(repository: Repository(storage: storage, stanza: "main"), level: 1, logger: Logger(label: "test"))
        }

        func prefetcher(depth: Int = 3) -> WALPrefetcher {
            WALPrefetcher(archive: archive, depth: depth, logger: Logger(label: "test"))
        }

        func prefetched() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: prefetchDirectory)) ?? []).map { String($0.prefix(24)) }.sorted()
        }

        func delivered() throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: target))) }
    }

    static func bytes(_ seed: Int) -> [UInt8] { walBytes(UInt8(seed), count: segmentBytes) }

    @Test func successorsFollowTheSegmentSize() {
        #expect(name(0xFE).followingSegments(3, segmentBytes: 16 << 20).map(\.name)
                == ["0000000100000000000000FF", "000000010000000100000000", "000000010000000100000001"])
        #expect(name(0x3F).followingSegments(1, segmentBytes: 64 << 20).map(\.name) == ["000000010000000100000000"])
        #expect(name(0x3F).followingSegments(1, segmentBytes: 16 << 20).map(\.name) == ["000000010000000000000040"])
        #expect(name(0xFFF).followingSegments(1, segmentBytes: 1 << 20).map(\.name) == ["000000010000000100000000"])
        #expect(name(1).followingSegments(2, segmentBytes: 3 << 20).isEmpty, "not a power of two")
        #expect(WALFileName("00000002.history")!.followingSegments(2, segmentBytes: 16 << 20).isEmpty)
    }

    @Test func readsAheadAndServesTheNextCallsLocally() async throws {
        let setup = try Setup()
        for segment in 1...6 { _ = try await setup.archive.push(name(segment), bytes: Self.bytes(segment)) }
        let prefetcher = setup.prefetcher(depth: 3)

        #expect(try await prefetcher.fetch(name(1), to: setup.target) == .archive)
        #expect(try setup.delivered() == Self.bytes(1))
        #expect(setup.prefetched() == [2, 3, 4].map { name($0).name })

        // Served from disk, without asking the storage: delete the objects to prove it.
        for segment in 2...4 { try await setup.storage.delete(key: try await setup.archive.locate(name(segment)).key) }
        for segment in 2...3 {
            #expect(try await prefetcher.fetch(name(segment), to: setup.target) == .prefetched)
            #expect(try setup.delivered() == Self.bytes(segment))
        }
        #expect(setup.prefetched() == [name(4).name])
        // The last one of the window: served locally, then the next window (5, 6; 7 is missing).
        #expect(try await prefetcher.fetch(name(4), to: setup.target) == .prefetched)
        #expect(try setup.delivered() == Self.bytes(4))
        #expect(setup.prefetched() == [5, 6].map { name($0).name }, "a missing segment is simply not prefetched")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: setup.prefetchDirectory).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "no temp file left: \(leftovers)")
    }

    @Test func oneListForTheWholeWindow() async throws {
        let setup = try Setup()
        for segment in 1...6 { _ = try await setup.archive.push(name(segment), bytes: Self.bytes(segment)) }
        setup.storage.resetCounts()
        #expect(try await setup.prefetcher(depth: 4).fetch(name(1), to: setup.target) == .archive)
        #expect(setup.storage.count(.list) == 1, "the asked-for segment and its successors share one LIST")
        #expect(setup.storage.count(.get) == 5)
        #expect(setup.prefetched() == [2, 3, 4, 5].map { name($0).name })
        setup.storage.resetCounts()
        for segment in 2...4 { #expect(try await setup.prefetcher(depth: 4).fetch(name(segment), to: setup.target) == .prefetched) }
        #expect(setup.storage.count(.list) == 0 && setup.storage.count(.get) == 0, "served from disk, no network")

        // Across a log boundary: two LISTs (one per log number), never the whole timeline.
        let last = name(0xFFF), first = name(0, log: 1)
        _ = try await setup.archive.push(last, bytes: Self.bytes(7))
        _ = try await setup.archive.push(first, bytes: Self.bytes(8))
        setup.storage.resetCounts()
        #expect(try await setup.prefetcher(depth: 2).fetch(last, to: setup.target) == .archive)
        #expect(setup.storage.count(.list) == 2)
        #expect(setup.prefetched() == [first.name])
    }

    /// A successor whose gzip is valid but whose content is not what its name's checksum says is
    /// not prefetched; asked for, it fails as corrupt.
    @Test func aSuccessorNotMatchingItsNameIsNotPrefetched() async throws {
        let setup = try Setup()
        for segment in 1...3 { _ = try await setup.archive.push(name(segment), bytes: Self.bytes(segment)) }
        let key = try await setup.archive.locate(name(2)).key
        let scratch = MemoryStorage()
        let other = WALArchive(repository: Repository(storage: scratch, stanza: "main"), level: 1, logger: Logger(label: "test"))
        _ = try await other.push(name(2), bytes: Self.bytes(9))
        try await setup.storage.put(key: key, bytes: try await scratch.getAll(key: try await other.locate(name(2)).key))

        _ = try await setup.prefetcher(depth: 2).fetch(name(1), to: setup.target)
        #expect(setup.prefetched() == [name(3).name])
        try FileManager.default.removeItem(atPath: setup.target)
        let error = await #expect(throws: WALError.self) { try await setup.prefetcher(depth: 2).fetch(name(2), to: setup.target) }
        #expect(error?.code == .corrupt)
        #expect(!FileManager.default.fileExists(atPath: setup.target))
    }

    @Test func aDamagedPrefetchedFileIsNeverServed() async throws {
        let setup = try Setup()
        for segment in 1...3 { _ = try await setup.archive.push(name(segment), bytes: Self.bytes(segment)) }
        let prefetcher = setup.prefetcher(depth: 2)
        _ = try await prefetcher.fetch(name(1), to: setup.target)
        let entry = try #require(try FileManager.default.contentsOfDirectory(atPath: setup.prefetchDirectory).first { $0.hasPrefix(name(2).name) })
        var damaged = Self.bytes(2)
        damaged[1000] ^= 0xFF
        try Data(damaged).write(to: URL(fileURLWithPath: "\(setup.prefetchDirectory)/\(entry)"))

        #expect(try await prefetcher.fetch(name(2), to: setup.target) == .archive, "fetched again from the archive")
        #expect(try setup.delivered() == Self.bytes(2))
    }

    @Test func aMissingSegmentIsNotFoundAndWritesNothing() async throws {
        let setup = try Setup()
        for segment in 2...4 { _ = try await setup.archive.push(name(segment), bytes: Self.bytes(segment)) }
        let error = await #expect(throws: WALError.self) { try await setup.prefetcher().fetch(name(1), to: setup.target) }
        #expect(error?.code == .notFound)
        #expect(!FileManager.default.fileExists(atPath: setup.target))
        #expect(!FileManager.default.fileExists(atPath: setup.target + ".pgbackd-tmp"))
    }

    @Test func depthZeroAndHistoryFilesFetchOnlyWhatIsAsked() async throws {
        let setup = try Setup()
        for segment in 1...3 { _ = try await setup.archive.push(name(segment), bytes: Self.bytes(segment)) }
        let history = WALFileName("00000002.history")!
        _ = try await setup.archive.push(history, bytes: Array("1\t0/3000000\tno recovery target specified\n".utf8))
        #expect(try await setup.prefetcher(depth: 0).fetch(name(1), to: setup.target) == .archive)
        #expect(!FileManager.default.fileExists(atPath: setup.prefetchDirectory))
        #expect(try await setup.prefetcher(depth: 4).fetch(history, to: setup.target) == .archive)
        #expect(!FileManager.default.fileExists(atPath: setup.prefetchDirectory))
    }

    @Test func leftoversOfKilledCallsAndStaleEntriesAreRemoved() async throws {
        let setup = try Setup()
        for segment in 1...4 { _ = try await setup.archive.push(name(segment), bytes: Self.bytes(segment)) }
        try FileManager.default.createDirectory(atPath: setup.prefetchDirectory, withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: "\(setup.prefetchDirectory)/.\(name(2).name).99999.tmp"))
        let stale = WALPrefetcher.entryName(name(0x50), sha256: WALPrefetcher.hex([1]))
        try Data([1]).write(to: URL(fileURLWithPath: "\(setup.prefetchDirectory)/\(stale)"))
        _ = try await setup.prefetcher(depth: 2).fetch(name(1), to: setup.target)
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.prefetchDirectory).map { String($0.prefix(24)) }.sorted()
                == [name(2).name, name(3).name])
    }
}
