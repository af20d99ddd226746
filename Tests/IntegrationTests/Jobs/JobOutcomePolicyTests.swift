import Foundation
import ObjectStorage
import PGBackupCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue #14, acceptance 1: one code path runs each job and raises its alerts. Every job ×
/// {success, failure, cancelled, interrupted} runs through the real `pgbackd` executable from
/// its command and from the daemon's scheduler (`pgbackd run`, the job caught up at start), and
/// both must raise exactly the events of the policy table in docs/alerts.md.
///
/// A run is held at a known point without anything in the product for tests: a wrapped
/// pg_dump / pg_basebackup / pg_restore waits while a file exists; retention and wal-check, which
/// run no program, use an S3 repository behind gate-proxy.py, which holds one request of theirs
/// (retention: the first after its job record is written; wal-check: its WAL listing).
@Suite(.serialized, .enabled(if: TestServices.postgresEnabled))
struct JobOutcomePolicyTests {
    enum JobUnderTest: String, CaseIterable, Sendable {
        case backup, baseBackup = "base_backup", drill, retention, walCheck = "wal_check"

        var command: [String] {
            switch self {
            case .backup: ["backup"]
            case .baseBackup: ["backup", "--type", "base"]
            case .drill: ["drill"]
            case .retention: ["expire"]
            case .walCheck: ["wal-check"]
            }
        }

        /// The program a run is held in (nil: held on a manifest FIFO instead).
        var heldProgram: String? {
            switch self {
            case .backup: "pg_dump"
            case .baseBackup: "pg_basebackup"
            case .drill: "pg_restore"
            case .retention, .walCheck: nil
            }
        }

        var failureEvent: String {
            switch self {
            case .backup, .baseBackup: "backup.failed"
            case .drill: "drill.failed"
            case .retention: "retention.failed"
            case .walCheck: "wal_check.failed"
            }
        }

        var successEvent: String? {
            switch self {
            case .backup, .baseBackup: "backup.succeeded"
            case .drill: "drill.succeeded"
            case .retention, .walCheck: nil
            }
        }
    }

    enum Situation: String, CaseIterable, Sendable {
        case success, failure, cancelled, interrupted
    }

    enum Path: String, CaseIterable, Sendable {
        case command, daemon
    }

    /// The policy, as `event/outcome`, in the order raised.
    static func expected(_ job: JobUnderTest, _ situation: Situation) -> [String] {
        let success = job.successEvent.map { ["\($0)/succeeded"] } ?? []
        switch situation {
        case .success: return success
        case .failure: return ["\(job.failureEvent)/failed"]
        case .cancelled: return ["\(job.failureEvent)/cancelled"]
        case .interrupted:
            // The next run reports the killed one, then ends as itself. wal-check only reads
            // and keeps no record: a killed one is simply run again.
            return (job == .walCheck ? [] : ["\(job.failureEvent)/interrupted"]) + success
        }
    }

    @Test(.timeLimit(.minutes(10)), arguments: JobUnderTest.allCases)
    func theCommandAndTheDaemonRaiseTheSameEvents(_ job: JobUnderTest) async throws {
        let postgres = try TestServices.requirePostgres()
        let s3 = job.heldProgram == nil ? try TestServices.requireS3() : nil
        try await withArchivingCluster(binDirectory: postgres.binDirectory, repository: """
            type = "file"
            path = "/nonexistent"
            stanza = "setup"
            """, walSettings: "mode = \"sync\"") { cluster, pitr in
            try cluster.sql("create table items (id int primary key, note text); insert into items select g, 'note ' || g from generate_series(1, 500) g")
            let archiveConfig = try String(contentsOfFile: pitr.config, encoding: .utf8)
            for situation in Situation.allCases {
                var seen: [Path: [String]] = [:]
                for path in Path.allCases {
                    let cell = try PolicyCell(job: job, situation: situation, path: path, cluster: cluster, pitr: pitr,
                                              realBin: postgres.binDirectory, archiveConfig: archiveConfig, s3: s3)
                    defer { cell.gate?.stop() }
                    let events = try await cell.run()
                    seen[path] = events
                    #expect(events == Self.expected(job, situation),
                            "\(job.rawValue) × \(situation.rawValue) from the \(path.rawValue): \(events), policy \(Self.expected(job, situation)); log: \(cell.logTail)")
                }
                #expect(seen[.command] == seen[.daemon], "\(job.rawValue) × \(situation.rawValue): command \(seen[.command] ?? []), daemon \(seen[.daemon] ?? [])")
            }
        }
    }
}

