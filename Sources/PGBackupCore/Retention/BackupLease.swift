import Foundation
import Logging
import ObjectStorage

/// Marks a backup as in use by a restore or a drill, so `pgbackd expire` never removes it
/// underneath them. The mark is an object `<stanza>/locks/<backup-id>/<lease-id>.json` whose
/// heartbeat time is refreshed every ``heartbeatInterval``; expire treats it as live while its
/// heartbeat is younger than ``ttl``, so a holder that was killed stops protecting the backup
/// after at most ``ttl`` without anyone having to clean up after it.
public struct BackupLease: Sendable {
    /// A lease is live while its heartbeat is younger than this.
    public static let ttl: TimeInterval = 15 * 60
    /// Well under ``ttl``: a few missed heartbeats (a slow storage) do not let a lease lapse.
    public static let heartbeatInterval: Duration = .seconds(60)

    /// What the lease object holds.
    public struct Record: Codable, Sendable, Equatable {
        public var backupId: String
        public var leaseId: String
        /// `drill` or `restore`: shown by `pgbackd expire` when it keeps a backup for this lease.
        public var purpose: String
        public var host: String
        public var pid: Int32
        public var acquiredAt: Date
        public var heartbeatAt: Date

        public init(backupId: String, leaseId: String, purpose: String, host: String, pid: Int32, acquiredAt: Date, heartbeatAt: Date) {
            self.backupId = backupId
            self.leaseId = leaseId
            self.purpose = purpose
            self.host = host
            self.pid = pid
            self.acquiredAt = acquiredAt
            self.heartbeatAt = heartbeatAt
        }

        public func isLive(at now: Date) -> Bool {
            now.timeIntervalSince(heartbeatAt) < BackupLease.ttl
        }
    }

    let repository: Repository
    let purpose: String
    let logger: Logger

    public init(repository: Repository, purpose: String, logger: Logger) {
        self.repository = repository
        self.purpose = purpose
        self.logger = logger
    }

    public static func prefix(in repository: Repository) -> String { repository.layout.leasesPrefix }
    public static func key(in repository: Repository, backupId: String, leaseId: String) -> String {
        repository.layout.leaseKey(backupId: backupId, leaseId: leaseId)
    }

    /// Runs `body` while holding a lease on `backupId`: written before `body` starts (so a caller
    /// should read the manifest again inside `body`), refreshed while it runs, removed after.
    public func withLease<T>(_ backupId: String, _ body: () async throws -> T) async throws -> T {
        let leaseId = UUID().uuidString.lowercased()
        let now = Date()
        let record = Record(backupId: backupId, leaseId: leaseId, purpose: purpose, host: ProcessInfo.processInfo.hostName,
                            pid: ProcessInfo.processInfo.processIdentifier, acquiredAt: now, heartbeatAt: now)
        let key = Self.key(in: repository, backupId: backupId, leaseId: leaseId)
        try await repository.storage.put(key: key, bytes: try Self.encode(record))
        var logger = logger
        logger[metadataKey: "retention.backup_id"] = "\(backupId)"
        logger[metadataKey: "retention.lease_id"] = "\(leaseId)"
        logger.debug("lease taken")
        let storage = repository.storage
        // The heartbeat is a child task: it ends with the lease, whichever way `body` ends.
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [logger, record] in
                var record = record
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.heartbeatInterval)
                    if Task.isCancelled { break }
                    record.heartbeatAt = Date()
                    do {
                        try await storage.put(key: key, bytes: try Self.encode(record))
                    } catch {
                        logger.warning("lease heartbeat failed; retrying", metadata: ["retention.error": "\(error)"])
                    }
                }
            }
            do {
                let result = try await body()
                group.cancelAll()
                await release(key: key, logger: logger)
                return result
            } catch {
                group.cancelAll()
                await release(key: key, logger: logger)
                throw error
            }
        }
    }

    /// Resolves `backup` (an id or `latest`), takes a lease on it and runs `body` with the id;
    /// `body` reads the manifest again, so a backup expired just before the lease is not found
    /// rather than half-read.
    public func withLease<T>(resolving backup: String, _ body: (String) async throws -> T) async throws -> T {
        let backupId = try await repository.manifest(backup).backupId
        return try await withLease(backupId) { try await body(backupId) }
    }

    private func release(key: String, logger: Logger) async {
        do {
            try await repository.storage.delete(key: key)
        } catch {
            logger.warning("could not remove the lease; it lapses by itself", metadata: ["retention.error": "\(error)"])
        }
    }

    static func encode(_ record: Record) throws -> [UInt8] {
        Array(try RepositoryJSON.encoder().encode(record))
    }

    /// Every lease object of the stanza with its record; unreadable ones are returned with nil
    /// (expire treats those as live while the object is younger than ``ttl``).
    public static func all(in repository: Repository) async throws -> [(object: ObjectInfo, record: Record?)] {
        var result: [(object: ObjectInfo, record: Record?)] = []
        for object in try await repository.storage.list(prefix: prefix(in: repository)) where repository.layout.lease(ofKey: object.key) != nil {
            let bytes: [UInt8]
            do {
                bytes = try await repository.storage.getAll(key: object.key)
            } catch let error as StorageError where error.code == .notFound {
                continue // released between list and get
            }
            result.append((object, try? RepositoryJSON.decoder().decode(Record.self, from: Data(bytes))))
        }
        return result
    }
}
