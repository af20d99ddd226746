import Foundation
import Logging
import ObjectStorage

/// The repository layout of DESIGN.md §2 on top of any ``ObjectStorage``: keys, the
/// repository.json marker, and the catalog, which is rebuilt from storage alone every time.
public struct Repository: Sendable {
    public let storage: any ObjectStorage
    public let stanza: String

    public init(storage: any ObjectStorage, stanza: String) {
        self.storage = storage
        self.stanza = stanza
    }

    // MARK: Keys

    public var markerKey: String { "\(stanza)/repository.json" }
    public var backupsPrefix: String { "\(stanza)/backups/" }
    public func backupPrefix(_ id: String) -> String { "\(backupsPrefix)\(id)/" }
    public func manifestKey(_ id: String) -> String { "\(backupPrefix(id))manifest.json" }
    /// Artifact keys are stored relative to the stanza, so a stanza can move between buckets.
    public func key(relative: String) -> String { "\(stanza)/\(relative)" }
    public func drillReportKey(backupId: String, drillId: String) -> String { "\(stanza)/drills/\(backupId)/\(drillId).json" }
    /// `<stanza>/jobs/<job>/`: the records of running jobs (``JobRecord``).
    public func jobRecordsPrefix(_ job: JobKind) -> String { "\(stanza)/jobs/\(job.rawValue)/" }
    public func jobRecordKey(_ job: JobKind, runId: String) -> String { "\(jobRecordsPrefix(job))\(runId).json" }
    public static func dumpName(database: String) -> String { "\(escape(database)).dump.gz" }
    public var walPrefix: String { "\(stanza)/wal/" }
    /// `<stanza>/wal/<timeline>/`; a history file sits in its own timeline's directory.
    public func walDirectory(timeline: UInt32) -> String { "\(walPrefix)\(WALFileName.hex8(timeline))/" }
    /// `<stanza>/wal/<timeline>/<name>-<sha256>.gz` (or `<name>.gz` for an old-style name).
    public func walKey(_ name: WALObjectName) -> String { "\(walDirectory(timeline: name.file.timeline))\(name)" }
    /// The key a push writes: `<stanza>/wal/<timeline>/<name>-<sha256 of the raw bytes>.gz`.
    public func walKey(_ file: WALFileName, sha256: String) -> String { walKey(WALObjectName(file: file, sha256: sha256)) }
    /// What every object of `file` starts with, in both naming styles. It also matches other
    /// files (`<segment>.partial`, `<segment>.<offset>.backup`): filter with ``WALObjectName``.
    public func walKeyPrefix(_ file: WALFileName) -> String { "\(walDirectory(timeline: file.timeline))\(file.name)" }

    /// Database names may hold any character; object names get the safe ones and %XX for the rest.
    static func escape(_ name: String) -> String {
        var result = ""
        for byte in name.utf8 {
            let scalar = Unicode.Scalar(byte)
            if (byte < 0x80 && (scalar.properties.isAlphabetic || ("0"..."9").contains(Character(scalar)))) || "-_".unicodeScalars.contains(scalar) {
                result.unicodeScalars.append(scalar)
            } else {
                result += String(format: "%%%02X", byte)
            }
        }
        return result
    }

    // MARK: Backup ids

    /// `20261125T020000Z-logical`: sorts by time; a second run in the same second waits its turn.
    func newBackupID(_ date: Date, kind: BackupKind) async throws -> String {
        var candidate = date
        while true {
            let id = Self.formatBackupID(candidate, kind: kind)
            if try await storage.list(prefix: backupPrefix(id)).isEmpty { return id }
            candidate += 1
        }
    }

