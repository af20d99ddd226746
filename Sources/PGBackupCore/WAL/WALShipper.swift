import Foundation
import Logging
import ObjectStorage

/// The WAL watcher's work: ships spooled files to the repository, oldest first, several at a
/// time, and deletes each spooled file only once its upload is confirmed (HEAD shows the stored
/// size). A crash at any point leaves the file in the spool; the next pass finds it archived with
/// the same bytes and just deletes it.
///
/// One pass is all it knows; ``WALWatcher`` decides when to run one (inotify, rescans) and
/// raises the alerts.
public struct WALShipper: Sendable {
    public let spool: WALSpool
    public let archive: WALArchive
    public let parallelUploads: Int
    let alerts: AlertDispatcher
    let logger: Logger

    public init(spool: WALSpool, archive: WALArchive, parallelUploads: Int, alerts: AlertDispatcher, logger: Logger) {
        self.spool = spool
        self.archive = archive
        self.parallelUploads = max(1, parallelUploads)
        self.alerts = alerts
        self.logger = logger
    }

    /// The most memory a pass's uploads hold at once, as `configuration` implies, for spooled
    /// files of `segmentSize` bytes; the process's own baseline (code, runtime, libraries) comes
    /// on top. Per upload in flight (`wal.parallel_uploads`): one piece read from the spool and
    /// zlib's output for it (``WALArchive/pieceSize`` each, the output ≤ 0.1 % more), zlib's
    /// state (~0.3 MiB), one more piece when encrypting; and what the storage driver holds: for
    /// S3 the compressed object a single PUT sends (≤ the segment: zlib at level ≥ 1 grows
    /// nothing by more than 0.1 %), or for a larger object at most part size × (parallel parts
    /// + 1) of a multipart upload; for a file repository nothing, each piece goes to disk.
    public static func memoryBound(_ configuration: Configuration, segmentSize: Int64 = 16 << 20) -> Int64 {
        let piece = Int64(WALArchive.pieceSize)
        let compressedSegment = segmentSize + segmentSize / 1000 + (64 << 10)
        var perUpload = 2 * piece + (320 << 10)
        if configuration.encryption != nil { perUpload += piece }
        if case .s3(let s3) = configuration.repository.kind {
            perUpload += min(compressedSegment, Int64(s3.partSizeMiB << 20) * Int64(s3.parallelParts + 1))
        }
        return Int64(max(1, configuration.wal.parallelUploads)) * perUpload
    }

    /// What one pass did, each list in shipping order.
    public struct PassResult: Sendable {
        /// Uploaded, verified and removed from the spool.
        public var shipped: [WALFileName] = []
        /// Archived before with the same bytes; removed from the spool.
        public var alreadyArchived: [WALFileName] = []
        /// Archived with other bytes: left in the spool, `wal.conflict` raised.
        public var conflicts: [(file: WALFileName, error: WALError)] = []
        /// Could not be shipped this time (storage down…); left in the spool for the next pass.
        public var failures: [(file: WALFileName, error: any Error)] = []

        public var isClean: Bool { conflicts.isEmpty && failures.isEmpty }
    }

    private enum Outcome: Sendable {
        case shipped(ObjectInfo)
        case alreadyArchived
        case conflict(WALError)
        case failed(any Error)
    }

    /// Ships everything in the spool now. Cancellation starts no new upload; an upload in flight
    /// is aborted by its driver and its file stays spooled. Once an upload fails because the
    /// storage cannot be reached, no further upload starts in this pass: the next pass retries,
    /// instead of every spooled file waiting out its own retries against a dead endpoint.
    public func pass() async throws -> PassResult {
        let files = try await spool.pending()
        var result = PassResult()
        guard !files.isEmpty else { return result }
        var outcomes: [Int: Outcome] = [:]
        await withTaskGroup(of: (Int, Outcome).self) { group in
            var next = 0
            var inFlight = 0
            var storageDown = false
            while next < files.count || inFlight > 0 {
                while next < files.count, inFlight < parallelUploads, !Task.isCancelled, !storageDown {
                    let index = next, file = files[index].file
                    group.addTask { (index, await self.ship(file)) }
                    next += 1
                    inFlight += 1
                }
                if Task.isCancelled { next = files.count }
                guard let (index, outcome) = await group.next() else { break }
                inFlight -= 1
                outcomes[index] = outcome
                if case .failed(let error) = outcome, WALShipper.isUnreachable(error) { storageDown = true }
            }
        }
        for (index, spooled) in files.enumerated() {
            switch outcomes[index] {
            case .shipped: result.shipped.append(spooled.file)
            case .alreadyArchived: result.alreadyArchived.append(spooled.file)
            case .conflict(let error): result.conflicts.append((spooled.file, error))
            case .failed(let error): result.failures.append((spooled.file, error))
            case nil: break // not started: cancelled, or the storage went away
            }
        }
        return result
    }

    private func ship(_ file: WALFileName) async -> Outcome {
        do {
            // Streamed from the spool file: no whole copy of the segment in memory.
            let pushed = try await archive.push(file, contentsOf: spool.path(of: file))
            try Task.checkCancellation()
            try await spool.remove(file)
            switch pushed {
            case .uploaded(let info):
                logger.info("WAL file shipped", metadata: ["wal.file": "\(file.name)", "wal.key": "\(info.key)", "wal.stored_bytes": "\(info.size)"])
                return .shipped(info)
            case .alreadyArchived:
                logger.info("WAL file was archived already with the same content; removed from the spool", metadata: ["wal.file": "\(file.name)"])
                return .alreadyArchived
            }
        } catch let error as WALError where error.code == .conflict {
            logger.error("WAL file conflicts with the archive; left in the spool", metadata: ["wal.file": "\(file.name)", "wal.error": "\(error)"])
            return .conflict(error)
        } catch {
            logger.warning("WAL file not shipped; will retry", metadata: ["wal.file": "\(file.name)", "wal.error": "\(error)"])
            return .failed(error)
        }
    }

    /// Whether `error` means the storage could not be reached (connection refused or reset,
    /// DNS, TLS, timeouts, 5xx after the driver's retries), as opposed to a refusal (credentials,
    /// permissions), a conflict or a local failure.
    public static func isUnreachable(_ error: any Error) -> Bool {
        if let error = error as? StorageError {
            return error.code == .unreachable || error.code == .timeout || error.code == .serverError
        }
        if let error = error as? WALError, let underlying = error.underlying { return isUnreachable(underlying) }
        return false
    }
}
