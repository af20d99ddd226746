import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

/// Issue #16, "Kills": pgbackd (and separately its child pg_dump, pg_restore, pg_basebackup) is
/// killed with SIGKILL at seeded random points of a logical backup, a base backup, a drill of
/// each, expire, wal-push and the WAL watcher, on a file and an S3 (moto) repository. After each
/// kill the next normal run of the same job must succeed, and then:
/// - every committed backup (one with a manifest) has all its artifacts, read back and matching
///   the manifest (size, SHA-256, gzip stream), and the WAL archive has no gap (`wal-check`);
/// - every WAL segment whose wal-push exited 0 is archived and `wal-fetch` returns its bytes;
/// - nothing outlives the documented clean-up: no job record, scratch database, staging
///   directory, drill cluster or running drill server after the next run; no object without a
///   manifest, lease or open upload once expire's day-old rule has run (the clock a day ahead).
extension Reliability {
    @Suite(.serialized) struct Kills {
        static let longScale = ReliabilityScale.current == .long

        @Test(.enabled(if: TestServices.s3Enabled), .timeLimit(.minutes(longScale ? 90 : 10)))
        func databaseJobsSurviveKills() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireS3()
            var random = KillRandom.forTest("database jobs")
            try await withCleanup { cleanup in
                let work = try temporaryDirectory("kills")
                cleanup.remove(work)
                let staging = "\(work)/staging"
                try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
                let tag = "kills-\(UUID().uuidString.prefix(8).lowercased())"
                let retention = "[retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nmin_keep = 1"
                try await withArchivingCluster(
                    binDirectory: postgres.binDirectory,
                    repository: KillRepository.s3TOML(s3, prefix: "\(tag)-archive", stanza: "archive"),
                    walSettings: "max_lag_seconds = 120",
                    extraConfiguration: "[drill]\nstaging_dir = \"\(staging)\"\n[compression]\nlevel = 1\n\(retention)"
                ) { cluster, pitr in
                    let logicalTOML = { (repository: String) in
                        """
                        [repository]
                        \(repository)
                        [postgres]
                        conninfo = "host=\(cluster.socket) port=\(cluster.port) user=postgres dbname=postgres"
                        databases = ["postgres"]
                        bin_dir = "\(postgres.binDirectory)"
                        [drill]
                        staging_dir = "\(staging)"
                        [compression]
                        level = 1
                        \(retention)
                        \(TestServices.encryptionTOML)
                        """
                    }
                    try logicalTOML(KillRepository.fileTOML(path: "\(work)/repo", stanza: "logical")).write(toFile: "\(work)/file.toml", atomically: true, encoding: .utf8)
                    try logicalTOML(KillRepository.s3TOML(s3, prefix: "\(tag)-logical", stanza: "logical")).write(toFile: "\(work)/s3.toml", atomically: true, encoding: .utf8)
                    let archive = try await KillRepository.open(name: "S3 archive", config: pitr.config, s3: s3, s3Prefix: "\(tag)-archive")
                    let file = try await KillRepository.open(name: "file", config: "\(work)/file.toml", fileRoot: "\(work)/repo")
                    let s3Logical = try await KillRepository.open(name: "S3", config: "\(work)/s3.toml", s3: s3, s3Prefix: "\(tag)-logical")
                    do {
                        try await offPool { try pitr.pgbench(["-i", "-s", "3", "--quiet", "--foreign-keys"]) }
                        try await DatabaseJobKills(pgbackd: pitr.pgbackd, cluster: cluster, pitr: pitr, staging: staging,
                                                   archive: archive, file: file, s3: s3Logical).run(&random)
                    } catch {
                        KillSupport.killProcesses(below: staging)
                        for repository in [archive, s3Logical] { await repository.removeAll() }
                        throw error
                    }
                    KillSupport.killProcesses(below: staging)
                    for repository in [archive, s3Logical] { await repository.removeAll() }
                }
            }
        }

