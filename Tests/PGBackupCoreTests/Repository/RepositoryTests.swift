import Foundation
import ObjectStorage
@testable import PGBackupCore
import Testing

@Suite struct RepositoryTests {
    static func manifest(id: String) -> Manifest {
        Manifest(formatVersion: 1, backupId: id, kind: .logical, stanza: "main",
                 startedAt: Date(timeIntervalSince1970: 1_700_000_000), finishedAt: Date(timeIntervalSince1970: 1_700_000_060),
                 pgbackdVersion: "test", server: ServerInfo(versionNumber: 150018, version: "PostgreSQL 15.18", systemIdentifier: "42", timeline: nil),
                 compression: CompressionInfo(algorithm: "gzip", level: 1),
                 artifacts: [Artifact(key: "backups/\(id)/daylog.dump.gz", content: .databaseDump, database: "daylog", rawSize: 10, rawSha256: "aa", storedSize: 5, storedSha256: "bb", crc32: 7)],
                 databases: [DatabaseSnapshot(name: "daylog", snapshot: "00000003-1", rowCounts: ["public.auth_user": 3],
                                              foreignKeys: [ForeignKey(table: "public.journal_journalentry", quotedTable: "public.journal_journalentry", name: "fk", columns: ["user_id"], referencedTable: "public.auth_user", quotedReferencedTable: "public.auth_user", referencedColumns: ["id"], matchType: "s", definition: "FOREIGN KEY (user_id) REFERENCES auth_user(id)")],
                                              objects: ObjectCensus(schemas: ["public": .init(tables: 2)]))])
    }

    @Test func manifestRoundTripsThroughJSON() throws {
        let original = Self.manifest(id: "20261125T020000Z-logical")
        let bytes = try original.encoded()
        #expect(try Manifest.decode(bytes) == original)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\"backup_id\" : \"20261125T020000Z-logical\""))
        #expect(text.contains("\"raw_sha256\""))
    }

    @Test func timesKeepTheirMilliseconds() throws {
        var manifest = Self.manifest(id: "x")
        manifest.finishedAt = manifest.startedAt.addingTimeInterval(0.25)
        let decoded = try Manifest.decode(try manifest.encoded())
        #expect(abs(decoded.finishedAt.timeIntervalSince(decoded.startedAt) - 0.25) < 0.001)
        #expect(String(decoding: try manifest.encoded(), as: UTF8.self).contains("\"finished_at\" : \"2023-11-14T22:13:20.250Z\""))
    }

