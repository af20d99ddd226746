import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A seeded generator (SplitMix64): a failing kill run is replayed with PGBACKD_KILL_SEED.
struct KillRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The run's seed: PGBACKD_KILL_SEED, or a random one; printed either way.
    static let seed: UInt64 = {
        if let text = ProcessInfo.processInfo.environment["PGBACKD_KILL_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 1...UInt64(UInt32.max))
    }()

    /// A generator of its own for `test` (so one test's draws do not shift another's), announced.
    static func forTest(_ test: String) -> KillRandom {
        print("[kills] \(test): seed \(seed) (replay with PGBACKD_KILL_SEED=\(seed))")
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in test.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return KillRandom(seed: seed ^ hash)
    }
}

/// What is killed in a kill run.
enum KillTarget: Sendable, CustomStringConvertible {
    /// pgbackd itself, `delay` after it started.
    case pgbackd(delay: Duration)
    /// pgbackd's descendant program named `name` (pg_dump, pg_restore, pg_basebackup), `delay`
    /// after it appeared.
    case child(String, delay: Duration)
    /// pgbackd, as soon as `condition` holds (polled), e.g. once its drill cluster's server runs.
    case pgbackdWhen(String, @Sendable () -> Bool)

    var fault: String {
        switch self {
        case .pgbackd, .pgbackdWhen: "SIGKILL pgbackd"
        case .child(let name, _): "SIGKILL \(name)"
        }
    }

    var description: String {
        switch self {
        case .pgbackd(let delay): "pgbackd after \(delay)"
        case .child(let name, let delay): "\(name) \(delay) after it started"
        case .pgbackdWhen(let what, _): "pgbackd once \(what)"
        }
    }
}

struct KillRun: Sendable {
    /// A process was killed by the test (pgbackd or its child).
    var killed: Bool
    /// pgbackd's end: its exit status, or the signal that ended it.
    var status: Int32
    var bySignal: Bool
    var seconds: Double
    var stderr: String
    /// pgbackd did not end within the limit after the kill (then it was killed too).
    var hung = false
}

enum KillSupport {
    /// Runs `executable arguments`, kills `target`, waits for pgbackd to end (at most
    /// `limit`; then it is killed and that is an issue).
    static func run(_ executable: String, _ arguments: [String], kill target: KillTarget, limit: Duration = .seconds(600)) async throws -> KillRun {
        let run = try await offPool { try blockingRun(executable, arguments, kill: target, limit: limit) }
        if run.hung { Issue.record("pgbackd \(arguments.first ?? "") did not end within \(limit) after the kill of \(target): killed") }
        return run
    }

    /// A normal run: no kill. Returns exit status, stdout, stderr and how long it took.
    static func normal(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String, seconds: Double) {
        let started = Date()
        let result = try await shell(executable, arguments)
        return (result.status, result.stdout, result.stderr, Date().timeIntervalSince(started))
    }