        @Test(.enabled(if: TestServices.s3Enabled), .timeLimit(.minutes(longScale ? 60 : 10)))
        func walJobsSurviveKills() async throws {
            _ = try TestServices.requirePostgres()
            let s3 = try TestServices.requireS3()
            var random = KillRandom.forTest("WAL jobs")
            try await withCleanup { cleanup in
                let work = try temporaryDirectory("kills-wal")
                cleanup.remove(work)
                let tag = "kills-wal-\(UUID().uuidString.prefix(8).lowercased())"
                var repositories: [KillRepository] = []
                for (name, mode) in [("push", "sync"), ("watch", "spool")] {
                    for kind in ["file", "s3"] {
                        let body = kind == "file" ? KillRepository.fileTOML(path: "\(work)/repo", stanza: name)
                            : KillRepository.s3TOML(s3, prefix: tag, stanza: name)
                        let config = "\(work)/\(name)-\(kind).toml"
                        try """
                            [repository]
                            \(body)
                            [wal]
                            mode = "\(mode)"
                            spool_dir = "\(work)/spool-\(kind)"
                            parallel_uploads = 2
                            rescan_seconds = 1
                            \(TestServices.encryptionTOML)
                            """.write(toFile: config, atomically: true, encoding: .utf8)
                        repositories.append(try await KillRepository.open(name: kind == "file" ? "file" : "S3", config: config,
                                                                          s3: kind == "file" ? nil : s3, s3Prefix: kind == "file" ? nil : tag,
                                                                          fileRoot: kind == "file" ? "\(work)/repo" : nil))
                    }
                }
                let jobs = WALJobKills(work: work, push: Array(repositories[0...1]), watch: Array(repositories[2...3]))
                do {
                    try await jobs.run(&random)
                } catch {
                    for repository in repositories { await repository.removeAll() }
                    throw error
                }
                for repository in repositories { await repository.removeAll() }
            }
        }
    }
}

/// The kill runs of the jobs that work against a database: logical backup, drill, base backup,
/// base drill, expire. One archiving cluster (pgbench data) serves them all; its WAL and base
/// backups go to S3, its logical backups alternately to a file and an S3 repository.
struct DatabaseJobKills {
    let pgbackd: String
    let cluster: ThrowawayCluster
    let pitr: PITRHarness
    let staging: String
    let archive: KillRepository
    let file: KillRepository
    let s3: KillRepository
    let auditor = KillAuditor()

    func run(_ random: inout KillRandom) async throws {
        try await logicalBackups(&random)
        try await drills(&random)
        try await baseBackups(&random)
        try await baseDrills(&random)
        try await expires(&random)
    }

    /// The checks after a kill and the next normal run; adds what they counted to `figures`.
    func audit(_ figures: inout KillFigures, _ repository: KillRepository, _ context: String) async throws {
        let audit = try await auditor.audit(repository, context: context)
        figures.objectsVerified += audit.objectsVerified
        figures.lost += audit.incomplete
        figures.cleanedUp += audit.removedByExpire
        let (scratch, staged, servers) = try debris()
        // A killed pgbackd's pg_dump or pg_restore must not go on working on its own.
        let orphans = try await eventually(attempts: 50) { KillSupport.clients(of: cluster.socket).isEmpty } ? [] : KillSupport.clients(of: cluster.socket)
        let left = audit.leftOver + max(scratch, 0) + staged.count + servers.count + orphans.count
        figures.leftOver += left
        #expect(left == 0 && scratch == 0, "\(context): left over: \(audit.notes), scratch databases \(scratch), staging \(staged), drill servers (postmaster pids) \(servers), client programs still running \(orphans.map { KillSupport.arguments(of: $0) })")
    }

    /// What drills leave on the host: scratch databases on the drill server, entries in the
    /// staging directory, and servers (postmasters) running below it.
    func debris() throws -> (scratch: Int, staged: [String], servers: [Int32]) {
        let scratch = Int(try cluster.sql("select count(*) from pg_database where datname like 'pgbackd\\_drill\\_%'")) ?? -1
        let staged = try FileManager.default.contentsOfDirectory(atPath: staging)
        let processes = KillSupport.processes(below: staging)
        let servers = processes.filter { pid in KillSupport.parent(of: pid).map { !processes.contains($0) } ?? true }
        return (scratch, staged, servers)
    }

    /// Counts (for the printed figures) what a drill's kill left for the next drill to clean.
    func countDebris(_ figures: inout KillFigures) throws {
        let (scratch, staged, servers) = try debris()
        figures.cleanedUp += max(scratch, 0) + staged.count + servers.count
    }