    @Test func timesWithoutFractionStillRead() throws {
        // A manifest written before the seal (manifest_sha256), whose times had no fraction.
        let text = String(decoding: try Self.manifest(id: "x").encoded(), as: UTF8.self)
            .replacing(#/  "manifest_sha256" : "[0-9a-f]{64}",\n/#, with: "")
            .replacingOccurrences(of: "2023-11-14T22:13:20.000Z", with: "2023-11-14T22:13:20Z")
        #expect(!text.contains("manifest_sha256"))
        #expect(try Manifest.decode(Array(text.utf8)).startedAt == Date(timeIntervalSince1970: 1_700_000_000))
    }

    @Test func newerManifestFormatIsRefused() throws {
        var manifest = Self.manifest(id: "x")
        manifest.formatVersion = 99
        #expect(throws: RepositoryError.self) { try Manifest.decode(try manifest.encoded()) }
    }

    @Test func catalogListsOnlyCommittedBackups() async throws {
        let storage = MemoryStorage()
        let repository = Repository(storage: storage, stanza: "main")
        for id in ["20261125T030000Z-logical", "20261125T010000Z-logical"] {
            try await storage.put(key: repository.manifestKey(id), bytes: try Self.manifest(id: id).encoded())
        }
        // An interrupted backup: artifacts but no manifest. It does not exist.
        try await storage.put(key: repository.key(relative: "backups/20261125T040000Z-logical/daylog.dump.gz"), bytes: [1])
        #expect(try await repository.backups().map(\.backupId) == ["20261125T010000Z-logical", "20261125T030000Z-logical"])
        #expect(try await repository.manifest("latest").backupId == "20261125T030000Z-logical")
        await #expect(throws: RepositoryError.self) { try await repository.manifest("20261125T040000Z-logical") }
    }

    @Test func emptyRepositoryHasNoLatest() async throws {
        let repository = Repository(storage: MemoryStorage(), stanza: "main")
        do {
            _ = try await repository.manifest("latest")
            Issue.record("an empty stanza has no latest backup")
        } catch let error as RepositoryError {
            #expect(error.code == .backupNotFound)
            #expect(error.description.contains("pgbackd backup"))
        }
    }

    @Test func corruptManifestIsNamed() async throws {
        let storage = MemoryStorage()
        let repository = Repository(storage: storage, stanza: "main")
        try await storage.put(key: repository.manifestKey("x"), bytes: Array("{not json".utf8))
        do {
            _ = try await repository.manifest("x")
            Issue.record("a corrupt manifest must not load")
        } catch let error as RepositoryError {
            #expect(error.code == .corruptManifest)
            #expect(error.description.contains("main/backups/x/manifest.json"))
        }
    }

    @Test func markerRefusesAnotherCluster() async throws {
        let repository = Repository(storage: MemoryStorage(), stanza: "main")
        try await repository.ensureMarker(systemIdentifier: "111")
        try await repository.ensureMarker(systemIdentifier: "111")
        do {
            try await repository.ensureMarker(systemIdentifier: "222")
            Issue.record("a stanza belongs to one cluster")
        } catch let error as RepositoryError {
            #expect(error.code == .wrongCluster)
        }
    }

    @Test func backupIdsSortByTime() {
        let early = Repository.formatBackupID(Date(timeIntervalSince1970: 1_764_036_000), kind: .logical)
        let late = Repository.formatBackupID(Date(timeIntervalSince1970: 1_764_036_001), kind: .logical)
        #expect(early == "20251125T020000Z-logical")
        #expect(early < late)
    }

    @Test func databaseNamesAreEscapedIntoObjectNames() {
        #expect(Repository.dumpName(database: "daylog") == "daylog.dump.gz")
        #expect(Repository.dumpName(database: "my db/../x") == "my%20db%2F%2E%2E%2Fx.dump.gz")
    }
}

/// A manifest carries its own SHA-256 (issue #16): an edit by hand is named, not trusted.
@Suite struct ManifestSealTests {
    @Test func anEditedManifestIsRefusedNamingIt() throws {
        let manifest = RepositoryTests.manifest(id: "20261125T020000Z-logical")
        let bytes = try manifest.encoded()
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("{\n  \"manifest_sha256\" : \""))
        #expect(try Manifest.decode(bytes) == manifest)
        let text = String(decoding: bytes, as: UTF8.self)
        let edited = text.replacingOccurrences(of: "20261125T020000Z-logical\"", with: "20261125T020001Z-logical\"")
        #expect(edited != text)
        let error = #expect(throws: RepositoryError.self) { try Manifest.decode(Array(edited.utf8), key: "main/backups/x/manifest.json") }
        #expect(error?.code == .corruptManifest)
        #expect(error?.description.contains("main/backups/x/manifest.json") == true && error?.description.contains("changed after pgbackd wrote it") == true)
        // Re-written by another program (the seal no longer first): refused too.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        let rewritten = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        #expect(throws: RepositoryError.self) { try Manifest.decode(Array(rewritten)) }
        // Without a seal at all (written before seals): read as before.
        var legacy = object
        legacy["manifest_sha256"] = nil
        #expect(try Manifest.decode(Array(try JSONSerialization.data(withJSONObject: legacy, options: [.sortedKeys]))) == manifest)
    }
}