    private static func blockingRun(_ executable: String, _ arguments: [String], kill target: KillTarget, limit: Duration) throws -> KillRun {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-kill-\(UUID().uuidString.prefix(8)).log").path
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: log) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: log)
        let started = Date()
        try process.run()
        let pid = process.processIdentifier
        let deadline = Date().addingTimeInterval(Double(limit.components.seconds))
        var killed = false
        switch target {
        case .pgbackd(let delay):
            sleep(for: delay) { !process.isRunning }
            if process.isRunning, Glibc.kill(pid, SIGKILL) == 0 { killed = true }
        case .child(let name, let delay):
            // The clock starts when the first such child appears; the one running when it runs
            // out is killed (a job may run several, one after another).
            var due: Date?
            while process.isRunning, !killed, Date() < deadline {
                let children = descendants(of: pid).filter { command(of: $0) == name && !KillSupport.arguments(of: $0).contains("--version") }
                if due == nil, !children.isEmpty { due = Date().addingTimeInterval(seconds(delay)) }
                if let due, Date() >= due, let child = children.first, Glibc.kill(child, SIGKILL) == 0 { killed = true }
                if !killed { usleep(5_000) }
            }
        case .pgbackdWhen(_, let condition):
            while process.isRunning, !condition(), Date() < deadline { usleep(20_000) }
            if process.isRunning, Glibc.kill(pid, SIGKILL) == 0 { killed = true }
        }
        while process.isRunning, Date() < deadline { usleep(20_000) }
        let hung = process.isRunning
        if hung { Glibc.kill(pid, SIGKILL) }
        process.waitUntilExit()
        let stderr = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return KillRun(killed: killed, status: process.terminationStatus, bySignal: process.terminationReason == .uncaughtSignal,
                       seconds: Date().timeIntervalSince(started), stderr: String(stderr.suffix(2000)), hung: hung)
    }

    private static func seconds(_ delay: Duration) -> Double {
        Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
    }

    /// Sleeps `delay`, waking early when `done` holds.
    private static func sleep(for delay: Duration, until done: () -> Bool) {
        let end = Date().addingTimeInterval(seconds(delay))
        while Date() < end, !done() { usleep(5_000) }
    }

    /// A delay drawn uniformly from 0 to `seconds`.
    static func delay(upTo seconds: Double, using random: inout KillRandom) -> Duration {
        .milliseconds(Int((Double.random(in: 0...1, using: &random) * max(seconds, 0.05) * 1000).rounded()))
    }

    /// Every process below `root` in the process tree (from /proc).
    static func descendants(of root: Int32) -> [Int32] {
        var children: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let parent = parent(of: pid) else { continue }
            children[parent, default: []].append(pid)
        }
        var found: [Int32] = []
        var queue = [root]
        while let next = queue.popLast() {
            for child in children[next] ?? [] {
                found.append(child)
                queue.append(child)
            }
        }
        return found
    }

    private static func stat(of pid: Int32) -> (command: String, fields: [Substring])? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
        return (String(stat[stat.index(after: open)..<close]), stat[stat.index(after: close)...].split(separator: " "))
    }

    /// The process's argument list (empty once gone).
    static func arguments(of pid: Int32) -> [String] {
        guard let bytes = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    static func parent(of pid: Int32) -> Int32? {
        stat(of: pid).flatMap { $0.fields.count > 1 ? Int32($0.fields[1]) : nil }
    }

    /// The program's name (comm), nil once gone or a zombie.
    static func command(of pid: Int32) -> String? {
        guard let stat = stat(of: pid), stat.fields.first != "Z" else { return nil }
        return stat.command
    }

    /// Live processes whose working directory is below `directory`: a drill cluster's server.
    static func processes(below directory: String) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = Int32(entry), command(of: pid) != nil,
                  let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"),
                  cwd == directory || cwd.hasPrefix(directory + "/") else { return nil }
            return pid
        }
    }

    /// Live client programs (pg_dump, pg_restore, ...) talking to the server whose socket
    /// directory is `socket` (in their arguments or environment): a killed pgbackd's orphans.
    static func clients(of socket: String) -> [Int32] {
        let programs: Set<String> = ["pg_dump", "pg_dumpall", "pg_restore", "pg_basebackup", "psql"]
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = Int32(entry), let command = command(of: pid), programs.contains(command) else { return nil }
            let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ").map { String(decoding: $0, as: UTF8.self) } ?? ""
            return arguments(of: pid).contains(where: { $0.contains(socket) }) || environment.contains(socket) ? pid : nil
        }
    }

    /// Kills what still runs below `directory` (a drill server the test's kill orphaned), so a
    /// failed test leaves no server behind.
    static func killProcesses(below directory: String) {
        for pid in processes(below: directory) { Glibc.kill(pid, SIGKILL) }
    }

    /// Open multipart uploads under `prefix` in the S3 bucket, listed with boto3 (the keys go
    /// through the environment, never the argument list).
    static func openUploads(_ s3: TestServices.S3, prefix: String) async throws -> Int {
        let script = """
            import boto3, os, sys
            c = boto3.client("s3", endpoint_url=os.environ["KILL_S3_ENDPOINT"], region_name=os.environ["KILL_S3_REGION"])
            n = 0
            kw = {"Bucket": os.environ["KILL_S3_BUCKET"], "Prefix": sys.argv[1]}
            while True:
                r = c.list_multipart_uploads(**kw)
                n += len(r.get("Uploads", []))
                if not r.get("IsTruncated"):
                    break
                kw["KeyMarker"] = r["NextKeyMarker"]
                kw["UploadIdMarker"] = r["NextUploadIdMarker"]
            print(n)
            """
        let result = try await shell("python3", ["-c", script, prefix], environment: [
            "KILL_S3_ENDPOINT": s3.endpoint, "KILL_S3_REGION": s3.region, "KILL_S3_BUCKET": s3.bucket,
            "AWS_ACCESS_KEY_ID": s3.accessKeyID, "AWS_SECRET_ACCESS_KEY": s3.secretAccessKey,
        ])
        guard result.status == 0, let count = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CopyFailed(message: "listing multipart uploads failed: \(result.stderr.suffix(1000))")
        }
        return count
    }

    /// Files a killed upload into a file repository leaves (`.pgbackd-tmp-*`), below `root`.
    static func temporaryFiles(below root: String) -> [String] {
        guard let walk = FileManager.default.enumerator(atPath: root) else { return [] }
        var found: [String] = []
        while let relative = walk.nextObject() as? String {
            if (relative as NSString).lastPathComponent.contains(".pgbackd-tmp") { found.append(relative) }
        }
        return found
    }
}