    /// The kill run's own end: a pgbackd that finished before its kill succeeded; one whose
    /// child was killed failed with an exit code (it did not crash).
    func expectEnd(_ run: KillRun, _ target: KillTarget, _ context: String) {
        switch target {
        case .child where run.killed:
            #expect(!run.bySignal && run.status != 0, "\(context): pgbackd after its child's kill: status \(run.status) (signal: \(run.bySignal)) \(run.stderr)")
        default:
            if !run.killed { #expect(run.status == 0 && !run.bySignal, "\(context): the run the kill missed failed (\(run.status)): \(run.stderr)") }
        }
    }

    func normal(_ arguments: [String], _ context: String) async throws -> (status: Int32, stdout: String, stderr: String, seconds: Double) {
        let result = try await KillSupport.normal(pgbackd, arguments)
        #expect(result.status == 0, "\(context): the next normal run failed (\(result.status)): \(result.stdout.suffix(1500)) \(result.stderr.suffix(1500))")
        return result
    }

    func logicalBackups(_ random: inout KillRandom) async throws {
        var figures = KillFigures(scenario: "logical backup")
        var duration = 0.0
        for repository in [file, s3] {
            duration = max(duration, try await normal(["backup", "--config", repository.config], "first backup (\(repository.name))").seconds)
        }
        for run in 0..<ReliabilityScale.pick(ci: 3, long: 12) {
            let repository = run % 2 == 0 ? file : s3
            let target: KillTarget = run % 3 == 2 ? .child("pg_dump", delay: KillSupport.delay(upTo: duration * 0.8, using: &random))
                : .pgbackd(delay: KillSupport.delay(upTo: duration * 1.1, using: &random))
            let context = "logical backup run \(run) (\(repository.name), kill \(target))"
            let killed = try await KillSupport.run(pgbackd, ["backup", "--config", repository.config], kill: target)
            figures.count(killed, target)
            figures.cleanedUp += try await repository.debris()
            expectEnd(killed, target, context)
            duration = try await normal(["backup", "--config", repository.config], context).seconds
            try await audit(&figures, repository, context)
        }
        figures.record()
    }

    func drills(_ random: inout KillRandom) async throws {
        var figures = KillFigures(scenario: "drill (logical)")
        var duration = 0.0
        for repository in [file, s3] {
            duration = max(duration, try await normal(["drill", "latest", "--config", repository.config], "first drill (\(repository.name))").seconds)
        }
        for run in 0..<ReliabilityScale.pick(ci: 2, long: 10) {
            let repository = run % 2 == 0 ? file : s3
            let cluster = cluster
            // The first kill lands while pgbackd's backend creates the scratch database: the
            // database appears only once that statement ends, after the next drill has started.
            let creating: KillTarget = .pgbackdWhen("its backend runs CREATE DATABASE", {
                (try? cluster.sql("select count(*) from pg_stat_activity where query ilike 'create database%pgbackd\\_drill\\_%' and state = 'active'")) ?? "0" != "0"
            })
            let target: KillTarget = run == 0 ? creating
                : run % 2 == 1 ? .child("pg_restore", delay: KillSupport.delay(upTo: duration * 0.5, using: &random))
                : .pgbackd(delay: KillSupport.delay(upTo: duration * 1.1, using: &random))
            let context = "drill run \(run) (\(repository.name), kill \(target))"
            let killed = try await KillSupport.run(pgbackd, ["drill", "latest", "--config", repository.config], kill: target)
            figures.count(killed, target)
            figures.cleanedUp += try await repository.debris()
            if case .child = target, killed.killed {
                #expect(!killed.bySignal && [1, 70].contains(killed.status), "\(context): a drill whose pg_restore was killed fails (1 or 70), got \(killed.status): \(killed.stderr)")
            } else {
                expectEnd(killed, target, context)
            }
            try countDebris(&figures)
            let next = try await normal(["drill", "latest", "--json", "--config", repository.config], context)
            duration = next.seconds
            let report = try JSONSerialization.jsonObject(with: Data(next.stdout.utf8)) as? [String: Any]
            if next.status == 0, report?["passed"] as? Bool == true, let backupId = report?["backup_id"] as? String {
                // The drill's row-counts check compared every table with the backup's snapshot.
                let manifest = try await repository.repository.manifest(backupId)
                figures.rowsVerified += Int(manifest.databases.flatMap(\.rowCounts.values).reduce(0, +))
            } else {
                Issue.record("\(context): the next drill did not pass: \(next.stdout.suffix(1500))")
            }
            try await audit(&figures, repository, context)
        }
        figures.record()
    }

    func baseBackups(_ random: inout KillRandom) async throws {
        var figures = KillFigures(scenario: "base backup")
        let arguments = ["backup", "--type", "base", "--config", pitr.config]
        var duration = try await normal(arguments, "first base backup").seconds
        for run in 0..<ReliabilityScale.pick(ci: 2, long: 8) {
            try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "200"]) }
            let target: KillTarget = run % 2 == 1 ? .child("pg_basebackup", delay: KillSupport.delay(upTo: duration * 0.7, using: &random))
                : .pgbackd(delay: KillSupport.delay(upTo: duration * 1.1, using: &random))
            let context = "base backup run \(run) (kill \(target))"
            let killed = try await KillSupport.run(pgbackd, arguments, kill: target)
            figures.count(killed, target)
            figures.cleanedUp += try await archive.debris()
            expectEnd(killed, target, context)
            duration = try await normal(arguments, context).seconds
            try await walCheck(&figures, context)
            try await audit(&figures, archive, context)
        }
        figures.record()
    }

    /// `wal-check` of the archive: every base backup recoverable to the newest segment.
    func walCheck(_ figures: inout KillFigures, _ context: String) async throws {
        let check = try await KillSupport.normal(pgbackd, ["wal-check", "--config", pitr.config])
        if check.status != 0 {
            figures.lost += 1
            Issue.record("\(context): wal-check found the archive incomplete: \(check.stdout.suffix(1500)) \(check.stderr.suffix(1000))")
        }
    }

    func baseDrills(_ random: inout KillRandom) async throws {
        var figures = KillFigures(scenario: "drill (base backup)")
        let newestBase = { try await archive.repository.backups().last { $0.kind == .base }?.backupId ?? "" }
        var duration = try await normal(["drill", try await newestBase(), "--config", pitr.config], "first base drill").seconds
        let staging = staging
        for run in 0..<ReliabilityScale.pick(ci: 2, long: 6) {
            // The first two kills land while the drill's own server runs: the server is no child
            // of pgbackd and outlives it.
            let target: KillTarget = run < 2 ? .pgbackdWhen("its cluster's server runs", { KillSupport.processes(below: staging).contains { KillSupport.command(of: $0) == "postgres" } })
                : .pgbackd(delay: KillSupport.delay(upTo: duration * 1.1, using: &random))
            let context = "base drill run \(run) (kill \(target))"
            let backupId = try await newestBase()
            let killed = try await KillSupport.run(pgbackd, ["drill", backupId, "--config", pitr.config], kill: target)
            figures.count(killed, target)
            figures.cleanedUp += try await archive.debris()
            expectEnd(killed, target, context)
            let before = figures.cleanedUp
            try countDebris(&figures)
            if run < 2 {
                #expect(figures.cleanedUp > before, "\(context): the kill while its server ran left nothing: the run proves nothing")
            }
            if run == 1 {
                // Any drill cleans up, a logical one too (the daemon's drills are logical).
                _ = try await normal(["drill", "latest", "--config", file.config], "\(context), then a logical drill")
                let (_, staged, servers) = try debris()
                #expect(staged.isEmpty && servers.isEmpty, "\(context): a logical drill left the killed base drill's cluster: staging \(staged), servers \(servers)")
            }
            duration = try await normal(["drill", backupId, "--config", pitr.config], context).seconds
            try await audit(&figures, archive, context)
        }
        figures.record()
    }

    func expires(_ random: inout KillRandom) async throws {
        var figures = KillFigures(scenario: "expire")
        // A whole expire (start-up, then the deletions) takes a fraction of a second; the
        // estimate only grows from runs the kill missed, which did all of it.
        var duration = 0.4
        for run in 0..<ReliabilityScale.pick(ci: 2, long: 10) {
            // Something to expire: a new backup makes the older one go (keep_last = 1), with the
            // WAL before the new base backup.
            let repository = run % 2 == 0 ? archive : file
            if repository.name == archive.name {
                try await offPool { try pitr.pgbench(["-n", "-c", "2", "-t", "200"]) }
                _ = try await normal(["backup", "--type", "base", "--config", repository.config], "base backup before expire run \(run)")
            } else {
                _ = try await normal(["backup", "--config", repository.config], "backup before expire run \(run)")
            }
            let target = KillTarget.pgbackd(delay: KillSupport.delay(upTo: duration * 0.9, using: &random))
            let context = "expire run \(run) (\(repository.name), kill \(target))"
            let killed = try await KillSupport.run(pgbackd, ["expire", "--config", repository.config], kill: target)
            figures.count(killed, target)
            figures.cleanedUp += try await repository.debris()
            expectEnd(killed, target, context)
            _ = try await normal(["expire", "--config", repository.config], context)
            if !killed.killed { duration = killed.seconds }
            let kept = try await repository.repository.backups()
            #expect(kept.count == 1, "\(context): expire with keep_last = 1 keeps one backup: \(kept.map(\.backupId))")
            if repository.name == archive.name { try await walCheck(&figures, context) }
            try await audit(&figures, repository, context)
        }
        figures.record()
    }
}

