import Foundation

/// The one storage contract every repository driver honours (DESIGN.md §3).
///
/// Keys are `/`-separated paths relative to the driver's root (bucket + prefix, or a directory).
/// A key becomes visible only when its upload commits, so a reader never sees half an object.
public protocol ObjectStorage: Sendable {
    /// Starts a streaming upload. Nothing is visible under `key` until ``ObjectUpload/commit()``.
    /// - Parameter expectedSize: a hint; drivers that split uploads into parts size them from it.
    func makeUpload(key: String, expectedSize: Int64?) async throws -> any ObjectUpload

    /// Streams an object's bytes, or the bytes in `range`. Errors (``StorageError/Code/notFound``
    /// among them) may surface when the stream is first iterated rather than from this call.
    func get(key: String, range: Range<Int64>?) async throws -> ObjectByteStream

    /// The object's size, or nil when no object is stored under `key`.
    func head(key: String) async throws -> ObjectInfo?

    /// Every committed object whose key starts with `prefix`, in key order.
    func list(prefix: String) async throws -> [ObjectInfo]

    /// Removes an object; removing one that is not there is not an error.
    func delete(key: String) async throws

    /// Discards uploads under `prefix` that were started before `date` and never committed
    /// (S3 multipart uploads, leftover temp files), so an interrupted run leaves nothing behind.
    /// - Returns: how many were discarded.
    func abortIncompleteUploads(prefix: String, startedBefore date: Date) async throws -> Int
}

/// One upload in progress. Call ``write(_:)`` any number of times, then exactly one of
/// ``commit()`` or ``abort()``.
public protocol ObjectUpload: Sendable {
    var key: String { get }
    /// Appends bytes. Suspends while the driver's buffers are full, which bounds memory.
    func write(_ bytes: [UInt8]) async throws
    /// Makes the object visible under its key, durably, and returns what was stored.
    func commit() async throws -> ObjectInfo
    /// Throws the upload away; nothing becomes visible. Never throws: cleanup is best effort
    /// and a leftover is removed later by ``ObjectStorage/abortIncompleteUploads(prefix:startedBefore:)``.
    func abort() async
}

public struct ObjectInfo: Sendable, Hashable, Codable {
    public var key: String
    public var size: Int64
    public var lastModified: Date?

    public init(key: String, size: Int64, lastModified: Date? = nil) {
        self.key = key
        self.size = size
        self.lastModified = lastModified
    }
}

extension ObjectStorage {
    /// Stores a small object in one go.
    @discardableResult
    public func put(key: String, bytes: [UInt8]) async throws -> ObjectInfo {
        let upload = try await makeUpload(key: key, expectedSize: Int64(bytes.count))
        do {
            try await upload.write(bytes)
            return try await upload.commit()
        } catch {
            await upload.abort()
            throw error
        }
    }

    /// Reads a whole (small) object into memory.
    public func getAll(key: String, range: Range<Int64>? = nil) async throws -> [UInt8] {
        var result: [UInt8] = []
        for try await chunk in try await get(key: key, range: range) {
            result.append(contentsOf: chunk)
        }
        return result
    }
}
