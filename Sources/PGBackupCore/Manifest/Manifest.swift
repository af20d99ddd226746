import Crypto
import Foundation

/// `backups/<id>/manifest.json`: written last, so its presence is what makes a backup exist
/// (DESIGN.md §2). Everything a restore or a drill needs to check the result is in here.
public struct Manifest: Codable, Sendable, Equatable {
    /// Bumped on incompatible changes; readers refuse versions they do not know.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    public var backupId: String
    public var kind: BackupKind
    public var stanza: String
    public var startedAt: Date
    public var finishedAt: Date
    public var pgbackdVersion: String
    public var server: ServerInfo
    public var compression: CompressionInfo
    public var artifacts: [Artifact]
    /// Logical backups: what each database held at the snapshot. Empty for base backups.
    public var databases: [DatabaseSnapshot]
    /// Base backups: the WAL a restore needs. Nil for logical backups.
    public var wal: WALRange? = nil
    /// Logical backups: whether globals.sql holds role passwords. False when the backup role
    /// could not read `pg_authid` (not a superuser): roles are dumped with
    /// `--no-role-passwords` and need their passwords set again after a restore of globals.
    /// Nil for base backups and manifests written before it was recorded (which always had them).
    public var rolePasswords: Bool? = nil

    /// Totals over every artifact.
    public var rawSize: Int64 { artifacts.reduce(0) { $0 + $1.rawSize } }
    public var storedSize: Int64 { artifacts.reduce(0) { $0 + $1.storedSize } }
}

public enum BackupKind: String, Codable, Sendable {
    case logical
    case base
}

public struct ServerInfo: Codable, Sendable, Equatable {
    /// `server_version_num`, e.g. 150018.
    public var versionNumber: Int
    /// `version()` text.
    public var version: String
    /// `pg_control_system().system_identifier`: identifies the cluster across renames and hosts.
    public var systemIdentifier: String
    public var timeline: Int?
}

public struct CompressionInfo: Codable, Sendable, Equatable {
    /// Always `gzip` for now: `gunzip | pg_restore` works without pgbackd.
    public var algorithm: String
    public var level: Int
    /// The compressor that wrote the artifacts (`zlib` or `libdeflate`); absent in manifests
    /// written before the choice existed (libdeflate). Informational: every engine writes gzip.
    public var engine: String? = nil
}

/// The WAL a base backup needs to become consistent: from the start segment to the stop segment
/// on `timeline`; recovery to any later point also needs what was archived after it.
public struct WALRange: Codable, Sendable, Equatable {
    public var timeline: UInt32
    /// As PostgreSQL prints LSNs: `0/2000028`.
    public var startLSN: String
    public var stopLSN: String
    /// `wal_segment_size` of the cluster, in bytes.
    public var segmentSize: Int
    /// The first and the last segment the backup needs, e.g. `000000010000000000000002`.
    public var startSegment: String
    public var stopSegment: String

    // RepositoryJSON's snake_case turns `start_lsn` back into `startLsn`, not `startLSN`.
    enum CodingKeys: String, CodingKey {
        case timeline, segmentSize, startSegment, stopSegment
        case startLSN = "startLsn"
        case stopLSN = "stopLsn"
    }
}

/// One stored object of the backup.
public struct Artifact: Codable, Sendable, Equatable {
    /// Object key relative to the stanza, e.g. `backups/<id>/daylog.dump.gz`.
    public var key: String
    public enum Content: String, Codable, Sendable {
        case databaseDump = "database-dump"
        case globals
        case baseTar = "base-tar"
    }
    public var content: Content
    /// The database a dump holds.
    public var database: String?
    /// Bytes before compression.
    public var rawSize: Int64
    public var rawSha256: String
    /// Bytes as stored.
    public var storedSize: Int64
    public var storedSha256: String
    /// CRC-32 of the raw bytes, as in the gzip trailer.
    public var crc32: UInt32
}

/// What a database held at the backup's snapshot.
public struct DatabaseSnapshot: Codable, Sendable, Equatable {
    public var name: String
    /// The exported snapshot `pg_dump --snapshot` used; row counts were taken in it too.
    public var snapshot: String
    /// Exact row count per table, keyed `schema.table`, in the same snapshot as the dump.
    public var rowCounts: [String: Int64]
    public var foreignKeys: [ForeignKey]
    public var objects: ObjectCensus
    /// Owner, comment, privileges and settings of the database itself. Absent in manifests
    /// written before they were recorded.
    public var properties: DatabaseProperties? = nil
    /// How many large objects the database held. Absent in manifests written before it was recorded.
    public var largeObjects: Int64? = nil
    /// Its extensions, name → version: a drill host needs each of them installed.
    public var extensions: [String: String]? = nil
}

