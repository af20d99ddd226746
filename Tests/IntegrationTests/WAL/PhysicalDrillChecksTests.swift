import Compression
import Foundation
@testable import PGBackupCore
import Testing

/// Issue 13, "physical drills that look inside": a base backup's drill checks the restored files
/// against pg_basebackup's manifest, the page checksums and the heap and index structure
/// (pg_verifybackup, pg_checksums, pg_amcheck), and names what is damaged.
@Suite(.serialized) struct PhysicalDrillChecksTests {
    /// Checksums on: a clean backup passes all three checks. Then a heap page is damaged behind
    /// the server's back (its LSN set past the backup's start, so pg_basebackup's own checksum
    /// test skips it, as it skips pages torn by concurrent writes) and, in the stored tar, a byte
    /// of pg_hba.conf (with pgbackd's manifest updated so the artifact check passes): the drill
    /// names the file in `verifybackup`, the block and table in `checksums` and `amcheck`.
    @Test(.enabled(if: TestServices.postgresEnabled))
    func cleanBackupPassesAndDamagedPagesAndFilesAreNamed() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup { cleanup in
            let repository = try temporaryDirectory("physical-repo")
            cleanup.remove(repository)
            try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                type = "file"
                path = "\(repository)"
                stanza = "physical"
                """, initdbArguments: ["--data-checksums"]) { cluster, pitr in
                try Self.makeTable(cluster)
                let clean = try await Self.drill(Self.backup(pitr, cluster), pitr, repository: repository)
                Self.show(clean)
                #expect(clean.passed, "\(DrillReportText.lines(clean).joined(separator: "\n"))")
                for name in ["verifybackup", "checksums", "amcheck"] {
                    let check = clean.checks.first { $0.name == name }
                    #expect(check?.passed == true && check?.figures["skipped"] == nil, "\(name): \(String(describing: check))")
                }
                #expect(clean.checks.first { $0.name == "checksums" }?.summary.contains("every page") == true)

                // A bin directory without the three programs (as an older major's lacks some):
                // each check is skipped with its reason, and the drill still passes.
                let partialBin = "\(cluster.base)/partial-bin"
                try FileManager.default.createDirectory(atPath: partialBin, withIntermediateDirectories: false)
                for program in try FileManager.default.contentsOfDirectory(atPath: postgres.binDirectory)
                where !["pg_verifybackup", "pg_checksums", "pg_amcheck"].contains(program) {
                    try FileManager.default.createSymbolicLink(atPath: "\(partialBin)/\(program)", withDestinationPath: "\(postgres.binDirectory)/\(program)")
                }
                let partialConfig = "\(cluster.base)/partial.toml"
                try String(contentsOfFile: pitr.config, encoding: .utf8)
                    .replacingOccurrences(of: "bin_dir = \"\(postgres.binDirectory)\"", with: "bin_dir = \"\(partialBin)\"")
                    .write(toFile: partialConfig, atomically: true, encoding: .utf8)
                chmod(partialConfig, 0o644)
                let skipped = try await Self.drill(clean.backupId, pitr, repository: repository, config: partialConfig)
                Self.show(skipped)
                #expect(skipped.passed, "\(DrillReportText.lines(skipped).joined(separator: "\n"))")
                for name in ["verifybackup", "checksums", "amcheck"] {
                    let check = skipped.checks.first { $0.name == name }
                    #expect(check?.figures["skipped"] == 1 && check?.summary.contains(partialBin) == true, "\(name): \(String(describing: check))")
                }

                let file = try cluster.sql("select pg_relation_filepath('t')")
                try await cluster.stopServer()
                try Self.patch("\(cluster.data)/\(file)") { page in
                    // pd_lsn FFFFFFFF/FFFFFFFF, and one byte of the last tuple's data changed.
                    for index in 0..<8 { page[index] = 0xFF }
                    page[8190] ^= 0x55
                }
                try await cluster.startServer()
                let damagedId = try await Self.backup(pitr, cluster)
                try await Self.flipByteInStoredTar(member: "pg_hba.conf", config: pitr.config, stanza: "physical", backupId: damagedId)
                let damaged = try await Self.drill(damagedId, pitr, repository: repository)
                Self.show(damaged)
                #expect(!damaged.passed)
                #expect(damaged.checks.first { $0.name == "artifacts" }?.passed == true, "the manifest was updated: the stored tar must pass")
                let verify = try #require(damaged.checks.first { $0.name == "verifybackup" })
                #expect(!verify.passed && verify.evidence.contains { $0["file"] == "pg_hba.conf" }, "\(verify)")
                let checksums = try #require(damaged.checks.first { $0.name == "checksums" })
                #expect(!checksums.passed, "\(checksums)")
                #expect(checksums.evidence.contains { $0["file"] == file && $0["block"] == "0" && $0["relation"] == "public.t" && $0["database"] == "postgres" }, "\(checksums.evidence)")
                let amcheck = try #require(damaged.checks.first { $0.name == "amcheck" })
                #expect(!amcheck.passed && amcheck.evidence.contains { $0["relation"] == "public.t" }, "\(amcheck)")
            }
        }
    }

    /// Checksums off, so pg_basebackup copies anything: a heap tuple's xmin and a B-tree leaf page
    /// damaged on disk. Only amcheck can see it; the drill fails naming the table, the index and
    /// what is wrong with each.
    @Test(.enabled(if: TestServices.postgresEnabled))
    func amcheckNamesADamagedTableAndIndex() async throws {
        let postgres = try TestServices.requirePostgres()
        try await withCleanup { cleanup in
            let repository = try temporaryDirectory("physical-repo")
            cleanup.remove(repository)
            // PostgreSQL 18's initdb turns checksums on by default; this test needs them off.
            let help = try await shell("\(postgres.binDirectory)/initdb", ["--help"]).stdout
            let checksumsOff = help.contains("--no-data-checksums") ? ["--no-data-checksums"] : []
            try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
                type = "file"
                path = "\(repository)"
                stanza = "physical"
                """, initdbArguments: checksumsOff) { cluster, pitr in
                try Self.makeTable(cluster)
                let heap = try cluster.sql("select pg_relation_filepath('t')")
                let index = try cluster.sql("select pg_relation_filepath('t_pkey')")
                try await cluster.stopServer()
                try Self.patch("\(cluster.data)/\(heap)") { page in
                    // The first line pointer's tuple: its xmin becomes 0xF0FFFFFF, from the future.
                    let pointer = UInt32(page[24]) | UInt32(page[25]) << 8 | UInt32(page[26]) << 16 | UInt32(page[27]) << 24
                    let tuple = Int(pointer & 0x7FFF)
                    for offset in 0..<4 { page[tuple + offset] = [0xFF, 0xFF, 0xFF, 0xF0][offset] }
                }
                // Block 1 of the primary key is its first leaf: 16 bytes in the middle of its tuples.
                try Self.patch("\(cluster.data)/\(index)", block: 1) { page in
                    for offset in 4096..<4112 { page[offset] = 0x7F }
                }
                try await cluster.startServer()
                let report = try await Self.drill(Self.backup(pitr, cluster), pitr, repository: repository)
                Self.show(report)
                #expect(!report.passed)
                #expect(report.checks.first { $0.name == "verifybackup" }?.passed == true, "the files are exactly what pg_basebackup sent")
                #expect(report.checks.first { $0.name == "checksums" }?.summary.contains("off") == true)
                let amcheck = try #require(report.checks.first { $0.name == "amcheck" })
                #expect(!amcheck.passed)
                let table = amcheck.evidence.first { $0["relation"] == "public.t" && $0["kind"] == "heap table" }
                #expect(table?["database"] == "postgres" && table?["at"] == "block 0, offset 1" && table?["problem"]?.contains("xmin 4043309055") == true, "\(amcheck.evidence)")
                let key = amcheck.evidence.first { $0["relation"] == "public.t_pkey" && $0["kind"] == "btree index" }
                #expect(key?["problem"]?.isEmpty == false, "\(amcheck.evidence)")
                #expect(amcheck.summary.contains("public.t (heap table)") && amcheck.summary.contains("public.t_pkey (btree index)"), "\(amcheck.summary)")
            }
        }
    }
}

