import Encryption
import Foundation

/// Where everything lives in a repository: the one place object keys are made and taken apart
/// (docs/operations.md, "Repository"). One value per stanza; every key it makes starts with
/// ``stanzaPrefix``, `[<prefix>/]<stanza>/`:
///
/// ```
/// repository.json                       the marker: format version, the cluster's system identifier
/// backups/<id>/manifest.json            written last: no manifest, no backup
/// backups/<id>/<db>.dump.gz             backups/<id>/globals.sql.gz    backups/<id>/base.tar.gz
/// wal/<timeline>/<name>-<sha256>.gz     (or <name>.gz, written by earlier versions)
/// drills/<id>/<drill-id>.json           drill reports
/// locks/<id>/<lease-id>.json            leases of restores and drills on a backup
/// jobs/<kind>/<run-id>.json             a running job's record
/// check/<uuid>                          the write probe of `pgbackd check`, deleted at once
/// ```
///
/// The format of existing repositories: changing any key here orphans what is stored. Storage
/// drivers put their own root (a file repository's path, the S3 prefix) in front of every key,
/// so ``Repository`` uses an empty `prefix`.
public struct RepositoryLayout: Sendable, Hashable {
    /// Above the stanza, without a trailing slash; empty for none.
    public let prefix: String
    public let stanza: String
    /// `[<prefix>/]<stanza>/`: everything of the stanza (its uploads, say) is listed under it.
    public let stanzaPrefix: String

    public init(prefix: String = "", stanza: String) {
        var prefix = prefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        self.prefix = prefix
        self.stanza = stanza
        stanzaPrefix = (prefix.isEmpty ? "" : prefix + "/") + stanza + "/"
    }

    fileprivate enum Directory {
        static let backups = "backups"
        static let wal = "wal"
        static let drills = "drills"
        static let leases = "locks"
        static let jobs = "jobs"
        static let probes = "check"
        static let keys = "keys"
    }

    fileprivate enum File {
        static let marker = "repository.json"
        static let manifest = "manifest.json"
        static let globals = "globals.sql.gz"
        static let baseTar = "base.tar.gz"
        static let dumpSuffix = ".dump.gz"
        static let jsonSuffix = ".json"
        static let walSuffix = ".gz"
    }

    /// `<stanza prefix><components joined by />`.
    private func key(_ components: String...) -> String {
        stanzaPrefix + components.joined(separator: "/")
    }

    /// The components of `key` below `<stanza prefix><directory>/`; nil for a key elsewhere.
    private func allComponents(of key: String, in directory: String) -> [Substring]? {
        let prefix = self.key(directory) + "/"
        guard key.hasPrefix(prefix) else { return nil }
        return key.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
    }

    /// The components of `key` below `<stanza prefix><directory>/`; nil for a key elsewhere or
    /// with an empty component.
    private func components(of key: String, in directory: String) -> [Substring]? {
        guard let components = allComponents(of: key, in: directory), !components.contains(where: \.isEmpty) else { return nil }
        return components
    }

    /// `name` without `suffix`; nil when it does not end with it or nothing is left.
    fileprivate static func stem(_ name: Substring, removing suffix: String) -> String? {
        guard name.hasSuffix(suffix), name.count > suffix.count else { return nil }
        return String(name.dropLast(suffix.count))
    }

    // MARK: Marker

    /// `<stanza>/repository.json`.
    public var markerKey: String { key(File.marker) }

    // MARK: Backups

    /// `<stanza>/backups/`: every backup's objects.
    public var backupsPrefix: String { key(Directory.backups) + "/" }
    /// `<stanza>/backups/<id>/`.
    public func backupPrefix(_ backupId: String) -> String { key(Directory.backups, backupId) + "/" }
    /// `<stanza>/backups/<id>/manifest.json`.
    public func manifestKey(_ backupId: String) -> String { key(Directory.backups, backupId, File.manifest) }

    /// The backup a manifest key names; nil for any other key.
    public func backupId(ofManifestKey key: String) -> String? {
        guard let parts = components(of: key, in: Directory.backups), parts.count == 2, parts[1] == File.manifest else { return nil }
        return String(parts[0])
    }

    /// The backup an object belongs to: anything under `backups/<id>/` (artifacts, the manifest,
    /// what an interrupted run left), `drills/<id>/` or `locks/<id>/`; nil for any other key.
    public func backupId(ofKey key: String) -> String? {
        for directory in [Directory.backups, Directory.drills, Directory.leases] {
            if let parts = allComponents(of: key, in: directory), parts.count >= 2, !parts[0].isEmpty { return String(parts[0]) }
        }
        return nil
    }

