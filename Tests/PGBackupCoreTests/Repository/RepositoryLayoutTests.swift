@testable import PGBackupCore
import Testing

/// The repository format, pinned: every key ``RepositoryLayout`` makes, as literal strings, so a
/// change that would orphan what existing repositories hold fails here first.
@Suite struct RepositoryLayoutTests {
    static let sha = String(repeating: "0123456789abcdef", count: 4)

    @Test(arguments: [
        ("", "main", "main/"),
        ("backups-eu", "db1", "backups-eu/db1/"),
        ("team/pg/", "prod", "team/pg/prod/"),
    ])
    func everyKey(prefix: String, stanza: String, root: String) throws {
        let layout = RepositoryLayout(prefix: prefix, stanza: stanza)
        let id = "20261125T020000Z-logical"
        #expect(layout.stanzaPrefix == root)
        #expect(layout.markerKey == "\(root)repository.json")

        #expect(layout.backupsPrefix == "\(root)backups/")
        #expect(layout.backupPrefix(id) == "\(root)backups/20261125T020000Z-logical/")
        #expect(layout.manifestKey(id) == "\(root)backups/20261125T020000Z-logical/manifest.json")
        #expect(layout.key(relative: "backups/20261125T020000Z-logical/daylog.dump.gz") == "\(root)backups/20261125T020000Z-logical/daylog.dump.gz")

        #expect(layout.drillsPrefix == "\(root)drills/")
        #expect(layout.drillReportsPrefix(backupId: id) == "\(root)drills/20261125T020000Z-logical/")
        #expect(layout.drillReportKey(backupId: id, drillId: "20261125T030000Z") == "\(root)drills/20261125T020000Z-logical/20261125T030000Z.json")

        #expect(layout.leasesPrefix == "\(root)locks/")
        #expect(layout.leaseKey(backupId: id, leaseId: "l1") == "\(root)locks/20261125T020000Z-logical/l1.json")

        #expect(layout.walPrefix == "\(root)wal/")
        #expect(layout.walDirectory(timeline: 10) == "\(root)wal/0000000A/")
        let segment = try #require(WALFileName("0000000A0000000100000002"))
        #expect(layout.walKey(segment, sha256: Self.sha) == "\(root)wal/0000000A/0000000A0000000100000002-\(Self.sha).gz")
        #expect(layout.walKey(WALObjectName(file: segment, sha256: nil)) == "\(root)wal/0000000A/0000000A0000000100000002.gz")
        #expect(layout.walKey(try #require(WALFileName("00000003.history")), sha256: Self.sha) == "\(root)wal/00000003/00000003.history-\(Self.sha).gz")
        #expect(layout.walKey(try #require(WALFileName("000000030000000100000002.00000060.backup")), sha256: Self.sha)
            == "\(root)wal/00000003/000000030000000100000002.00000060.backup-\(Self.sha).gz")
        #expect(layout.walKey(try #require(WALFileName("000000030000000100000002.partial")), sha256: Self.sha)
            == "\(root)wal/00000003/000000030000000100000002.partial-\(Self.sha).gz")
        #expect(layout.walKeyPrefix(segment) == "\(root)wal/0000000A/0000000A0000000100000002")
        #expect(layout.walKeyPrefix(timeline: 1, namePrefix: "00000001000000000000") == "\(root)wal/00000001/00000001000000000000")

        #expect(layout.jobsPrefix == "\(root)jobs/")
        #expect(layout.jobRecordsPrefix(kind: "backup") == "\(root)jobs/backup/")
        #expect(layout.jobRecordKey(kind: "base-backup", runId: "r-1") == "\(root)jobs/base-backup/r-1.json")

        #expect(layout.probeKey("6f1c") == "\(root)check/6f1c")
    }

    @Test func artifactKeysAreRelativeToTheStanza() {
        let id = "20261125T020000Z-base"
        #expect(RepositoryLayout.globalsArtifact(backupId: id) == "backups/20261125T020000Z-base/globals.sql.gz")
        #expect(RepositoryLayout.baseTarArtifact(backupId: id) == "backups/20261125T020000Z-base/base.tar.gz")
        #expect(RepositoryLayout.dumpArtifact(backupId: id, database: "daylog") == "backups/20261125T020000Z-base/daylog.dump.gz")
        #expect(RepositoryLayout.dumpArtifact(backupId: id, database: "my db/../x") == "backups/20261125T020000Z-base/my%20db%2F%2E%2E%2Fx.dump.gz")
        #expect(RepositoryLayout.dumpName(database: "Ünï-c_0") == "%C3%9Cn%C3%AF-c_0.dump.gz")
        #expect(RepositoryLayout.objectName(ofKey: RepositoryLayout.dumpArtifact(backupId: id, database: "daylog")) == "daylog.dump.gz")
        #expect(RepositoryLayout.objectName(ofKey: "main/backups/x/globals.sql.gz") == "globals.sql.gz")
        #expect(RepositoryLayout(prefix: "a/b", stanza: "s").key(relative: RepositoryLayout.baseTarArtifact(backupId: id))
            == "a/b/s/backups/20261125T020000Z-base/base.tar.gz")
    }

    @Test(arguments: ["", "team/pg"])
    func parsersRoundTrip(prefix: String) throws {
        let layout = RepositoryLayout(prefix: prefix, stanza: "main")
        let id = "20261125T020000Z-logical"

        #expect(layout.backupId(ofManifestKey: layout.manifestKey(id)) == id)
        #expect(layout.backupId(ofKey: layout.manifestKey(id)) == id)
        #expect(layout.backupId(ofKey: layout.backupPrefix(id)) == id, "a directory marker belongs to its backup")
        #expect(layout.backupId(ofKey: layout.key(relative: RepositoryLayout.dumpArtifact(backupId: id, database: "daylog"))) == id)
        #expect(layout.backupId(ofKey: layout.drillReportKey(backupId: id, drillId: "d1")) == id)
        #expect(layout.backupId(ofKey: layout.leaseKey(backupId: id, leaseId: "l1")) == id)

        let report = try #require(layout.drillReport(ofKey: layout.drillReportKey(backupId: id, drillId: "20261125T030000Z")))
        #expect(report.backupId == id && report.drillId == "20261125T030000Z")
        let lease = try #require(layout.lease(ofKey: layout.leaseKey(backupId: id, leaseId: "9b2e")))
        #expect(lease.backupId == id && lease.leaseId == "9b2e")
        let job = try #require(layout.jobRecord(ofKey: layout.jobRecordKey(kind: "drill", runId: "20261125T030000Z-1")))
        #expect(job.kind == "drill" && job.runId == "20261125T030000Z-1")

        for name in ["000000010000000A000000FF", "0000000A.history", "000000020000000000000003.00000028.backup", "000000020000000000000003.partial"] {
            let file = try #require(WALFileName(name))
            for object in [WALObjectName(file: file, sha256: Self.sha), WALObjectName(file: file, sha256: nil)] {
                #expect(layout.walObjectName(ofKey: layout.walKey(object)) == object)
                #expect(RepositoryLayout.walObjectName(parsing: RepositoryLayout.walObjectName(object)) == object)
                #expect(layout.walKey(object).hasPrefix(layout.walKeyPrefix(file)))
                #expect(layout.walKey(object).hasPrefix(layout.walDirectory(timeline: file.timeline)))
            }
        }
    }

    @Test func parsersRefuseOtherKeys() throws {
        let layout = RepositoryLayout(stanza: "main")
        let other = RepositoryLayout(stanza: "other")
        let id = "20261125T020000Z-logical"
        // Another stanza, another directory, or not the file the format puts there.
        #expect(layout.backupId(ofManifestKey: other.manifestKey(id)) == nil)
        #expect(layout.backupId(ofManifestKey: layout.key(relative: RepositoryLayout.dumpArtifact(backupId: id, database: "manifest"))) == nil)
        #expect(layout.backupId(ofManifestKey: "main/backups/\(id)/x/manifest.json") == nil)
        #expect(layout.backupId(ofManifestKey: "main/backups//manifest.json") == nil)
        #expect(layout.backupId(ofKey: "main/backups/\(id)") == nil)
        #expect(layout.backupId(ofKey: layout.markerKey) == nil)
        #expect(layout.backupId(ofKey: layout.walKey(try #require(WALFileName("000000010000000000000001")), sha256: Self.sha)) == nil)
        #expect(layout.drillReport(ofKey: "main/drills/\(id)/d1.txt") == nil)
        #expect(layout.drillReport(ofKey: "main/drills/\(id)/.json") == nil)
        #expect(layout.drillReport(ofKey: "main/drills/\(id)/sub/d1.json") == nil)
        #expect(layout.drillReport(ofKey: layout.leaseKey(backupId: id, leaseId: "l1")) == nil)
        #expect(layout.lease(ofKey: "main/locks/\(id)") == nil)
        #expect(layout.lease(ofKey: other.leaseKey(backupId: id, leaseId: "l1")) == nil)
        #expect(layout.jobRecord(ofKey: "main/jobs/backup.json") == nil)
        #expect(layout.jobRecord(ofKey: other.jobRecordKey(kind: "backup", runId: "r")) == nil)
        // WAL: only an object name pgbackd writes, in its own timeline's directory.
        #expect(layout.walObjectName(ofKey: "main/wal/00000001/000000010000000000000001") == nil)
        #expect(layout.walObjectName(ofKey: "main/wal/00000002/000000010000000000000001.gz") == nil)
        #expect(layout.walObjectName(ofKey: "main/wal/000000010000000000000001.gz") == nil)
        #expect(layout.walObjectName(ofKey: "main/wal/00000001/000000010000000000000001-\(Self.sha.uppercased()).gz") == nil)
        #expect(layout.walObjectName(ofKey: "other/wal/00000001/000000010000000000000001.gz") == nil)
        #expect(RepositoryLayout.walObjectName(parsing: "000000010000000000000001-abc.gz") == nil)
    }
}