/// One repository a kill test writes to, with what the test needs to audit it.
struct KillRepository: Sendable {
    var name: String
    var config: String
    var repository: Repository
    /// The S3 server and key prefix (S3 repositories), for open multipart uploads.
    var s3: TestServices.S3?
    var s3Prefix: String?
    /// The directory of a file repository, for its temp files.
    var fileRoot: String?

    /// The repository's `[repository]` table body for a configuration.
    static func fileTOML(path: String, stanza: String) -> String {
        """
        type = "file"
        path = "\(path)"
        stanza = "\(stanza)"
        """
    }

    static func s3TOML(_ s3: TestServices.S3, prefix: String, stanza: String) -> String {
        """
        type = "s3"
        stanza = "\(stanza)"
        [repository.s3]
        endpoint = "\(s3.endpoint)"
        bucket = "\(s3.bucket)"
        region = "\(s3.region)"
        prefix = "\(prefix)"
        access_key_id = "\(s3.accessKeyID)"
        secret_access_key = "\(s3.secretAccessKey)"
        part_size_mib = 5
        parallel_parts = 2
        """
    }

    static func open(name: String, config: String, s3: TestServices.S3? = nil, s3Prefix: String? = nil, fileRoot: String? = nil) async throws -> KillRepository {
        let repository = try await RepositoryFactory.open(try Configuration.load(path: config), logger: BackupHarness.logger)
        return KillRepository(name: name, config: config, repository: repository, s3: s3, s3Prefix: s3Prefix, fileRoot: fileRoot)
    }

    /// Job records and open uploads: what a kill leaves in the repository at once.
    func debris() async throws -> Int {
        try await repository.storage.list(prefix: repository.layout.jobsPrefix).count + openUploads()
    }

    /// Open multipart uploads (S3) or upload temp files (file) under the stanza.
    func openUploads() async throws -> Int {
        if let s3, let s3Prefix { return try await KillSupport.openUploads(s3, prefix: "\(s3Prefix)/\(repository.stanza)/") }
        if let fileRoot { return KillSupport.temporaryFiles(below: "\(fileRoot)/\(repository.stanza)").count }
        return 0
    }

    /// Removes everything the test stored (S3; a file repository goes with its directory).
    func removeAll() async {
        guard s3 != nil else { return }
        for object in (try? await repository.storage.list(prefix: "\(repository.stanza)/")) ?? [] {
            try? await repository.storage.delete(key: object.key)
        }
        _ = try? await repository.storage.abortIncompleteUploads(prefix: "\(repository.stanza)/", startedBefore: Date().addingTimeInterval(3600))
    }
}

/// What one job's kill runs counted, recorded in the ledger at the end.
struct KillFigures {
    var scenario: String
    var faults: [String: Int] = [:]
    var runs = 0
    var kills = 0
    var objectsVerified = 0
    var rowsVerified = 0
    var lost = 0
    var leftOver = 0
    /// What the kills left that the documented clean-up then removed (printed, not a ledger
    /// column: it shows the kills landed mid-work): counted right after each kill, job records,
    /// open uploads, scratch databases, staging entries and drill servers; after the next run,
    /// before expire's day-old rule, objects without a manifest and leases.
    var cleanedUp = 0

    mutating func count(_ run: KillRun, _ target: KillTarget) {
        runs += 1
        if run.killed {
            kills += 1
            faults[target.fault, default: 0] += 1
        }
    }

    func record() {
        let figures = ReliabilityFigures(area: "kills", scenario: scenario, faults: faults, runs: runs, kills: kills,
                                         objectsVerified: objectsVerified, rowsVerified: rowsVerified, lost: lost, leftOver: leftOver, missed: nil)
        print("[kills] \(scenario): runs \(runs), kills \(kills) \(faults), objects verified \(objectsVerified), rows verified \(rowsVerified), lost \(lost), left over \(leftOver), left by kills and removed by the documented clean-up \(cleanedUp)")
        ReliabilityLedger.record(figures)
    }
}

