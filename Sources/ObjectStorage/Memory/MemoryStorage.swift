import Foundation
import Synchronization

/// Objects in a dictionary: for unit tests, and the reference the conformance suite holds the
/// other drivers to.
public final class MemoryStorage: ObjectStorage {
    struct Pending {
        var bytes: [UInt8]
        var started: Date
    }
    struct State {
        var objects: [String: (bytes: [UInt8], modified: Date)] = [:]
        var pending: [UUID: (key: String, started: Date)] = [:]
    }
    let state = Mutex(State())

    public init() {}

    public func makeUpload(key: String, expectedSize: Int64?) async throws -> any ObjectUpload {
        try validate(key: key)
        let id = UUID()
        state.withLock { $0.pending[id] = (key, Date()) }
        return MemoryUpload(storage: self, id: id, key: key)
    }

    public func get(key: String, range: Range<Int64>?) async throws -> ObjectByteStream {
        guard let bytes = state.withLock({ $0.objects[key]?.bytes }) else {
            return ObjectByteStream(failure: StorageError(.notFound, key: key, message: "no object \(key)"))
        }
        guard let range else { return ObjectByteStream(bytes: bytes) }
        guard range.lowerBound >= 0, range.lowerBound <= Int64(bytes.count) else {
            throw StorageError(.invalidArgument, key: key, message: "range \(range) is outside object \(key) of \(bytes.count) bytes")
        }
        let upper = Int(min(range.upperBound, Int64(bytes.count)))
        return ObjectByteStream(bytes: Array(bytes[Int(range.lowerBound)..<upper]))
    }

    public func head(key: String) async throws -> ObjectInfo? {
        state.withLock { state in
            state.objects[key].map { ObjectInfo(key: key, size: Int64($0.bytes.count), lastModified: $0.modified) }
        }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        state.withLock { state in
            state.objects
                .filter { $0.key.hasPrefix(prefix) }
                .map { ObjectInfo(key: $0.key, size: Int64($0.value.bytes.count), lastModified: $0.value.modified) }
                .sorted { $0.key < $1.key }
        }
    }

    public func delete(key: String) async throws {
        _ = state.withLock { $0.objects.removeValue(forKey: key) }
    }

    public func abortIncompleteUploads(prefix: String, startedBefore date: Date) async throws -> Int {
        state.withLock { state in
            let stale = state.pending.filter { $0.value.key.hasPrefix(prefix) && $0.value.started < date }
            for id in stale.keys { state.pending.removeValue(forKey: id) }
            return stale.count
        }
    }

    /// How many uploads were started and neither committed nor aborted.
    public var incompleteUploadCount: Int { state.withLock { $0.pending.count } }

    fileprivate func finish(id: UUID, key: String, bytes: [UInt8]?) -> ObjectInfo? {
        state.withLock { state in
            guard state.pending.removeValue(forKey: id) != nil else { return nil }
            guard let bytes else { return nil }
            let now = Date()
            state.objects[key] = (bytes, now)
            return ObjectInfo(key: key, size: Int64(bytes.count), lastModified: now)
        }
    }
}

final class MemoryUpload: ObjectUpload {
    let storage: MemoryStorage
    let id: UUID
    let key: String
    private let buffer = Mutex<[UInt8]>([])

    init(storage: MemoryStorage, id: UUID, key: String) {
        self.storage = storage
        self.id = id
        self.key = key
    }

    func write(_ bytes: [UInt8]) async throws {
        buffer.withLock { $0.append(contentsOf: bytes) }
    }

    func commit() async throws -> ObjectInfo {
        let bytes = buffer.withLock { $0 }
        guard let info = storage.finish(id: id, key: key, bytes: bytes) else {
            throw StorageError(.invalidArgument, key: key, message: "upload of \(key) was already finished or aborted")
        }
        return info
    }

    func abort() async {
        _ = storage.finish(id: id, key: key, bytes: nil)
    }
}

/// Keys are relative paths: no empty segments, no `.` or `..`, no leading slash. Every driver
/// applies the same rule so a key that works in tests works against S3 and on disk.
func validate(key: String) throws {
    let segments = key.split(separator: "/", omittingEmptySubsequences: false)
    guard !key.isEmpty, segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
        throw StorageError(.invalidArgument, key: key, message: "invalid object key '\(key)': keys are relative paths without empty, '.' or '..' segments")
    }
}
