import Encryption
import Foundation
import Logging
import ObjectStorage

/// The repository of DESIGN.md §2 on top of any ``ObjectStorage``: its keys (``layout``), the
/// repository.json marker, and the catalog, which is rebuilt from storage alone every time.
public struct Repository: Sendable {
    public let storage: any ObjectStorage
    /// Every key of the stanza. The storage driver adds its own root, so the layout has no prefix.
    public let layout: RepositoryLayout
    public var stanza: String { layout.stanza }

    public init(storage: any ObjectStorage, stanza: String) {
        self.storage = storage
        self.layout = RepositoryLayout(stanza: stanza)
    }

    /// The repository keys objects are encrypted and read with, current first; empty when the
    /// repository is not encrypted.
    public var encryptionKeys: [RepositoryKey] { (storage as? EncryptedStorage)?.keys ?? [] }

    /// What the marker says of encryption (nil: no marker yet, or not encrypted).
    func markerEncryption() async throws -> (exists: Bool, encryption: RepositoryMarker.Encryption?) {
        guard let bytes = try await optionalObject(markerKey) else { return (false, nil) }
        do {
            return (true, try RepositoryJSON.decoder().decode(RepositoryMarker.self, from: Data(bytes)).encryption)
        } catch {
            throw RepositoryError(.corruptManifest, message: "\(markerKey) is not valid JSON: \(error)", underlying: error)
        }
    }

    /// Refuses a configuration that does not fit the stanza: keys for an unencrypted stanza, no
    /// key for an encrypted one, or keys none of which is the one the stanza is encrypted under.
    public func checkEncryption() async throws {
        let (exists, encryption) = try await markerEncryption()
        guard exists else { return } // a new stanza: the first write records what it is
        let keys = encryptionKeys
        switch (encryption, keys.isEmpty) {
        case (nil, true):
            return
        case (nil, false):
            throw EncryptionError(.notEncryptedRepository, message: "stanza '\(stanza)' is not encrypted, but [encryption] is configured: run 'pgbackd encrypt' once to encrypt everything stored from now on (older backups stay readable), or remove [encryption]")
        case (let encryption?, true):
            throw EncryptionError(.keyNotConfigured, message: "stanza '\(stanza)' is encrypted (repository key \(encryption.keyFingerprint)), but the configuration has no [encryption] key_file: set it to that key's file")
        case (let encryption?, false):
            guard keys.contains(where: { $0.fingerprint == encryption.keyFingerprint }) else {
                throw EncryptionError(.wrongKey, message: "stanza '\(stanza)' is encrypted under repository key \(encryption.keyFingerprint), but the configured key(s) are \(keys.map(\.fingerprint).joined(separator: ", ")): set encryption.key_file to that key's file, or list it in encryption.old_key_files")
            }
        }
    }

    /// `pgbackd encrypt` and `pgbackd rekey`: records in the marker that the stanza is encrypted
    /// under the current key.
    public func recordEncryption() async throws {
        guard let key = encryptionKeys.first else { return }
        guard let bytes = try await optionalObject(markerKey) else {
            throw RepositoryError(.backupNotFound, message: "stanza '\(stanza)' has no repository.json yet: nothing to encrypt; the first backup records encryption itself")
        }
        var marker = try RepositoryJSON.decoder().decode(RepositoryMarker.self, from: Data(bytes))
        marker.encryption = RepositoryMarker.Encryption(keyFingerprint: key.fingerprint, since: marker.encryption?.since ?? Date())
        try await storage.put(key: markerKey, bytes: Array(try RepositoryJSON.encoder().encode(marker)))
    }

    // MARK: Keys (forwarded to the layout, for the callers that had them here)

    public var markerKey: String { layout.markerKey }
    public var backupsPrefix: String { layout.backupsPrefix }
    public func backupPrefix(_ id: String) -> String { layout.backupPrefix(id) }
    public func manifestKey(_ id: String) -> String { layout.manifestKey(id) }
    /// Artifact keys are stored relative to the stanza, so a stanza can move between buckets.
    public func key(relative: String) -> String { layout.key(relative: relative) }
    public func drillReportKey(backupId: String, drillId: String) -> String { layout.drillReportKey(backupId: backupId, drillId: drillId) }
    public static func dumpName(database: String) -> String { RepositoryLayout.dumpName(database: database) }
    public var walPrefix: String { layout.walPrefix }
    public func walDirectory(timeline: UInt32) -> String { layout.walDirectory(timeline: timeline) }
    public func walKey(_ name: WALObjectName) -> String { layout.walKey(name) }
    public func walKey(_ file: WALFileName, sha256: String) -> String { layout.walKey(file, sha256: sha256) }
    public func walKeyPrefix(_ file: WALFileName) -> String { layout.walKeyPrefix(file) }
    /// `<stanza>/jobs/<job>/`: the records of running jobs (``JobRecord``).
    public func jobRecordsPrefix(_ job: JobKind) -> String { layout.jobRecordsPrefix(kind: job.rawValue) }
    public func jobRecordKey(_ job: JobKind, runId: String) -> String { layout.jobRecordKey(kind: job.rawValue, runId: runId) }

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
        let marker = RepositoryMarker(formatVersion: Manifest.currentFormatVersion, stanza: stanza, systemIdentifier: systemIdentifier, createdAt: Date(),
                                      encryption: encryptionKeys.first.map { RepositoryMarker.Encryption(keyFingerprint: $0.fingerprint) })
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
    /// A stop request ends the reading between two manifests (thousands take a while on S3).
    public func backups() async throws -> [Manifest] {
        let objects = try await storage.list(prefix: backupsPrefix)
        var manifests: [Manifest] = []
        for object in objects where layout.backupId(ofManifestKey: object.key) != nil {
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
            return try Manifest.decode(bytes, key: key)
        } catch let error as RepositoryError {
            throw error
        } catch {
            throw RepositoryError(.corruptManifest, message: "manifest \(key) is not valid: \(RepositoryJSON.describe(error))", underlying: error)
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

/// `<stanza>/repository.json`, always in clear: whose backups these are, and whether (and under
/// which repository key) everything else is encrypted.
struct RepositoryMarker: Codable {
    var formatVersion: Int
    var stanza: String
    var systemIdentifier: String
    var createdAt: Date
    /// Set when the stanza is encrypted; `rekey` updates the fingerprint.
    var encryption: Encryption?

    struct Encryption: Codable, Equatable {
        var cipher = "xchacha20poly1305-secretstream"
        var keyFingerprint: String
        /// When encryption was turned on: objects from before it are read as they are.
        var since = Date()
    }
}
