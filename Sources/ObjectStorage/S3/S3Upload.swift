import CurlHTTP
import Foundation
import Logging
import OffloadedWork

/// One S3 upload: a single PUT when everything fits in one part, a multipart upload otherwise.
///
/// Bytes collect in a part buffer; a full buffer becomes a part upload on the transfer queue,
/// and ``write(_:)`` suspends while `parallelParts` parts are in flight, so at most
/// `partSize × (parallelParts + 1)` bytes are held. The multipart upload is created only when a
/// second part is needed. Call the methods one at a time (the contract's order: writes, then
/// one commit or abort).
actor S3Upload: ObjectUpload {
    nonisolated let key: String
    private let client: S3Client
    private let sizer: S3PartSizer
    private let cancel = CancellationFlag()
    private var buffer: [UInt8] = []
    private var bytesWritten: Int64 = 0
    private var uploadID: String?
    private var partsStarted = 0
    private var inFlight: [(number: Int, work: OffloadedWork<String>)] = []
    private var completed: [(number: Int, eTag: String)] = []
    /// The first failure; every later write or commit throws it.
    private var failure: (any Error)?
    private var finished = false

    init(client: S3Client, key: String, expectedSize: Int64?) {
        self.client = client
        self.key = key
        self.sizer = S3PartSizer(partSize: client.configuration.partSize, expectedSize: expectedSize)
    }

    func write(_ bytes: [UInt8]) async throws {
        try checkOpen()
        var offset = 0
        while offset < bytes.count {
            let target = sizer.size(ofPart: partsStarted + 1)
            if buffer.count >= target {
                try await startPart()
                continue
            }
            // The whole part at once: appends that grow it by doubling copy it up to eleven
            // times and can hold two copies (memory pages not written stay unused).
            if buffer.isEmpty { buffer.reserveCapacity(target) }
            let take = min(target - buffer.count, bytes.count - offset)
            buffer.append(contentsOf: bytes[offset..<(offset + take)])
            offset += take
            bytesWritten += Int64(take)
        }
        if bytesWritten > S3PartSizer.maximumObjectSize {
            let error = StorageError(.invalidArgument, key: key, message: "object \(key) is larger than S3's limit of 5 TiB")
            failure = error
            throw error
        }
    }

    func commit() async throws -> ObjectInfo {
        try checkOpen()
        do {
            if uploadID == nil {
                let body = buffer
                buffer = []
                _ = try await client.sendAsync(S3Client.Request(
                    operation: "PutObject", method: "PUT", bucketKey: client.bucketKey(key), displayKey: key, body: body
                ))
            } else {
                if !buffer.isEmpty { try await startPart() }
                while !inFlight.isEmpty { try await finishOldestPart() }
                guard let uploadID else { preconditionFailure("multipart upload without an id") }
                let parts = completed
                let size = bytesWritten
                try await offload(on: client.transferQueue()) { [client, key] in
                    try client.completeMultipartUpload(key: key, uploadID: uploadID, parts: parts, size: size)
                }
            }
            finished = true
            client.logger.debug("S3 upload committed", metadata: [
                "s3.key": "\(key)", "s3.size": "\(bytesWritten)", "s3.parts": "\(max(partsStarted, 1))",
            ])
            return ObjectInfo(key: key, size: bytesWritten, lastModified: Date())
        } catch {
            if failure == nil { failure = error }
            throw error
        }
    }

    func abort() async {
        guard !finished else { return }
        finished = true
        cancel.cancel()
        let running = inFlight
        inFlight = []
        for part in running { _ = try? await part.work.value }
        buffer = []
        guard let uploadID else { return }
        do {
            try await offload(on: client.transferQueue()) { [client, key] in
                _ = try client.abortMultipartUpload(key: key, uploadID: uploadID)
            }
        } catch {
            client.logger.warning("could not abort S3 multipart upload; abortIncompleteUploads will remove it", metadata: [
                "s3.key": "\(key)", "s3.upload_id": "\(uploadID)", "s3.error": "\(error)",
            ])
        }
    }

    private func checkOpen() throws {
        if let failure { throw failure }
        if finished {
            throw StorageError(.invalidArgument, key: key, message: "upload of \(key) was already committed or aborted")
        }
        if Task.isCancelled {
            throw StorageError(.cancelled, key: key, message: "upload of \(key) was cancelled")
        }
    }

    /// Hands the full buffer to a part upload, first waiting for a free slot.
    private func startPart() async throws {
        do {
            if uploadID == nil {
                uploadID = try await offload(on: client.transferQueue()) { [client, key] in try client.createMultipartUpload(key: key) }
            }
            while inFlight.count >= max(1, client.configuration.parallelParts) { try await finishOldestPart() }
            if finished {
                throw StorageError(.cancelled, key: key, message: "upload of \(key) was aborted")
            }
        } catch {
            if failure == nil { failure = error }
            throw error
        }
        guard let uploadID else { return }
        partsStarted += 1
        let number = partsStarted
        let body = buffer
        buffer = []
        buffer.reserveCapacity(sizer.size(ofPart: number + 1))
        let work = OffloadedWork(on: client.transferQueue()) { [client, key, cancel] in
            try client.uploadPart(key: key, uploadID: uploadID, number: number, body: body, cancel: cancel)
        }
        inFlight.append((number, work))
    }

    private func finishOldestPart() async throws {
        let part = inFlight.removeFirst()
        do {
            completed.append((part.number, try await part.work.value))
        } catch {
            if failure == nil { failure = error }
            throw error
        }
    }
}