/// One job × situation × path: its own stanza, bin directory, state directory and event file.
struct PolicyCell {
    let job: JobOutcomePolicyTests.JobUnderTest
    let situation: JobOutcomePolicyTests.Situation
    let path: JobOutcomePolicyTests.Path
    let cluster: ThrowawayCluster
    let pitr: PITRHarness
    let realBin: String
    let directory: String
    let stanza: String
    /// Retention and wal-check: their S3 repository's proxy, and the bucket prefix of this cell.
    let gate: GateProxy?
    let s3: TestServices.S3?
    let prefix = "policy-\(UUID().uuidString.prefix(8))"

    init(job: JobOutcomePolicyTests.JobUnderTest, situation: JobOutcomePolicyTests.Situation, path: JobOutcomePolicyTests.Path,
         cluster: ThrowawayCluster, pitr: PITRHarness, realBin: String, archiveConfig: String, s3: TestServices.S3?) throws {
        self.job = job
        self.situation = situation
        self.path = path
        self.cluster = cluster
        self.pitr = pitr
        self.realBin = realBin
        stanza = "\(job.rawValue)-\(situation.rawValue)-\(path.rawValue)"
        directory = "\(cluster.base)/cells/\(stanza)"
        try FileManager.default.createDirectory(atPath: "\(directory)/state", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(directory)/spool", withIntermediateDirectories: true)
        self.s3 = s3
        if let s3, let endpoint = URL(string: s3.endpoint) {
            gate = try GateProxy(targetHost: endpoint.host ?? "127.0.0.1", targetPort: endpoint.port ?? 80, control: "\(directory)/gate")
        } else {
            gate = nil
        }
        // The cluster archives into this cell's stanza from now on: a base backup waits for its WAL there.
        let archive = archiveConfig.replacingOccurrences(of: "path = \"/nonexistent\"", with: "path = \"\(repository)\"")
            .replacingOccurrences(of: "stanza = \"setup\"", with: "stanza = \"\(stanza)\"")
        try archive.write(toFile: pitr.config, atomically: true, encoding: .utf8)
        chmod(pitr.config, 0o644)
        // archive_command runs as the cluster's owner; the test's pgbackd as root.
        try FileManager.default.createDirectory(atPath: "\(cluster.base)/repo/\(stanza)/wal", withIntermediateDirectories: true)
        try cluster.giveToOwner("\(cluster.base)/repo/\(stanza)")
    }

    var repository: String { "\(cluster.base)/repo" }
    var events: String { "\(directory)/events.jsonl" }
    var log: String { "\(directory)/pgbackd.log" }
    /// The end of pgbackd's log, for a failure message (the cluster's directory goes with it).
    var logTail: String { String(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(3000)) }
    var hold: String { "\(directory)/hold" }
    var held: String { "\(directory)/held" }
    var config: String { "\(directory)/pgbackd.toml" }
    var setupConfig: String { "\(directory)/setup.toml" }

    func toml(bin: String, hooks: Bool) -> String {
        """
        \(repositoryTOML)
        [postgres]
        conninfo = "host=\(cluster.socket) port=\(cluster.port) user=postgres dbname=postgres"
        bin_dir = "\(bin)"
        databases = ["postgres"]
        [wal]
        mode = "sync"
        spool_dir = "\(directory)/spool"
        [daemon]
        state_dir = "\(directory)/state"
        stop_timeout_seconds = 1
        [schedule]
        \(job.rawValue) = "0 0 1 1 *"
        \(hooks ? """
        [[alerts.command]]
        events = ["*"]
        run = ["/bin/sh", "-c", "cat >> \(events); echo >> \(events)"]
        """ : "")
        \(TestServices.encryptionTOML)
        """
    }

    var repositoryTOML: String {
        guard let s3, let gate else {
            return """
                [repository]
                type = "file"
                path = "\(repository)"
                stanza = "\(stanza)"
                """
        }
        return """
            [repository]
            type = "s3"
            stanza = "\(stanza)"
            [repository.s3]
            endpoint = "http://127.0.0.1:\(gate.port)"
            bucket = "\(s3.bucket)"
            region = "\(s3.region)"
            prefix = "\(prefix)"
            access_key_id = "\(s3.accessKeyID)"
            secret_access_key = "\(s3.secretAccessKey)"
            """
    }

    /// Sets the cell up, runs it, and returns the job events its hooks received.
    func run() async throws -> [String] {
        try toml(bin: realBin, hooks: false).write(toFile: setupConfig, atomically: true, encoding: .utf8)
        if job == .drill && situation != .failure || job == .retention || job == .walCheck {
            // Something to drill, or a manifest to hold retention and wal-check on.
            let backup = try await offPool { [pitr, setupConfig] in try blockingShell(pitr.pgbackd, ["backup", "--config", setupConfig]) }
            guard backup.status == 0 else { throw PolicyCellError("setup backup: \(backup.stderr)") }
        }
        var bin = realBin
        switch situation {
        case .failure:
            if job == .backup || job == .baseBackup {
                bin = try binDirectory(wrapping: job.heldProgram!, script: "echo \"\(job.heldProgram!): error: boom\" >&2; exit 1")
            } else if job == .retention || job == .walCheck {
                let repository = try await RepositoryFactory.open(try Configuration.load(path: setupConfig), logger: BackupHarness.logger)
                try await repository.storage.put(key: repository.manifestKey("20200101T000000Z-logical"), bytes: Array("not a manifest".utf8))
            } // drill: the stanza has no backup to drill
        case .cancelled, .interrupted:
            if let program = job.heldProgram {
                bin = try binDirectory(wrapping: program, script: """
                    touch "\(held)"
                    while [ -e "\(hold)" ]; do kill -0 $PPID 2>/dev/null || exit 1; sleep 0.1; done
                    exec "$REAL" "$@"
                    """)
                _ = FileManager.default.createFile(atPath: hold, contents: nil)
            }
        case .success:
            break
        }
        try toml(bin: bin, hooks: true).write(toFile: config, atomically: true, encoding: .utf8)
        if let gate, situation == .cancelled || situation == .interrupted {
            if job == .retention {
                try gate.arm(hold: ".", after: "^PUT .*/jobs/retention/")
            } else {
                try gate.arm(hold: "^GET .*prefix=\(prefix)%2F\(stanza)%2Fwal%2F")
            }
        }
        defer { gate?.open() }

        switch path {
        case .command:
            try await runCommand()
        case .daemon:
            try await runDaemon()
        }
        return try receivedEvents()
    }

    private func runCommand() async throws {
        let trap = gate
        switch situation {
        case .success, .failure:
            _ = try await shell("timeout", ["--kill-after=5", "300", pitr.pgbackd] + job.command + ["--config", config, "--log-level", "info"])
        case .cancelled:
            let process = try launch(job.command)
            try await waitUntilHeld(process, trap: trap)
            kill(process.processIdentifier, SIGTERM)
            if let trap {
                try await Task.sleep(for: .seconds(1))
                trap.open()
            }
            try await waitForExit(process)
        case .interrupted:
            let process = try launch(job.command)
            try await waitUntilHeld(process, trap: trap)
            kill(process.processIdentifier, SIGKILL)
            try await waitForExit(process)
            unhold(trap)
            _ = try await shell("timeout", ["--kill-after=5", "300", pitr.pgbackd] + job.command + ["--config", config, "--log-level", "info"])
        }
    }

    private func runDaemon() async throws {
        let trap = gate
        // A run recorded two years ago: the yearly schedule catches up once, at start.
        var state = DaemonState()
        let longAgo = Date().addingTimeInterval(-2 * 365 * 86_400)
        state.record(kind, JobRun(start: longAgo, end: longAgo, outcome: .succeeded))
        try state.save(stateDirectory: "\(directory)/state")
        var daemon = try launch(["run"])
        switch situation {
        case .success, .failure:
            try await waitForRecordedRun(daemon, after: longAgo)
            kill(daemon.processIdentifier, SIGTERM)
        case .cancelled:
            try await waitUntilHeld(daemon, trap: trap)
            kill(daemon.processIdentifier, SIGTERM)
            if let trap {
                // Past daemon.stop_timeout_seconds: the scheduler has cancelled the job.
                try await Task.sleep(for: .seconds(3))
                trap.open()
            }
        case .interrupted:
            try await waitUntilHeld(daemon, trap: trap)
            kill(daemon.processIdentifier, SIGKILL)
            try await waitForExit(daemon)
            unhold(trap)
            daemon = try launch(["run"])
            try await waitForRecordedRun(daemon, after: longAgo)
            kill(daemon.processIdentifier, SIGTERM)
        }
        try await waitForExit(daemon)
    }

    var kind: JobKind { JobKind(rawValue: job.rawValue)! }

    private func launch(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: pitr.pgbackd)
        process.arguments = arguments + ["--config", config, "--log-level", "info"]
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try output.seekToEnd()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = output
        try process.run()
        return process
    }