    /// What every backup does before storing anything: claims the stanza for this cluster,
    /// aborts uploads an interrupted run left (started before `startedAt`), and picks the id.
    func beginBackup(kind: BackupKind, systemIdentifier: String, startedAt: Date, logger: Logger) async throws -> String {
        try await ensureMarker(systemIdentifier: systemIdentifier)
        let aborted = try await storage.abortIncompleteUploads(prefix: backupsPrefix, startedBefore: startedAt)
        if aborted > 0 {
            logger.notice("removed incomplete uploads left by an interrupted run", metadata: ["backup.aborted_uploads": "\(aborted)"])
        }
        return try await newBackupID(startedAt, kind: kind)
    }

    static func formatBackupID(_ date: Date, kind: BackupKind) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ-%@", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!, kind.rawValue)
    }

    // MARK: Marker

    /// Creates `repository.json` on first use, and refuses a repository that was made for
    /// another cluster: mixing two clusters' backups in one stanza would make restores lie.
    public func ensureMarker(systemIdentifier: String) async throws {
        if try await verifyMarker(systemIdentifier: systemIdentifier) { return }
        let marker = RepositoryMarker(formatVersion: Manifest.currentFormatVersion, stanza: stanza, systemIdentifier: systemIdentifier, createdAt: Date())
        try await storage.put(key: markerKey, bytes: Array(try RepositoryJSON.encoder().encode(marker)))
    }

    /// - Returns: whether the marker exists (and matches; a mismatch throws).
    @discardableResult
    public func verifyMarker(systemIdentifier: String) async throws -> Bool {
        guard let bytes = try await optionalObject(markerKey) else { return false }
        let marker: RepositoryMarker
        do {
            marker = try RepositoryJSON.decoder().decode(RepositoryMarker.self, from: Data(bytes))
        } catch {
            throw RepositoryError(.corruptManifest, message: "\(markerKey) is not valid JSON: \(error)", underlying: error)
        }
        guard marker.systemIdentifier == systemIdentifier else {
            throw RepositoryError(.wrongCluster, message: "stanza '\(stanza)' holds backups of cluster \(marker.systemIdentifier), but this server is cluster \(systemIdentifier): use another stanza (repository.stanza) for this server")
        }
        return true
    }

    // MARK: Catalog

    /// Every committed backup, oldest first: a backup is listed exactly when its manifest exists.
    /// Every committed backup's manifest, oldest first. A stop request ends the reading between
    /// two manifests (a catalog of thousands takes a while on S3).
    public func backups() async throws -> [Manifest] {
        let objects = try await storage.list(prefix: backupsPrefix)
        var manifests: [Manifest] = []
        for object in objects where object.key.hasSuffix("/manifest.json") {
            try Task.checkCancellation()
            manifests.append(try await readManifest(key: object.key))
        }
        try Task.checkCancellation()
        return manifests.sorted { $0.backupId < $1.backupId }
    }

    /// The manifest of `id`, or of the newest backup for `latest`.
    public func manifest(_ id: String) async throws -> Manifest {
        if id == "latest" {
            guard let newest = try await backups().last else {
                throw RepositoryError(.backupNotFound, message: "stanza '\(stanza)' holds no backup yet: run 'pgbackd backup' first")
            }
            return newest
        }
        guard try await storage.head(key: manifestKey(id)) != nil else {
            throw RepositoryError(.backupNotFound, message: "no backup '\(id)' in stanza '\(stanza)': 'pgbackd list' shows the backups there")
        }
        return try await readManifest(key: manifestKey(id))
    }

    func readManifest(key: String) async throws -> Manifest {
        let bytes = try await storage.getAll(key: key)
        do {
            return try Manifest.decode(bytes)
        } catch let error as RepositoryError {
            throw error
        } catch {
            throw RepositoryError(.corruptManifest, message: "manifest \(key) is not valid: \(error)", underlying: error)
        }
    }

    func optionalObject(_ key: String) async throws -> [UInt8]? {
        do {
            return try await storage.getAll(key: key)
        } catch let error as StorageError where error.code == .notFound {
            return nil
        }
    }
}

struct RepositoryMarker: Codable {
    var formatVersion: Int
    var stanza: String
    var systemIdentifier: String
    var createdAt: Date
}