    // MARK: Artifacts

    // Manifests record artifact keys relative to the stanza, so a stanza can move between buckets.

    /// `backups/<id>/globals.sql.gz`, relative to the stanza.
    public static func globalsArtifact(backupId: String) -> String { [Directory.backups, backupId, File.globals].joined(separator: "/") }
    /// `backups/<id>/<escaped database>.dump.gz`, relative to the stanza.
    public static func dumpArtifact(backupId: String, database: String) -> String {
        [Directory.backups, backupId, dumpName(database: database)].joined(separator: "/")
    }
    /// `backups/<id>/base.tar.gz`, relative to the stanza.
    public static func baseTarArtifact(backupId: String) -> String { [Directory.backups, backupId, File.baseTar].joined(separator: "/") }

    /// `<escaped database>.dump.gz`.
    public static func dumpName(database: String) -> String { escape(database) + File.dumpSuffix }

    /// The full key of a key relative to the stanza (an artifact's, as its manifest records it).
    public func key(relative: String) -> String { stanzaPrefix + relative }

    /// The last component of a key (full or relative): `daylog.dump.gz`.
    public static func objectName(ofKey key: String) -> String {
        key.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? key
    }

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

    // MARK: Drill reports

    /// `<stanza>/drills/`.
    public var drillsPrefix: String { key(Directory.drills) + "/" }
    /// `<stanza>/drills/<id>/`: the reports of one backup.
    public func drillReportsPrefix(backupId: String) -> String { key(Directory.drills, backupId) + "/" }
    /// `<stanza>/drills/<id>/<drill-id>.json`.
    public func drillReportKey(backupId: String, drillId: String) -> String { key(Directory.drills, backupId, drillId + File.jsonSuffix) }

    /// The backup and drill a report key names; nil for any other key.
    public func drillReport(ofKey key: String) -> (backupId: String, drillId: String)? {
        guard let parts = components(of: key, in: Directory.drills), parts.count == 2,
              let drillId = Self.stem(parts[1], removing: File.jsonSuffix) else { return nil }
        return (String(parts[0]), drillId)
    }

    // MARK: Leases

    /// `<stanza>/locks/`: every lease (``BackupLease``).
    public var leasesPrefix: String { key(Directory.leases) + "/" }
    /// `<stanza>/locks/<id>/<lease-id>.json`.
    public func leaseKey(backupId: String, leaseId: String) -> String { key(Directory.leases, backupId, leaseId + File.jsonSuffix) }

    /// The backup and lease a lease key names; nil for any other key.
    public func lease(ofKey key: String) -> (backupId: String, leaseId: String)? {
        guard let parts = components(of: key, in: Directory.leases), parts.count == 2,
              let leaseId = Self.stem(parts[1], removing: File.jsonSuffix) else { return nil }
        return (String(parts[0]), leaseId)
    }

    // MARK: WAL

    /// `<stanza>/wal/`: the whole archive.
    public var walPrefix: String { key(Directory.wal) + "/" }
    /// `<stanza>/wal/<timeline>/`; a history file sits in its own timeline's directory.
    public func walDirectory(timeline: UInt32) -> String { key(Directory.wal, WALFileName.hex8(timeline)) + "/" }
    /// `<stanza>/wal/<timeline>/<name>-<sha256>.gz` (or `<name>.gz` for an old-style name).
    public func walKey(_ name: WALObjectName) -> String { key(Directory.wal, WALFileName.hex8(name.file.timeline), Self.walObjectName(name)) }
    /// The key a push writes: `<stanza>/wal/<timeline>/<name>-<sha256 of the raw bytes>.gz`.
    public func walKey(_ file: WALFileName, sha256: String) -> String { walKey(WALObjectName(file: file, sha256: sha256)) }
    /// What every object of `file` starts with, in both naming styles. It also matches other
    /// files (`<segment>.partial`, `<segment>.<offset>.backup`): filter with ``walObjectName(ofKey:)``.
    public func walKeyPrefix(_ file: WALFileName) -> String { walKeyPrefix(timeline: file.timeline, namePrefix: file.name) }
    /// `<stanza>/wal/<timeline>/<namePrefix>`: one LIST for the files of a timeline whose names
    /// start with `namePrefix`.
    public func walKeyPrefix(timeline: UInt32, namePrefix: String) -> String { walDirectory(timeline: timeline) + namePrefix }