/// The kill runs of wal-push (`mode = "sync"`: straight into the repository) and of the WAL
/// watcher (`wal-watch` shipping a spool), each alternately into a file and an S3 repository,
/// with synthetic 16 MiB segments of random bytes (the originals kept to compare with).
struct WALJobKills {
    let work: String
    let push: [KillRepository]
    let watch: [KillRepository]
    let auditor = KillAuditor()
    let pgbackd = pgbackdExecutable

    /// Segment names in order from 000000010000000000000010, crossing a log boundary.
    final class Names: @unchecked Sendable {
        var next = 0xF8
        func take() -> String {
            defer { next += 1 }
            return "00000001" + WALFileName.hex8(UInt32(next >> 8)) + WALFileName.hex8(UInt32(next & 0xFF))
        }
    }

    func run(_ random: inout KillRandom) async throws {
        try FileManager.default.createDirectory(atPath: "\(work)/source", withIntermediateDirectories: true)
        try await pushes(&random)
        try await watcher(&random)
    }

    func segment(_ name: String) throws -> String {
        let path = "\(work)/source/\(name)"
        let copy = try blockingShell("/bin/dd", ["if=/dev/urandom", "of=\(path)", "bs=1M", "count=16", "status=none"])
        guard copy.status == 0 else { throw CopyFailed(message: "dd: \(copy.stderr)") }
        return path
    }