extension PhysicalDrillChecksTests {
    /// 2000 rows in `t` with a primary key and a second index; autovacuum off on it, so nothing
    /// reads the damaged pages before the backup does; written out by a checkpoint.
    static func makeTable(_ cluster: ThrowawayCluster) throws {
        try cluster.sql("create table t (id int primary key, v text) with (autovacuum_enabled = false)")
        try cluster.sql("insert into t select g, 'value ' || g from generate_series(1, 2000) g")
        try cluster.sql("create index t_v on t (v)")
        try cluster.sql("vacuum t")
        try cluster.sql("checkpoint")
    }

    /// Rewrites one 8 kB block of a relation file in place.
    static func patch(_ path: String, block: Int = 0, _ change: (inout [UInt8]) -> Void) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(block * 8192))
        var page = [UInt8](try handle.read(upToCount: 8192) ?? Data())
        guard page.count == 8192 else { throw ThrowawayCluster.ClusterError(message: "\(path) has no block \(block)") }
        change(&page)
        try handle.seek(toOffset: UInt64(block * 8192))
        try handle.write(contentsOf: Data(page))
        try handle.synchronize()
    }

    static func backup(_ pitr: PITRHarness, _ cluster: ThrowawayCluster) async throws -> String {
        let backup = try await offPool { try blockingShell(pitr.pgbackd, ["backup", "--type", "base", "--json", "--config", pitr.config]) }
        guard backup.status == 0 else { throw ThrowawayCluster.ClusterError(message: "base backup: \(backup.stderr)") }
        try await pitr.archiveEverything(cluster)
        let summary = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
        return try #require(summary?["backup_id"] as? String, "\(backup.stdout)")
    }

    /// The repository is read by restore_command too, which runs as the server's user.
    static func drill(_ backupId: String, _ pitr: PITRHarness, repository: String, config: String? = nil) async throws -> DrillReport {
        try pitr.cluster.giveToOwner(repository)
        let started = ContinuousClock.now
        let drill = try await offPool { try blockingShell(pitr.pgbackd, ["drill", backupId, "--json", "--config", config ?? pitr.config]) }
        print("drill of \(backupId) took \(ContinuousClock.now - started) (exit \(drill.status))")
        #expect(drill.status == 0 || drill.status == 1, "\(drill.stderr.suffix(2000))")
        return try DrillReport.decode(Array(drill.stdout.utf8))
    }

    static func show(_ report: DrillReport) {
        print(DrillReportText.lines(report).joined(separator: "\n"))
    }

    /// Changes one byte of a member of the stored base tar and rewrites pgbackd's manifest to
    /// match, as if pg_basebackup had sent that byte: only pg_verifybackup can tell. Through
    /// ``RepositoryObjects``: on an encrypted repository the tar and manifest are re-encrypted.
    static func flipByteInStoredTar(member: String, config: String, stanza: String, backupId: String) async throws {
        let objects = try await RepositoryObjects(config: config)
        let prefix = "\(stanza)/backups/\(backupId)"
        let directory = try temporaryDirectory("flip")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var decoder = GzipDecoder()
        var tar = try decoder.decompress(try await objects.read("\(prefix)/base.tar.gz")) + decoder.finish()
        var offset = 0
        var found = false
        while offset + 512 <= tar.count, tar[offset] != 0 {
            let name = String(decoding: tar[offset..<offset + 100].prefix { $0 != 0 }, as: UTF8.self)
            let sizeField = String(decoding: tar[offset + 124..<offset + 136].prefix { $0 != 0 && $0 != 0x20 }, as: UTF8.self)
            let size = Int(sizeField, radix: 8) ?? 0
            if name == member, size > 0 {
                tar[offset + 512] ^= 0x01
                found = true
                break
            }
            offset += 512 + (size + 511) / 512 * 512
        }
        guard found else { throw ThrowawayCluster.ClusterError(message: "no \(member) in the base tar") }
        let rawPath = "\(directory)/base.tar"
        try Data(tar).write(to: URL(fileURLWithPath: rawPath))
        defer { try? FileManager.default.removeItem(atPath: rawPath) }
        let rawSha = try sha256(rawPath)
        let gzip = try blockingShell("/bin/sh", ["-c", "gzip -n -c '\(rawPath)' > '\(directory)/base.tar.gz'"])
        guard gzip.status == 0 else { throw ThrowawayCluster.ClusterError(message: "gzip: \(gzip.stderr)") }
        let gzipped = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(directory)/base.tar.gz")))
        try await objects.write("\(prefix)/base.tar.gz", gzipped)
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(try await objects.read("\(prefix)/manifest.json"))) as? [String: Any])
        var artifacts = try #require(manifest["artifacts"] as? [[String: Any]])
        let stored = try FileManager.default.attributesOfItem(atPath: "\(directory)/base.tar.gz")[.size] as? Int ?? 0
        for index in artifacts.indices where artifacts[index]["content"] as? String == "base-tar" {
            artifacts[index]["raw_sha256"] = rawSha
            artifacts[index]["stored_size"] = stored
            artifacts[index]["stored_sha256"] = try sha256("\(directory)/base.tar.gz")
        }
        manifest["artifacts"] = artifacts
        // Re-written by another program, its seal would say so: made a manifest from before seals.
        manifest["manifest_sha256"] = nil
        try await objects.write("\(prefix)/manifest.json", [UInt8](try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])))
    }

    static func sha256(_ path: String) throws -> String {
        let result = try blockingShell("/usr/bin/sha256sum", [path])
        guard result.status == 0, let hash = result.stdout.split(separator: " ").first else { throw ThrowawayCluster.ClusterError(message: "sha256sum: \(result.stderr)") }
        return String(hash)
    }
}