/// Audits a repository after a kill and the next normal run of the job.
actor KillAuditor {
    /// Backups whose artifacts were read back in full once (objects are never rewritten: later
    /// audits check they are still there with their size).
    private var verified: Set<String> = []

    struct Audit {
        var committed = 0
        var objectsVerified = 0
        /// Committed backups with an artifact missing, short or not matching the manifest.
        var incomplete = 0
        /// Job records, open uploads and uncommitted objects and leases left after the
        /// documented clean-up (the next run, then expire once they are a day old).
        var leftOver = 0
        /// Objects without a manifest and leases found before expire's day-old rule ran.
        var removedByExpire = 0
        var notes: [String] = []
    }

    /// - Every committed backup (with a manifest) has all its artifacts, which match the
    ///   manifest (size, SHA-256, gzip stream; read back in full the first time).
    /// - No job record is left: the next run of the job reported and removed the killed one.
    /// - After the documented clean-up (expire, its day-old rule applied with the clock a day
    ///   and an hour ahead, every backup kept), no object without a manifest, no lease and no
    ///   open upload is left.
    func audit(_ target: KillRepository, context: String) async throws -> Audit {
        var audit = Audit()
        let repository = target.repository
        let verifier = ArtifactVerifier(repository: repository)
        for manifest in try await repository.backups() {
            audit.committed += 1
            var complete = true
            for artifact in manifest.artifacts {
                do {
                    if verified.contains(manifest.backupId) {
                        let head = try await repository.storage.head(key: repository.key(relative: artifact.key))
                        if head?.size != artifact.storedSize { throw CopyFailed(message: "\(artifact.key): \(head.map { "\($0.size) bytes" } ?? "missing"), manifest says \(artifact.storedSize)") }
                    } else {
                        _ = try await verifier.verify(artifact)
                        audit.objectsVerified += 1
                    }
                } catch {
                    complete = false
                    Issue.record("\(context): committed backup \(manifest.backupId) in \(target.name) is incomplete: \(error)")
                }
            }
            if complete { verified.insert(manifest.backupId) } else { audit.incomplete += 1 }
        }
        let records = try await repository.storage.list(prefix: repository.layout.jobsPrefix)
        if !records.isEmpty { audit.notes.append("job records \(records.map(\.key))") }
        audit.leftOver += records.count

        let manifests = Set(try await repository.backups().map(\.backupId))
        let withoutManifest = { (objects: [ObjectInfo]) in objects.filter { repository.layout.backupId(ofKey: $0.key).map { !manifests.contains($0) } ?? true } }
        audit.removedByExpire = withoutManifest(try await repository.storage.list(prefix: repository.backupsPrefix)).count
            + withoutManifest(try await repository.storage.list(prefix: repository.layout.drillsPrefix)).count
            + (try await repository.storage.list(prefix: repository.layout.leasesPrefix)).count
        let keepAll = RetentionConfiguration(keepLast: 100_000, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, minKeep: 100_000)
        _ = try await ExpireJob(rules: keepAll, repository: repository, logger: BackupHarness.logger).run(now: Date().addingTimeInterval(ExpireJob.orphanAge + 3600))
        let committed = Set(try await repository.backups().map(\.backupId))
        let uncommitted = try await repository.storage.list(prefix: repository.backupsPrefix).filter { repository.layout.backupId(ofKey: $0.key).map { !committed.contains($0) } ?? true }
            + (try await repository.storage.list(prefix: repository.layout.drillsPrefix)).filter { repository.layout.backupId(ofKey: $0.key).map { !committed.contains($0) } ?? true }
        let leases = try await repository.storage.list(prefix: repository.layout.leasesPrefix)
        let uploads = try await target.openUploads()
        if !uncommitted.isEmpty { audit.notes.append("objects without a manifest \(uncommitted.map(\.key))") }
        if !leases.isEmpty { audit.notes.append("leases \(leases.map(\.key))") }
        if uploads > 0 { audit.notes.append("\(uploads) open upload(s)") }
        audit.leftOver += uncommitted.count + leases.count + uploads
        if committed.count != audit.committed {
            Issue.record("\(context): the documented clean-up removed committed backups of \(target.name): \(audit.committed) → \(committed.count)")
            audit.incomplete += abs(audit.committed - committed.count)
        }
        return audit
    }
}