    /// `<name>-<sha256>.gz`, or `<name>.gz` for an old-style object.
    public static func walObjectName(_ name: WALObjectName) -> String {
        guard let sha256 = name.sha256 else { return name.file.name + File.walSuffix }
        return name.file.name + "-" + sha256 + File.walSuffix
    }

    /// Parses an object name (no directory); nil for anything pgbackd does not write under
    /// `wal/`. WAL file names never contain `-`, so the checksum is what follows the last one.
    public static func walObjectName(parsing objectName: String) -> WALObjectName? {
        guard let stem = stem(objectName[...], removing: File.walSuffix) else { return nil }
        if let dash = stem.lastIndex(of: "-") {
            let digest = stem[stem.index(after: dash)...]
            guard WALObjectName.isSHA256Hex(digest), let file = WALFileName(String(stem[..<dash])) else { return nil }
            return WALObjectName(file: file, sha256: String(digest))
        }
        return WALFileName(stem).map { WALObjectName(file: $0, sha256: nil) }
    }

    /// The WAL object a key names: `<stanza>/wal/<timeline>/<object name>`, in its own
    /// timeline's directory; nil for any other key.
    public func walObjectName(ofKey key: String) -> WALObjectName? {
        guard let parts = components(of: key, in: Directory.wal), parts.count == 2,
              let name = Self.walObjectName(parsing: String(parts[1])), parts[0] == WALFileName.hex8(name.file.timeline) else { return nil }
        return name
    }

    // MARK: Job records

    /// `<stanza>/jobs/`: every job's records.
    public var jobsPrefix: String { key(Directory.jobs) + "/" }
    /// `<stanza>/jobs/<kind>/`: the records of one kind of job.
    public func jobRecordsPrefix(kind: String) -> String { key(Directory.jobs, kind) + "/" }
    /// `<stanza>/jobs/<kind>/<run-id>.json`: a running job's record; a record left by a killed
    /// process is reported as interrupted by the next run of the job.
    public func jobRecordKey(kind: String, runId: String) -> String { key(Directory.jobs, kind, runId + File.jsonSuffix) }

    /// The job kind and run a record key names; nil for any other key.
    public func jobRecord(ofKey key: String) -> (kind: String, runId: String)? {
        guard let parts = components(of: key, in: Directory.jobs), parts.count == 2,
              let runId = Self.stem(parts[1], removing: File.jsonSuffix) else { return nil }
        return (String(parts[0]), runId)
    }

    // MARK: Probes

    /// `<stanza>/check/<id>`: what `pgbackd check` writes, reads back and deletes.
    public func probeKey(_ id: String) -> String { key(Directory.probes, id) }

    // MARK: Encryption

    /// `<stanza>/keys/`: the wrapped data keys of an encrypted repository, in clear.
    public var keysPrefix: String { key(Directory.keys) + "/" }
    /// The scope under which every backup's data keys sit (`backups`, as in `backups/<id>`).
    public static let backupsScopePrefix = Directory.backups
}

extension RepositoryLayout: EncryptionLayout {
    /// One data key per backup (its artifacts, manifest, drill reports and leases), per 4 GiB
    /// of WAL of a timeline (a segment name's log part), per timeline's history files, and one
    /// for the rest (job records, probes). The marker and the wrapped keys stay in clear.
    public func encryptionScope(ofKey key: String) -> String? {
        if key == markerKey || key.hasPrefix(keysPrefix) { return nil }
        if let backupId = backupId(ofKey: key) { return Self.backupsScopePrefix + "/" + backupId }
        if let name = walObjectName(ofKey: key) {
            let timeline = WALFileName.hex8(name.file.timeline)
            let epoch = name.file.kind == .history ? "history" : String(name.file.name.dropFirst(8).prefix(8))
            return [Directory.wal, timeline, epoch].joined(separator: "/")
        }
        return "meta"
    }

    public func wrappedKeysPrefix(scope: String) -> String { keysPrefix + scope + "/" }

    public func wrappedKeyKey(scope: String, keyId: String) -> String { wrappedKeysPrefix(scope: scope) + keyId + File.jsonSuffix }

    public func wrappedKeyId(ofKey key: String, scope: String) -> String? {
        guard key.hasPrefix(wrappedKeysPrefix(scope: scope)) else { return nil }
        let rest = key.dropFirst(wrappedKeysPrefix(scope: scope).count)
        guard !rest.contains("/") else { return nil }
        return Self.stem(Substring(rest), removing: File.jsonSuffix)
    }
}
