import Crypto
import Foundation
import ObjectStorage

/// The name of an archived WAL object, the last component of its key:
/// `<WAL file name>-<SHA-256 of the raw bytes, 64 lower-case hex digits>.gz`, as pgBackRest names
/// its archive (with SHA-1 there). The checksum in the name lets a push find out with one LIST,
/// without downloading anything, whether the archive already holds exactly these bytes, and lets
/// a fetch check what it decompressed against what was pushed, beyond gzip's CRC.
///
/// Objects written before checksums were added are named `<WAL file name>.gz`; they are still
/// read (with the gzip CRC as their only check) and never written.
public struct WALObjectName: Sendable, Hashable, CustomStringConvertible {
    public let file: WALFileName
    /// Lower-case hex SHA-256 of the uncompressed bytes; nil for an old-style name.
    public let sha256: String?

    public init(file: WALFileName, sha256: String?) {
        self.file = file
        self.sha256 = sha256
    }

    /// Parses an object name (no directory): ``RepositoryLayout/walObjectName(parsing:)``. A key
    /// is parsed by ``RepositoryLayout/walObjectName(ofKey:)``.
    public init?(_ objectName: String) {
        guard let name = RepositoryLayout.walObjectName(parsing: objectName) else { return nil }
        self = name
    }

    /// `<name>-<sha256>.gz`, or `<name>.gz` for an old-style object.
    public var description: String { RepositoryLayout.walObjectName(self) }

    /// Lower-case hex SHA-256 of `bytes`, as it appears in object names.
    public static func sha256(of bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).hexString
    }

    /// The same of a file's bytes, read in pieces (blocking: call it from an offload queue).
    static func sha256(of source: WALFiles.SourceFile) throws -> String {
        var hasher = SHA256()
        try source.forEachChunk { hasher.update(bufferPointer: $0) }
        return hasher.finalize().hexString
    }

    static func isSHA256Hex(_ text: Substring) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

/// One archived WAL object, as a LIST shows it.
public struct WALObject: Sendable, Hashable {
    public let key: String
    public let name: WALObjectName
    /// Stored (compressed) bytes.
    public let size: Int64
    public var file: WALFileName { name.file }

    public init(key: String, name: WALObjectName, size: Int64) {
        self.key = key
        self.name = name
        self.size = size
    }
}

extension Repository {
    /// The archived objects of each of `files` (a file without any is absent), in both naming
    /// styles. Names that share their first 22 characters (a run of up to 256 consecutive
    /// segments, a whole log number's worth of 16 MiB ones) take one LIST, of the longest prefix
    /// they share, so a fetch with read-ahead usually lists once for its whole window.
    public func walObjects(for files: [WALFileName]) async throws -> [WALFileName: [WALObject]] {
        var groups: [String: Set<WALFileName>] = [:]
        for file in files { groups[String(file.name.prefix(22)), default: []].insert(file) }
        var result: [WALFileName: [WALObject]] = [:]
        for (_, group) in groups.sorted(by: { $0.key < $1.key }) {
            guard let first = group.first else { continue }
            // Every name of a group starts with the same 8 digits: its timeline.
            let common = group.reduce(first.name) { String($0.commonPrefix(with: $1.name)) }
            for info in try await storage.list(prefix: layout.walKeyPrefix(timeline: first.timeline, namePrefix: common)) {
                guard let name = layout.walObjectName(ofKey: info.key), group.contains(name.file) else { continue }
                result[name.file, default: []].append(WALObject(key: info.key, name: name, size: info.size))
            }
        }
        return result
    }

    /// The archived objects of `file`: one LIST of ``walKeyPrefix(_:)``.
    public func walObjects(for file: WALFileName) async throws -> [WALObject] {
        try await walObjects(for: [file])[file] ?? []
    }
}