    /// `wal-fetch` of `name` returns exactly the original's bytes.
    func fetchMatches(_ name: String, _ repository: KillRepository, _ context: String) async throws -> Bool {
        let target = try temporaryDirectory("kills-fetch")
        defer { try? FileManager.default.removeItem(atPath: target) }
        let fetch = try await KillSupport.normal(pgbackd, ["wal-fetch", "--config", repository.config, name, "\(target)/\(name)"])
        guard fetch.status == 0 else {
            Issue.record("\(context): acknowledged segment \(name) cannot be fetched from \(repository.name) (\(fetch.status)): \(fetch.stderr.suffix(800))")
            return false
        }
        let same = try Data(contentsOf: URL(fileURLWithPath: "\(target)/\(name)")) == Data(contentsOf: URL(fileURLWithPath: "\(work)/source/\(name)"))
        if !same { Issue.record("\(context): \(name) is archived in \(repository.name) with other bytes") }
        return same
    }

    func repositoryLeftovers(_ figures: inout KillFigures, _ repository: KillRepository, _ context: String) async throws {
        let audit = try await auditor.audit(repository, context: context)
        figures.cleanedUp += audit.removedByExpire
        figures.leftOver += audit.leftOver
        #expect(audit.leftOver == 0, "\(context): left over: \(audit.notes)")
    }

