import Foundation
import ObjectStorage
import Testing

// Compiled into two test targets: ObjectStorageTests (memory, files, moto, encrypted: see
// StorageConformance.swift) and, through the symbolic link
// Tests/IntegrationTests/Reliability/StorageConformanceChecks.swift, IntegrationTests, whose
// reliability suite runs the same checks against SeaweedFS (SeaweedFSTests.swift).

/// The behaviour every driver must share (DESIGN.md §3). Each driver's suite calls `runAll`
/// with a storage and a prefix of its own, so the same checks run against memory, disk and S3.
enum StorageConformance {
    /// - Parameters:
    ///   - interruptedUploadSize: bytes an interrupted upload has written; S3 needs more than a
    ///     part before anything (a multipart upload) exists on the server.
    ///   - reportsUploadStartTimes: moto dates every multipart upload 2010-11-10.
    static func runAll(_ storage: any ObjectStorage, prefix: String, interruptedUploadSize: Int = 1000, reportsUploadStartTimes: Bool = true) async throws {
        try await roundTrip(storage, prefix: prefix + "/round-trip")
        try await streamingUpload(storage, prefix: prefix + "/streaming")
        try await invisibleUntilCommit(storage, prefix: prefix + "/commit-point")
        try await rangedGet(storage, prefix: prefix + "/range")
        try await missingObjects(storage, prefix: prefix + "/missing")
        try await listing(storage, prefix: prefix + "/list")
        try await overwrite(storage, prefix: prefix + "/overwrite")
        try await incompleteUploadsAreAborted(storage, prefix: prefix + "/incomplete", size: interruptedUploadSize, checkStartTimes: reportsUploadStartTimes)
        try await invalidKeysAreRejected(storage, prefix: prefix)
    }

    static func pattern(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &+ ($0 >> 9)) }
    }

    static func roundTrip(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/object.bin"
        let bytes = pattern(100_000)
        let stored = try await storage.put(key: key, bytes: bytes)
        #expect(stored.size == 100_000)
        #expect(try await storage.getAll(key: key) == bytes)
        #expect(try await storage.head(key: key)?.size == 100_000)
        #expect(try await storage.list(prefix: prefix).map(\.key) == [key])
        try await storage.delete(key: key)
        #expect(try await storage.head(key: key) == nil)
        #expect(try await storage.list(prefix: prefix).isEmpty)
    }

    static func streamingUpload(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/large.bin"
        let bytes = pattern(3 << 20 | 12345, seed: 3)
        let upload = try await storage.makeUpload(key: key, expectedSize: nil)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + 65_537, bytes.count)
            try await upload.write(Array(bytes[offset..<end]))
            offset = end
        }
        let info = try await upload.commit()
        #expect(info.size == Int64(bytes.count))
        #expect(try await storage.getAll(key: key) == bytes)
        try await storage.delete(key: key)
    }

    static func invisibleUntilCommit(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/manifest.json"
        let upload = try await storage.makeUpload(key: key, expectedSize: nil)
        try await upload.write(Array("{\"half\":".utf8))
        #expect(try await storage.head(key: key) == nil)
        #expect(try await storage.list(prefix: prefix).isEmpty)
        await upload.abort()
        #expect(try await storage.head(key: key) == nil)
        #expect(try await storage.list(prefix: prefix).isEmpty)
        #expect(try await storage.abortIncompleteUploads(prefix: prefix, startedBefore: Date().addingTimeInterval(60)) == 0)
    }

    static func rangedGet(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/ranged.bin"
        let bytes = pattern(10_000, seed: 9)
        try await storage.put(key: key, bytes: bytes)
        #expect(try await storage.getAll(key: key, range: 100..<1100) == Array(bytes[100..<1100]))
        #expect(try await storage.getAll(key: key, range: 9_990..<10_000) == Array(bytes[9_990..<10_000]))
        try await storage.delete(key: key)
    }

    static func missingObjects(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/nothing-here"
        #expect(try await storage.head(key: key) == nil)
        try await storage.delete(key: key)
        do {
            _ = try await storage.getAll(key: key)
            Issue.record("reading a missing object must fail")
        } catch let error as StorageError {
            #expect(error.code == .notFound)
            #expect(error.description.contains("nothing-here"))
        }
    }

    static func listing(_ storage: any ObjectStorage, prefix: String) async throws {
        let keys = [prefix + "/a/1", prefix + "/a/2", prefix + "/ab", prefix + "/b/deep/x"]
        for key in keys.reversed() { try await storage.put(key: key, bytes: [1, 2, 3]) }
        #expect(try await storage.list(prefix: prefix + "/").map(\.key) == keys)
        #expect(try await storage.list(prefix: prefix + "/a").map(\.key) == Array(keys[0...2]))
        #expect(try await storage.list(prefix: prefix + "/a/").map(\.key) == Array(keys[0...1]))
        #expect(try await storage.list(prefix: prefix + "/b/").map(\.size) == [3])
        for key in keys { try await storage.delete(key: key) }
        #expect(try await storage.list(prefix: prefix).isEmpty)
    }

    static func overwrite(_ storage: any ObjectStorage, prefix: String) async throws {
        let key = prefix + "/object"
        try await storage.put(key: key, bytes: pattern(5000))
        try await storage.put(key: key, bytes: [42])
        #expect(try await storage.getAll(key: key) == [42])
        try await storage.delete(key: key)
    }

    static func incompleteUploadsAreAborted(_ storage: any ObjectStorage, prefix: String, size: Int, checkStartTimes: Bool) async throws {
        let key = prefix + "/interrupted.dump.gz"
        let upload = try await storage.makeUpload(key: key, expectedSize: nil)
        try await upload.write(pattern(size))
        // The process "dies" here: neither commit nor abort is ever called.
        if checkStartTimes {
            #expect(try await storage.abortIncompleteUploads(prefix: prefix, startedBefore: Date().addingTimeInterval(-3600)) == 0)
        }
        #expect(try await storage.abortIncompleteUploads(prefix: prefix, startedBefore: Date().addingTimeInterval(60)) == 1)
        #expect(try await storage.abortIncompleteUploads(prefix: prefix, startedBefore: Date().addingTimeInterval(60)) == 0)
        #expect(try await storage.head(key: key) == nil)
        #expect(try await storage.list(prefix: prefix).isEmpty)
    }

    static func invalidKeysAreRejected(_ storage: any ObjectStorage, prefix: String) async throws {
        for key in ["", "/absolute", prefix + "/../escape", prefix + "//double"] {
            await #expect(throws: StorageError.self) { try await storage.put(key: key, bytes: [1]) }
        }
    }
}
