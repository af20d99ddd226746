import Foundation
import ObjectStorage
@testable import PGBackupCore
import Synchronization

/// A synthetic repository over simulated days: backups, WAL and leftovers, on storage whose
/// clock the test sets and which can be made to fail after the k-th delete (a "kill" of expire).
enum Synthetic {
    static let segmentSize = 16 << 20
    static let day: TimeInterval = 86_400
    /// 2025-01-01T00:00:00Z, a Wednesday.
    static let epoch = Date(timeIntervalSince1970: 1_735_689_600)

    struct Options {
        var days = 730
        /// Base backups on days with `d % 7 == 4` (Sundays).
        var baseEvery = 7
        var withBases = true
        /// Days with a second logical backup at 14:00.
        var secondLogicalEvery = 5
        /// The day timeline 2 begins (nil: one timeline).
        var timelineSwitchDay: Int? = 600
    }

    /// A WAL file's key in both naming styles, as in a repository archived into before object
    /// names carried checksums: segments numbered below 40 (and their labels) are old-style
    /// `<name>.gz`, the rest `<name>-<sha256>.gz` (of the bytes ``seed(_:repository:catalog:options:)`` stores).
    static func walKey(_ repository: Repository, _ file: WALFileName) -> String {
        let old = (file.segmentNumber(segmentSize: segmentSize) ?? .max) < 40
        return repository.walKey(WALObjectName(file: file, sha256: old ? nil : WALObjectName.sha256(of: walContent(file))))
    }

    /// What stands for a WAL file's content: its name, so no two files have the same content
    /// (two segments never do; wal-check reports two that do).
    static func walContent(_ file: WALFileName) -> [UInt8] { Array(file.name.utf8) }

    static func date(day: Int, hour: Int) -> Date { epoch.addingTimeInterval(Double(day) * Self.day + Double(hour) * 3600) }

    static func segmentName(_ timeline: UInt32, _ number: Int) -> String {
        WALFileName.segment(timeline: timeline, number: UInt64(number), segmentSize: segmentSize).name
    }

    static func manifest(id: String, kind: BackupKind, startedAt: Date, wal: WALRange? = nil) -> Manifest {
        var manifest = RepositoryTests.manifest(id: id)
        manifest.kind = kind
        manifest.startedAt = startedAt
        manifest.finishedAt = startedAt.addingTimeInterval(600)
        if kind == .base {
            manifest.databases = []
            manifest.artifacts = [Artifact(key: "backups/\(id)/base.tar.gz", content: .baseTar, database: nil, rawSize: 10, rawSha256: "aa", storedSize: 5, storedSha256: "bb", crc32: 7)]
            manifest.wal = wal
        } else {
            manifest.artifacts.append(Artifact(key: "backups/\(id)/globals.sql.gz", content: .globals, database: nil, rawSize: 10, rawSha256: "aa", storedSize: 5, storedSha256: "bb", crc32: 7))
        }
        return manifest
    }

    /// The catalog alone (no storage), for the policy tests.
    static func catalog(_ options: Options = Options()) -> [Manifest] {
        var result: [Manifest] = []
        for d in 0..<options.days {
            result.append(logical(day: d, hour: 2))
            if d % options.secondLogicalEvery == 3 { result.append(logical(day: d, hour: 14)) }
            if options.withBases && d % options.baseEvery == 4 { result.append(base(day: d, options: options)) }
        }
        return result
    }

    static func logical(day d: Int, hour: Int) -> Manifest {
        let started = date(day: d, hour: hour)
        return manifest(id: Repository.formatBackupID(started, kind: .logical), kind: .logical, startedAt: started)
    }

    static func timeline(day d: Int, options: Options) -> UInt32 {
        options.timelineSwitchDay.map { d >= $0 ? 2 : 1 } ?? 1
    }

    static func base(day d: Int, options: Options) -> Manifest {
        let started = date(day: d, hour: 1)
        let tl = timeline(day: d, options: options)
        let wal = WALRange(timeline: tl, startLSN: "0/0", stopLSN: "0/0", segmentSize: segmentSize,
                           startSegment: segmentName(tl, 4 * d + 1), stopSegment: segmentName(tl, 4 * d + 2))
        return manifest(id: Repository.formatBackupID(started, kind: .base), kind: .base, startedAt: started, wal: wal)
    }