    func pushes(_ random: inout KillRandom) async throws {
        var figures = KillFigures(scenario: "wal-push (sync mode)")
        let names = Names()
        var acknowledged: [(name: String, repository: KillRepository)] = []
        var duration = 1.0
        for run in 0..<ReliabilityScale.pick(ci: 2, long: 12) {
            let repository = push[run % 2]
            let name = names.take()
            let path = try segment(name)
            let target = KillTarget.pgbackd(delay: KillSupport.delay(upTo: duration * 1.2, using: &random))
            let context = "wal-push run \(run) (\(repository.name), kill \(target))"
            let killed = try await KillSupport.run(pgbackd, ["wal-push", "--config", repository.config, path], kill: target)
            figures.count(killed, target)
            figures.cleanedUp += try await repository.debris()
            if !killed.killed {
                #expect(killed.status == 0, "\(context): the push the kill missed failed (\(killed.status)): \(killed.stderr)")
                duration = killed.seconds
            } else {
                // PostgreSQL runs archive_command again for a segment it was not told is done.
                let retry = try await KillSupport.normal(pgbackd, ["wal-push", "--config", repository.config, path])
                #expect(retry.status == 0, "\(context): the retried push failed (\(retry.status)): \(retry.stderr.suffix(1500))")
                duration = retry.seconds
            }
            acknowledged.append((name, repository))
            // Every segment acknowledged so far, in either repository, is still there, intact.
            for (earlier, where_) in acknowledged {
                if try await fetchMatches(earlier, where_, context) { figures.objectsVerified += 1 } else { figures.lost += 1 }
            }
            try await repositoryLeftovers(&figures, repository, context)
        }
        figures.record()
    }

    func watcher(_ random: inout KillRandom) async throws {
        var figures = KillFigures(scenario: "WAL watcher (wal-watch)")
        let names = Names()
        names.next = 0x1F8
        var acknowledged: [(name: String, repository: KillRepository)] = []
        var verified: Set<String> = []
        var duration = 2.0
        for run in 0..<ReliabilityScale.pick(ci: 2, long: 8) {
            let repository = watch[run % 2]
            let spool = "\(work)/spool-\(run % 2 == 0 ? "file" : "s3")"
            // PostgreSQL's side: wal-push into the spool; exit 0 is the acknowledgement.
            for _ in 0..<4 {
                let name = names.take()
                let pushed = try await KillSupport.normal(pgbackd, ["wal-push", "--config", repository.config, try segment(name)])
                #expect(pushed.status == 0, "spooling \(name): \(pushed.stderr.suffix(800))")
                if pushed.status == 0 { acknowledged.append((name, repository)) }
            }
            let target = KillTarget.pgbackd(delay: KillSupport.delay(upTo: duration * 1.2, using: &random))
            let context = "wal-watch run \(run) (\(repository.name), kill \(target))"
            let killed = try await KillSupport.run(pgbackd, ["wal-watch", "--config", repository.config], kill: target)
            figures.count(killed, target)
            figures.cleanedUp += try await repository.debris()
            #expect(killed.killed, "\(context): wal-watch ended by itself (\(killed.status)): \(killed.stderr)")
            // Right after the kill: a segment gone from the spool is archived with its bytes.
            let spooled = Set(try FileManager.default.contentsOfDirectory(atPath: spool))
            for (name, where_) in acknowledged where where_.name == repository.name && !spooled.contains(name) && !verified.contains(name) {
                if try await fetchMatches(name, where_, context) {
                    figures.objectsVerified += 1
                    verified.insert(name)
                } else {
                    figures.lost += 1
                }
            }
            // The next normal run ships the rest.
            let next = try await KillSupport.normal(pgbackd, ["wal-watch", "--once", "--config", repository.config])
            #expect(next.status == 0, "\(context): wal-watch --once after the kill failed (\(next.status)): \(next.stderr.suffix(1500))")
            duration = next.seconds + 0.5
            let left = try FileManager.default.contentsOfDirectory(atPath: spool)
            for (name, where_) in acknowledged where where_.name == repository.name && !verified.contains(name) {
                if try await fetchMatches(name, where_, context) {
                    figures.objectsVerified += 1
                    verified.insert(name)
                } else {
                    figures.lost += 1
                }
            }
            figures.leftOver += left.count
            #expect(left.isEmpty, "\(context): the spool still holds \(left) after wal-watch --once")
            try await repositoryLeftovers(&figures, repository, context)
        }
        #expect(verified.count == acknowledged.count, "every acknowledged segment archived with its bytes: \(verified.count) of \(acknowledged.count)")
        figures.record()
    }
}
