import Compression
import Crypto
import Dispatch
import Encryption
import Foundation
import ObjectStorage
import OffloadedWork
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Reads an artifact back from the repository and proves it is the one the manifest describes:
/// stored size and SHA-256, a valid gzip stream, raw size and SHA-256. Optionally writes the raw
/// bytes to a staging file on the way, so a restore reads the repository once.
///
/// Two stages on two queues, so two cores share the work: one inflates a chunk while the other
/// hashes the chunk before it (stored and raw bytes) and writes its raw bytes. Each stage sees
/// the chunks in order; at most one chunk waits between them.
struct ArtifactVerifier {
    let repository: Repository

    struct Outcome: Sendable {
        var storedSize: Int64
        var rawSize: Int64
    }

    /// - Parameter stagingPath: where to write the decompressed bytes; nil to only verify.
    func verify(_ artifact: Artifact, stagingPath: String? = nil) async throws -> Outcome {
        let key = repository.key(relative: artifact.key)
        let head: ObjectInfo?
        do {
            head = try await repository.storage.head(key: key)
        } catch let error as EncryptionError {
            throw IntegrityError(code: .undecryptable, key: artifact.key, message: "object \(key): \(error)")
        }
        guard let info = head else {
            throw IntegrityError(code: .missingObject, key: artifact.key, message: "object \(key) is missing from the repository (the manifest lists it)")
        }
        guard info.size == artifact.storedSize else {
            throw IntegrityError(code: .sizeMismatch, key: artifact.key, message: "object \(key) has \(info.size) bytes but the manifest says \(artifact.storedSize): it was truncated or replaced")
        }
        let decoding = DecodingState()
        let sink = try SinkState(key: key, stagingPath: stagingPath)
        let decodeQueue = DispatchQueue(label: "pgbackd.verify.inflate")
        let sinkQueue = DispatchQueue(label: "pgbackd.verify.hash")
        var pending: OffloadedWork<Void>?
        do {
            do {
                for try await chunk in try await repository.storage.get(key: key, range: nil) {
                    let raw = try await offload(on: decodeQueue) { try decoding.consume(chunk) }
                    try await pending?.value
                    pending = OffloadedWork(on: sinkQueue) { try sink.consume(stored: chunk, raw: raw) }
                }
                try await pending?.value
                pending = nil
            } catch {
                // The write in flight ends before the caller removes the staging file.
                _ = try? await pending?.value
                throw error
            }
            let lastMembers = try await offload(on: decodeQueue) { try decoding.finish() }
            try await offload(on: sinkQueue) { try sink.consume(stored: [], raw: lastMembers) }
            let outcome = try await offload(on: sinkQueue) { try sink.finish() }
            try check(outcome, against: artifact, key: key)
            return Outcome(storedSize: outcome.storedSize, rawSize: outcome.rawSize)
        } catch let error as StorageError where error.code == .notFound {
            throw IntegrityError(code: .missingObject, key: artifact.key, message: "object \(key) is missing from the repository (the manifest lists it)")
        } catch let error as CompressionError {
            throw IntegrityError(code: .corruptCompression, key: artifact.key, message: "object \(key) is not a valid gzip stream: \(error)")
        } catch let error as EncryptionError {
            throw IntegrityError(code: .undecryptable, key: artifact.key, message: "object \(key) cannot be decrypted: \(error)")
        }
    }

    private func check(_ outcome: SinkState.Result, against artifact: Artifact, key: String) throws {
        if outcome.storedSize != artifact.storedSize {
            throw IntegrityError(code: .sizeMismatch, key: artifact.key, message: "object \(key): read \(outcome.storedSize) bytes but the manifest says \(artifact.storedSize)")
        }
        if outcome.storedSha256 != artifact.storedSha256 {
            throw IntegrityError(code: .checksumMismatch, key: artifact.key, message: "object \(key) does not match its manifest SHA-256 (stored bytes changed since the backup)")
        }
        if outcome.rawSize != artifact.rawSize || outcome.rawSha256 != artifact.rawSha256 {
            throw IntegrityError(code: .checksumMismatch, key: artifact.key, message: "object \(key) decompresses to different bytes than were backed up (\(outcome.rawSize) bytes, manifest \(artifact.rawSize))")
        }
    }
}

/// The gzip decoder of one verification. Every call comes from one serial queue; the mutex
/// makes that provable to the compiler at no real cost.
private final class DecodingState: Sendable {
    private let decoder = Mutex(GzipDecoder())

    func consume(_ chunk: [UInt8]) throws -> [UInt8] {
        try decoder.withLock { try $0.decompress(chunk) }
    }

    func finish() throws -> [UInt8] {
        try decoder.withLock { try $0.finish() }
    }
}

/// The running hashes and the staging file of one verification, fed in order from one serial
/// queue (the mutex makes that provable to the compiler at no real cost).
private final class SinkState: Sendable {
    struct Result: Sendable {
        var storedSize: Int64
        var storedSha256: String
        var rawSize: Int64
        var rawSha256: String
    }
    private struct State {
        var storedHash = SHA256()
        var rawHash = SHA256()
        var storedSize: Int64 = 0
        var rawSize: Int64 = 0
        var fd: Int32 = -1
    }
    private let state: Mutex<State>
    private let key: String
    private let stagingPath: String?

    init(key: String, stagingPath: String?) throws {
        var initial = State()
        if let stagingPath {
            initial.fd = open(stagingPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard initial.fd >= 0 else {
                throw StorageError(.io, key: key, message: "cannot create staging file \(stagingPath): \(String(cString: strerror(errno)))")
            }
        }
        self.key = key
        self.stagingPath = stagingPath
        self.state = Mutex(initial)
    }

    deinit {
        state.withLock { if $0.fd >= 0 { close($0.fd) } }
    }

    func consume(stored chunk: [UInt8], raw: [UInt8]) throws {
        try state.withLock { state in
            state.storedHash.update(data: chunk)
            state.storedSize += Int64(chunk.count)
            state.rawHash.update(data: raw)
            state.rawSize += Int64(raw.count)
            if state.fd >= 0 { try writeAll(state.fd, raw) }
        }
    }

    func finish() throws -> Result {
        state.withLock { state in
            // No fsync: a staging file is scratch space, deleted after the restore.
            if state.fd >= 0 {
                close(state.fd)
                state.fd = -1
            }
            return Result(storedSize: state.storedSize, storedSha256: state.storedHash.finalize().hexString,
                          rawSize: state.rawSize, rawSha256: state.rawHash.finalize().hexString)
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    let reason = String(cString: strerror(errno))
                    throw StorageError(.io, key: key, message: "cannot write staging file \(stagingPath ?? ""): \(reason)\(errno == ENOSPC ? " (the staging directory is full)" : "")")
                }
                offset += written
            }
        }
    }
}
