import Encryption
import Foundation
import ObjectStorage
import PGBackupCore
import PostgresClient
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue #15: what an encrypted repository holds, key rotation without rewriting, and every bad
/// key input refused with its exit code and nothing written. These tests write their own
/// `[encryption]` sections, whatever PGBACKD_TEST_ENCRYPTION says.
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct EncryptionTests {
    static let marker = "PGBACKD-MARKER-7f3e91"

    /// A repository key in a new file (mode 0600) of `directory`, given to the cluster's owner
    /// when archive_command (which runs as that user) must read it.
    static func key(in directory: String, name: String = "repo.key", owner: String? = nil) throws -> (path: String, fingerprint: String) {
        let path = "\(directory)/\(name)"
        let key = try RepositoryKey.generate()
        try key.write(to: path)
        if let owner { _ = try blockingShell("/bin/chown", ["\(owner):\(owner)", path]) }
        return (path, key.fingerprint)
    }

    static func toml(_ postgres: TestServices.Postgres, repository: String, databases: [String], keyFile: String?, oldKeyFiles: [String] = [],
                     s3: (TestServices.S3, endpoint: String, prefix: String)? = nil) -> String {
        let repositoryTOML: String
        if let (s3, endpoint, prefix) = s3 {
            repositoryTOML = """
                [repository]
                type = "s3"
                stanza = "enc"
                [repository.s3]
                endpoint = "\(endpoint)"
                bucket = "\(s3.bucket)"
                region = "\(s3.region)"
                prefix = "\(prefix)"
                access_key_id = "\(s3.accessKeyID)"
                secret_access_key = "\(s3.secretAccessKey)"
                """
        } else {
            repositoryTOML = """
                [repository]
                type = "file"
                path = "\(repository)"
                stanza = "enc"
                """
        }
        return """
            \(repositoryTOML)
            [postgres]
            conninfo = "\(postgres.conninfo())"
            databases = [\(databases.map { "\"\($0)\"" }.joined(separator: ", "))]
            bin_dir = "\(postgres.binDirectory)"
            \(keyFile.map { "[encryption]\nkey_file = \"\($0)\"\nold_key_files = [\(oldKeyFiles.map { "\"\($0)\"" }.joined(separator: ", "))]" } ?? "")
            """
    }

    static func pgbackd(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await shell("timeout", ["--kill-after=5", "300", pgbackdExecutable] + arguments)
    }

    /// A database whose rows all carry the marker.
    static func markedDatabase(_ postgres: TestServices.Postgres, cleanup: Cleanup) async throws -> String {
        let name = "enc_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await PostgresConnection.connect(conninfo: postgres.conninfo(), logger: BackupHarness.logger)
        try await admin.query("create database \(name)")
        cleanup.dropDatabase(name)
        let db = try await PostgresConnection.connect(conninfo: postgres.conninfo(database: name), logger: BackupHarness.logger)
        try await db.query("create table journal (id int primary key, content text not null)")
        try await db.query("insert into journal select g, '\(marker) entry ' || g from generate_series(1, 3000) g")
        return name
    }

    /// Whether `bytes`, or what gunzip makes of them, hold the marker.
    static func holdsMarker(_ bytes: [UInt8]) throws -> Bool {
        let marker = Array(Self.marker.utf8)
        if bytes.firstRange(of: marker) != nil { return true }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("enc-scan-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        _ = FileManager.default.createFile(atPath: file, contents: Data(bytes))
        let unzipped = try blockingShell("/bin/sh", ["-c", "gzip -dc < '\(file)' 2>/dev/null | grep -c '\(Self.marker)' || true"])
        return (Int(unzipped.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0
    }

    // MARK: Acceptance 2: nothing in clear

    @Test func theScanFindsTheMarkerInClearAndGzipped() throws {
        #expect(try Self.holdsMarker(Array("x \(Self.marker) y".utf8)))
        let gzipped = try blockingShell("/bin/sh", ["-c", "printf 'a \(Self.marker) b' | gzip -c | base64 -w0"])
        #expect(try Self.holdsMarker([UInt8](Data(base64Encoded: gzipped.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? Data())))
        #expect(!(try Self.holdsMarker(Array("nothing here".utf8))))
    }

    @Test(.timeLimit(.minutes(5)))
    func noObjectOfAFileRepositoryHoldsTheMarkerNotEvenInItsWAL() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let directory = try temporaryDirectory("enc-file")
            cleanup.remove(directory)
            // Spool mode: archive_command (the cluster owner) only spools; pgbackd ships as root.
            // The base drill's restore_command runs as the cluster owner: it reads the key too.
            let key = try Self.key(in: directory, owner: getuid() == 0 ? "postgres" : nil)
            try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                type = "file"
                path = "\(directory)/repo"
                stanza = "pitr"
                """, extraConfiguration: "[encryption]\nkey_file = \"\(key.path)\"") { cluster, pitr in
                try cluster.sql("create table journal (id int primary key, content text not null)")
                try cluster.sql("insert into journal select g, '\(Self.marker) entry ' || g from generate_series(1, 3000) g")
                let logical = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--config", pitr.config]) }
                #expect(logical.status == 0, "logical backup: \(logical.stderr)")
                let base = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--type", "base", "--config", pitr.config]) }
                #expect(base.status == 0, "base backup: \(base.stderr)")
                try await pitr.archiveEverything(cluster)
                // The base drill's restore_command runs as the cluster owner: it reads the repository.
                try cluster.giveToOwner("\(directory)/repo")
                let drill = try await offPool { try blockingShell(pitr.pgbackd, ["drill", "--config", pitr.config]) }
                #expect(drill.status == 0, "drill of the encrypted backup: \(drill.stdout) \(drill.stderr)")
                let files = try FileManager.default.subpathsOfDirectory(atPath: "\(directory)/repo").filter { path in
                    var isDirectory: ObjCBool = false
                    return FileManager.default.fileExists(atPath: "\(directory)/repo/\(path)", isDirectory: &isDirectory) && !isDirectory.boolValue
                }
                #expect(files.contains { $0.contains("/wal/") && $0.hasSuffix(".enc") }, "WAL was archived, encrypted: \(files)")
                #expect(files.contains { $0.hasSuffix("base.tar.gz.enc") })
                #expect(files.allSatisfy { $0.hasSuffix(".enc") || $0.hasSuffix("repository.json") || $0.contains("/keys/") }, "stored in clear: \(files)")
                for file in files {
                    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(directory)/repo/\(file)")))
                    #expect(!(try Self.holdsMarker(bytes)), "\(file) holds the marker")
                }
            }
        }
    }

    @Test(.timeLimit(.minutes(3)), .enabled(if: TestServices.s3Enabled))
    func noObjectOfAnS3RepositoryHoldsTheMarker() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        try await withCleanup(postgres) { cleanup in
            let directory = try temporaryDirectory("enc-s3")
            cleanup.remove(directory)
            let database = try await Self.markedDatabase(postgres, cleanup: cleanup)
            let key = try Self.key(in: directory)
            let prefix = "enc-\(UUID().uuidString.prefix(8))"
            let config = "\(directory)/pgbackd.toml"
            try Self.toml(postgres, repository: "", databases: [database], keyFile: key.path, s3: (s3, s3.endpoint, prefix))
                .write(toFile: config, atomically: true, encoding: .utf8)
            let backup = try await Self.pgbackd(["backup", "--config", config])
            #expect(backup.status == 0, "\(backup.stderr)")
            let drill = try await Self.pgbackd(["drill", "--config", config])
            #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
            // Below the encrypting layer: the bucket as anyone with read access sees it.
            let bucket = try await RepositoryFactory.open(try Configuration.load(path: config), logger: BackupHarness.logger)
            let raw = try #require(bucket.storage as? EncryptedStorage).base
            let objects = try await raw.list(prefix: "enc/")
            #expect(objects.count >= 5, "\(objects.map(\.key))")
            for object in objects {
                #expect(!(try Self.holdsMarker(try await raw.getAll(key: object.key))), "\(object.key) holds the marker")
            }
        }
    }

    // MARK: Acceptance 3 and 4: keys

    @Test(.timeLimit(.minutes(4)), .enabled(if: TestServices.s3Enabled))
    func rotationRewritesNothingAndAKilledRekeyFinishesWhenRunAgain() async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = try TestServices.requireS3()
        let endpoint = try #require(URL(string: s3.endpoint))
        try await withCleanup(postgres) { cleanup in
            let directory = try temporaryDirectory("enc-rotate")
            cleanup.remove(directory)
            let database = try await Self.markedDatabase(postgres, cleanup: cleanup)
            let gate = try GateProxy(targetHost: endpoint.host ?? "127.0.0.1", targetPort: endpoint.port ?? 80, control: "\(directory)/gate")
            defer { gate.stop() }
            let prefix = "rotate-\(UUID().uuidString.prefix(8))"
            let a = try Self.key(in: directory, name: "a.key"), b = try Self.key(in: directory, name: "b.key")
            func write(_ name: String, key: String?, old: [String] = []) throws -> String {
                let path = "\(directory)/\(name).toml"
                try Self.toml(postgres, repository: "", databases: [database], keyFile: key, oldKeyFiles: old,
                              s3: (s3, "http://127.0.0.1:\(gate.port)", prefix)).write(toFile: path, atomically: true, encoding: .utf8)
                return path
            }
            let withA = try write("a", key: a.path), withB = try write("b", key: b.path), rotating = try write("b-a", key: b.path, old: [a.path])
            for _ in 0..<2 {
                let backup = try await Self.pgbackd(["backup", "--config", withA])
                #expect(backup.status == 0, "\(backup.stderr)")
            }
            let raw = try #require(try await RepositoryFactory.open(try Configuration.load(path: withA), logger: BackupHarness.logger).storage as? EncryptedStorage).base
            let before = try await raw.list(prefix: "enc/")

            // Key B alone: refused before anything is read or written, naming both keys.
            for arguments in [["list"], ["drill"], ["backup"]] {
                let refused = try await Self.pgbackd(arguments + ["--config", withB])
                #expect(refused.status == 77, "\(arguments) with the wrong key: \(refused.status) \(refused.stderr)")
                #expect(refused.stderr.contains(a.fingerprint) && refused.stderr.contains(b.fingerprint), "\(refused.stderr)")
                #expect(refused.stdout.isEmpty)
            }
            #expect(try await raw.list(prefix: "enc/") == before, "a refused command wrote nothing")

            // B with A as an old key: everything reads.
            let drill = try await Self.pgbackd(["drill", "--config", rotating])
            #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
            let check = try await Self.pgbackd(["check", "--config", rotating])
            #expect(check.stdout.contains("still wrapped under old keys") && check.stdout.contains(a.fingerprint), "\(check.stdout)")

            // rekey, killed while it rewraps its second key, then run again to the end.
            try gate.arm(hold: "^PUT .*/keys/", after: "^PUT .*/keys/")
            let rekey = try launchPgbackd(["rekey", "--config", rotating])
            let held = try await eventually(attempts: 600) { gate.isHolding || !rekey.isRunning }
            #expect(held && rekey.isRunning, "rekey never reached its second key")
            kill(rekey.processIdentifier, SIGKILL)
            _ = try await eventually { !rekey.isRunning }
            gate.open()
            let again = try await Self.pgbackd(["rekey", "--json", "--config", rotating])
            #expect(again.status == 0, "\(again.stderr)")
            let outcome = try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any]
            #expect((outcome?["already_current"] as? Int ?? 0) >= 1, "the killed run rewrapped one key before it died: \(again.stdout)")
            // Only wrapped keys and the marker changed: no backup object was rewritten.
            let after = try await raw.list(prefix: "enc/")
            let dataObjects = { (objects: [ObjectInfo]) in objects.filter { $0.key.hasSuffix(".enc") && !$0.key.contains("/drills/") && !$0.key.contains("/jobs/") && !$0.key.contains("/check/") } }
            #expect(Set(dataObjects(after)).isSuperset(of: dataObjects(before)), "backups were rewritten")

            // B alone now reads every backup; A's file can go.
            try FileManager.default.removeItem(atPath: a.path)
            let listed = try await Self.pgbackd(["list", "--json", "--config", withB])
            #expect(listed.status == 0, "\(listed.stderr)")
            let ids = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []).compactMap { $0["backup_id"] as? String }
            #expect(ids.count == 2)
            for id in ids {
                let drilled = try await Self.pgbackd(["drill", id, "--config", withB])
                #expect(drilled.status == 0, "drill of \(id) with the new key alone: \(drilled.stdout) \(drilled.stderr)")
            }
            let finalCheck = try await Self.pgbackd(["check", "--config", withB])
            #expect(finalCheck.stdout.contains("old key files are no longer needed"), "\(finalCheck.stdout)")
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func badKeyInputsAreRefusedWithTheirExitCodeAndNothingWritten() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup(postgres) { cleanup in
            let directory = try temporaryDirectory("enc-bad")
            cleanup.remove(directory)
            let database = try await Self.markedDatabase(postgres, cleanup: cleanup)
            let repository = "\(directory)/repo"
            func config(_ name: String, key: String?) throws -> String {
                let path = "\(directory)/\(name).toml"
                try Self.toml(postgres, repository: repository, databases: [database], keyFile: key).write(toFile: path, atomically: true, encoding: .utf8)
                return path
            }
            func stored() throws -> [String] { ((try? FileManager.default.subpathsOfDirectory(atPath: repository)) ?? []).sorted() }
            func expectRefused(_ name: String, _ config: String, status: Int32, naming fragment: String) async throws {
                let before = try stored()
                let run = try await Self.pgbackd(["backup", "--config", config])
                #expect(run.status == status, "\(name): exit \(run.status), expected \(status): \(run.stderr)")
                #expect(run.stderr.contains(fragment), "\(name): \(run.stderr)")
                #expect(try stored() == before, "\(name): the repository changed")
            }
            // Key files that cannot be used: 78 before anything is stored.
            try await expectRefused("missing key file", try config("missing", key: "\(directory)/nope.key"), status: 78, naming: "pgbackd keygen")
            let open = try Self.key(in: directory, name: "open.key")
            chmod(open.path, 0o644)
            try await expectRefused("key readable by others", try config("open", key: open.path), status: 78, naming: "chmod 600")
            try FileManager.default.createDirectory(atPath: "\(directory)/dir.key", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            try await expectRefused("unreadable key file", try config("unreadable", key: "\(directory)/dir.key"), status: 78, naming: "cannot read")
            _ = FileManager.default.createFile(atPath: "\(directory)/short.key", contents: Data("c2hvcnQ=\n".utf8), attributes: [.posixPermissions: 0o600])
            try await expectRefused("malformed key file", try config("short", key: "\(directory)/short.key"), status: 78, naming: "32 bytes in base64")

            // An unencrypted stanza with a key configured, and the reverse.
            let plain = try config("plain", key: nil)
            let first = try await Self.pgbackd(["backup", "--config", plain])
            #expect(first.status == 0, "\(first.stderr)")
            let key = try Self.key(in: directory)
            let keyed = try config("keyed", key: key.path)
            try await expectRefused("key for an unencrypted stanza", keyed, status: 78, naming: "pgbackd encrypt")
            // Turned on: new backups encrypted, the old one still readable.
            let encrypt = try await Self.pgbackd(["encrypt", "--config", keyed])
            #expect(encrypt.status == 0, "\(encrypt.stderr)")
            let second = try await Self.pgbackd(["backup", "--config", keyed])
            #expect(second.status == 0, "\(second.stderr)")
            #expect(try stored().contains { $0.hasSuffix(".dump.gz.enc") } && (try stored()).contains { $0.hasSuffix(".dump.gz") })
            let listed = try await Self.pgbackd(["list", "--json", "--config", keyed])
            let ids = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []).compactMap { $0["backup_id"] as? String }
            #expect(ids.count == 2, "\(listed.stdout)")
            for id in ids {
                let drill = try await Self.pgbackd(["drill", id, "--config", keyed])
                #expect(drill.status == 0, "drill of \(id) after encryption was turned on: \(drill.stdout) \(drill.stderr)")
            }
            try await expectRefused("encrypted stanza without a key", plain, status: 78, naming: key.fingerprint)
        }
    }
}