public struct ForeignKey: Codable, Sendable, Equatable, Hashable {
    /// `schema.table`
    public var table: String
    /// `table` quoted for SQL by the server (`format('%I.%I')`), so checks never re-quote names.
    public var quotedTable: String
    public var name: String
    public var columns: [String]
    public var referencedTable: String
    public var quotedReferencedTable: String
    public var referencedColumns: [String]
    /// `s` (MATCH SIMPLE: a NULL in the key exempts the row), `f` (MATCH FULL) or `p`.
    public var matchType: String
    /// `pg_get_constraintdef` with `search_path` pinned to `pg_catalog`, e.g.
    /// `FOREIGN KEY (user_id) REFERENCES public.auth_user(id) ON DELETE CASCADE`. For reading;
    /// constraints are compared by their parts, never by this text.
    public var definition: String
    /// `confupdtype`, `confdeltype`, then `d`/`-` (deferrable) and `i`/`-` (initially deferred),
    /// e.g. `ac--`. Absent in manifests written before it was recorded.
    public var actions: String? = nil
}

/// How many objects of each kind a schema holds, for the drill's object comparison.
public struct ObjectCensus: Codable, Sendable, Equatable {
    public struct Counts: Codable, Sendable, Equatable {
        public var tables = 0
        public var indexes = 0
        public var constraints = 0
        public var sequences = 0
        public var functions = 0
        public var views = 0
    }
    /// Keyed by schema name.
    public var schemas: [String: Counts]
    /// Objects of extensions left out (pgbackd since session 5); nil in older manifests, whose
    /// counts include them and are compared the same way.
    public var excludesExtensionMembers: Bool? = nil
}

extension Manifest {
    /// `bytes` as pgbackd wrote them, their checksum checked (``sealed(_:)``). `key` names the
    /// object in the error.
    public static func decode(_ bytes: [UInt8], key: String? = nil) throws -> Manifest {
        try checkSeal(bytes, key: key)
        let manifest = try RepositoryJSON.decoder().decode(Manifest.self, from: Data(bytes))
        guard manifest.formatVersion <= currentFormatVersion else {
            throw RepositoryError(.unsupportedFormat, message: "manifest of \(manifest.backupId) has format version \(manifest.formatVersion); this pgbackd reads up to \(currentFormatVersion): upgrade pgbackd")
        }
        return manifest
    }

    public func encoded() throws -> [UInt8] {
        Self.sealed(Array(try RepositoryJSON.encoder().encode(self)))
    }

    /// The first line of a sealed manifest, before the 64 hex digits and `",`.
    static let sealPrefix = Array("{\n  \"manifest_sha256\" : \"".utf8)

    /// The manifest's JSON with its own SHA-256 as its first member, `"manifest_sha256"`: the
    /// checksum of the document without that line. An edited manifest (a checksum, a size or a
    /// row count changed by hand, the file re-written by another program) no longer matches,
    /// and every reader (`list`, `drill`, `restore`, `wal-check`) says so instead of trusting it
    /// or blaming the artifact it describes. The checksum is over the bytes as written, so a
    /// later pgbackd that adds fields still checks it. An unencrypted repository's manifests
    /// have only this; an encrypted one's are authenticated besides.
    static func sealed(_ json: [UInt8]) -> [UInt8] {
        guard json.starts(with: Array("{\n".utf8)) else { return json }
        let digest = SHA256.hash(data: json).hexString
        return sealPrefix + Array(digest.utf8) + Array("\",\n".utf8) + json.dropFirst(2)
    }

    /// Checks a sealed manifest's checksum; a manifest written before seals (no
    /// `manifest_sha256` anywhere) passes.
    static func checkSeal(_ bytes: [UInt8], key: String?) throws {
        let name = key.map { "manifest \($0)" } ?? "the manifest"
        guard bytes.starts(with: sealPrefix) else {
            guard !bytes.containsSequence(Array("\"manifest_sha256\"".utf8)) else {
                throw RepositoryError(.corruptManifest, message: "\(name) was changed after pgbackd wrote it: it was re-written (its manifest_sha256 is no longer its first line), so its checksums cannot be trusted; restore from another backup, or put back the original manifest")
            }
            return
        }
        let hexStart = sealPrefix.count, hexEnd = hexStart + 64
        let close = Array("\",\n".utf8)
        guard bytes.count > hexEnd + close.count, Array(bytes[hexEnd..<(hexEnd + close.count)]) == close else {
            throw RepositoryError(.corruptManifest, message: "\(name) was changed after pgbackd wrote it: its manifest_sha256 line is damaged")
        }
        let recorded = String(decoding: bytes[hexStart..<hexEnd], as: UTF8.self)
        let body = Array("{\n".utf8) + bytes[(hexEnd + close.count)...]
        let actual = SHA256.hash(data: body).hexString
        guard actual == recorded else {
            throw RepositoryError(.corruptManifest, message: "\(name) was changed after pgbackd wrote it: its content has SHA-256 \(actual), not the \(recorded) it records (manifest_sha256); an edited checksum, size or row count cannot be trusted: restore from another backup, or put back the original manifest")
        }
    }
}

extension Array where Element == UInt8 {
    func containsSequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, count >= needle.count else { return false }
        for start in 0...(count - needle.count) where self[start] == needle[0] && Array(self[start..<(start + needle.count)]) == needle {
            return true
        }
        return false
    }
}