    /// Every WAL file: four segments a day, a `.backup` label per base backup, and on a
    /// timeline switch the history file, with the switch segment archived on both timelines.
    static func walFiles(_ options: Options, bases: [Manifest]) -> [WALFileName] {
        var files: [WALFileName] = []
        for d in 0..<options.days {
            let tl = timeline(day: d, options: options)
            for n in 4 * d..<4 * d + 4 { files.append(WALFileName(segmentName(tl, n))!) }
        }
        if let switchDay = options.timelineSwitchDay, switchDay < options.days {
            files.append(WALFileName(segmentName(1, 4 * switchDay))!)
            files.append(WALFileName("00000002.history")!)
        }
        for base in bases { files.append(WALFileName(base.wal!.startSegment + ".00000028.backup")!) }
        return files
    }

    /// Stores the catalog (manifests and artifacts, each put at its backup's simulated time), its
    /// WAL, and a drill report per backup.
    static func seed(_ storage: SimulatedStorage, repository: Repository, catalog: [Manifest], options: Options) async throws {
        for manifest in catalog {
            storage.now = manifest.startedAt
            for artifact in manifest.artifacts {
                try await storage.put(key: repository.key(relative: artifact.key), bytes: [1, 2, 3, 4, 5])
            }
            try await storage.put(key: repository.manifestKey(manifest.backupId), bytes: try manifest.encoded())
            try await storage.put(key: repository.drillReportKey(backupId: manifest.backupId, drillId: "d1"), bytes: [1])
        }
        for file in walFiles(options, bases: catalog.filter { $0.kind == .base }) {
            try await storage.put(key: walKey(repository, file), bytes: walContent(file))
        }
    }
}

/// Memory storage with a simulated clock (objects carry the time they were put) and an optional
/// failure: once `failAfterDeletes` deletes have succeeded, every further delete throws.
final class SimulatedStorage: ObjectStorage {
    struct State {
        var now = Synthetic.epoch
        var modified: [String: Date] = [:]
        var deletes = 0
        var failAfterDeletes: Int?
    }
    let base = MemoryStorage()
    let state = Mutex(State())

    var now: Date {
        get { state.withLock { $0.now } }
        set { state.withLock { $0.now = newValue } }
    }
    var failAfterDeletes: Int? {
        get { state.withLock { $0.failAfterDeletes } }
        set { state.withLock { $0.failAfterDeletes = newValue } }
    }
    var deletes: Int { state.withLock { $0.deletes } }

    func makeUpload(key: String, expectedSize: Int64?) async throws -> any ObjectUpload {
        state.withLock { $0.modified[key] = $0.now }
        return try await base.makeUpload(key: key, expectedSize: expectedSize)
    }

    func get(key: String, range: Range<Int64>?) async throws -> ObjectByteStream {
        try await base.get(key: key, range: range)
    }

    func head(key: String) async throws -> ObjectInfo? {
        try await base.head(key: key).map(stamped)
    }

    func list(prefix: String) async throws -> [ObjectInfo] {
        try await base.list(prefix: prefix).map(stamped)
    }

    func delete(key: String) async throws {
        try state.withLock { state in
            if let limit = state.failAfterDeletes, state.deletes >= limit {
                throw StorageError(.unreachable, key: key, message: "simulated kill after \(limit) deletes")
            }
            state.deletes += 1
        }
        try await base.delete(key: key)
    }

    func abortIncompleteUploads(prefix: String, startedBefore date: Date) async throws -> Int {
        try await base.abortIncompleteUploads(prefix: prefix, startedBefore: date)
    }

    private func stamped(_ info: ObjectInfo) -> ObjectInfo {
        var info = info
        info.lastModified = state.withLock { $0.modified[info.key] }
        return info
    }

    var keys: Set<String> {
        get async throws { Set(try await base.list(prefix: "").map(\.key)) }
    }
}
