import Compression
import Crypto
import Foundation
import ObjectStorage

/// Raw bytes in; gzip, both SHA-256s and the upload handled: the one path every artifact takes
/// into the repository, so dumps, globals and (later) base backups are stored alike.
struct ArtifactWriter {
    let key: String
    let relativeKey: String
    let content: Artifact.Content
    let database: String?
    private let upload: any ObjectUpload
    private var encoder: ParallelGzipEncoder
    private var rawHash = SHA256()
    private var storedHash = SHA256()
    private(set) var rawSize: Int64 = 0
    private var storedSize: Int64 = 0

    /// `compression` chooses level, engine and threads.
    init(repository: Repository, relativeKey: String, content: Artifact.Content, database: String?, compression: CompressionConfiguration) async throws {
        self.key = repository.key(relative: relativeKey)
        self.relativeKey = relativeKey
        self.content = content
        self.database = database
        self.upload = try await repository.storage.makeUpload(key: key, expectedSize: nil)
        let threads = compression.threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : compression.threads
        self.encoder = ParallelGzipEncoder(level: Int32(compression.level), engine: compression.effectiveEngine, workers: threads)
    }

    /// The compressor this artifact is written with.
    var engine: GzipEngine { encoder.engine }

    mutating func write(_ raw: [UInt8]) async throws {
        rawHash.update(data: raw)
        rawSize += Int64(raw.count)
        try await store(try await encoder.compress(raw))
    }

    /// Finishes the gzip stream and commits the object.
    mutating func commit() async throws -> Artifact {
        try await store(try await encoder.finish())
        let info = try await upload.commit()
        guard info.size == storedSize else {
            throw StorageError(.protocolError, key: key, message: "storage reports \(info.size) bytes for \(key) but \(storedSize) were written")
        }
        return Artifact(key: relativeKey, content: content, database: database,
                        rawSize: rawSize, rawSha256: rawHash.finalize().hexString,
                        storedSize: storedSize, storedSha256: storedHash.finalize().hexString,
                        crc32: encoder.crc32)
    }

    func abort() async {
        await upload.abort()
    }

    private mutating func store(_ blocks: [[UInt8]]) async throws {
        for block in blocks where !block.isEmpty {
            storedHash.update(data: block)
            storedSize += Int64(block.count)
            try await upload.write(block)
        }
    }
}

extension Digest {
    var hexString: String {
        self.map { String(format: "%02x", $0) }.joined()
    }
}