    /// Until the run sits in its held program, or (retention, wal-check) waits for the request
    /// the proxy holds: nothing moves until the test says so.
    private func waitUntilHeld(_ process: Process, trap: GateProxy?) async throws {
        let reached = try await eventually(attempts: 1200) {
            guard process.isRunning else { return true }
            if let trap { return trap.isHolding }
            return FileManager.default.fileExists(atPath: held)
        }
        guard reached, process.isRunning else {
            throw PolicyCellError("the \(job.rawValue) run was never held (exited: \(!process.isRunning)); log: \(logTail)")
        }
    }

    private func waitForRecordedRun(_ daemon: Process, after marker: Date) async throws {
        let recorded = try await eventually(attempts: 1800) {
            guard daemon.isRunning else { return true }
            let run = try? DaemonState.load(stateDirectory: "\(directory)/state")?.history(kind).lastRun
            return (run?.start ?? marker) > marker
        }
        guard recorded, daemon.isRunning else { throw PolicyCellError("the daemon recorded no \(job.rawValue) run; log: \(logTail)") }
    }

    private func waitForExit(_ process: Process) async throws {
        let exited = try await eventually(attempts: 1200) { !process.isRunning }
        if !exited {
            kill(process.processIdentifier, SIGKILL)
            throw PolicyCellError("pgbackd did not exit within 120 s; log: \(logTail)")
        }
    }

    private func unhold(_ trap: GateProxy?) {
        try? FileManager.default.removeItem(atPath: hold)
        trap?.open()
    }

    /// Every file of the real bin directory, but `program` is `script` (`$REAL` is the real one).
    private func binDirectory(wrapping program: String, script: String) throws -> String {
        let bin = "\(directory)/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: realBin) where name != program {
            try FileManager.default.createSymbolicLink(atPath: "\(bin)/\(name)", withDestinationPath: "\(realBin)/\(name)")
        }
        try writeExecutable("""
            #!/bin/bash
            REAL="\(realBin)/\(program)"
            if [ "$1" = "--version" ]; then exec "$REAL" --version; fi
            \(script)
            """, to: "\(bin)/\(program)")
        return bin
    }

    /// `event/outcome` of each job event received, in order; the daemon's own events are not
    /// the job's.
    private func receivedEvents() throws -> [String] {
        guard let text = try? String(contentsOfFile: events, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").compactMap { line -> String? in
            let event = try AlertEvent.decode(Array(line.utf8))
            guard !event.event.rawValue.hasPrefix("daemon.") else { return nil }
            return "\(event.event.rawValue)/\(event.outcome?.rawValue ?? "nil")"
        }
    }
}

struct PolicyCellError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
