import Foundation
import Logging
import PGBackdSupport
import PostgresClient

#if canImport(Glibc)
import Glibc
#endif

/// A throw-away PostgreSQL cluster of a chosen major (initdb'ed under `drill.staging_dir`) for an
/// upgrade drill: a logical backup of an older major restored into a newer one answers the
/// question every operator has before `pg_upgrade` or a dump-and-restore upgrade, "does all of
/// it restore there?". It listens on a private socket only (trust is safe there), never
/// archives, and is stopped and removed when the drill ends.
struct ScratchCluster {
    let major: Int
    let binDirectory: String
    let base: String
    /// As root the server runs as `postgres`, as initdb and postgres insist.
    let owner: String?
    let logger: Logger

    var data: String { base + "/data" }
    var socket: String { base + "/socket" }
    var conninfo: String { "host=\(Conninfo.quote(socket)) port=5432 user=postgres dbname=postgres" }

    /// initdb and start; the programs are `major`'s, from `configured` (`drill.bin_dir`) or the
    /// installs ``PostgresInstalls`` finds.
    static func start(major: Int, configured: String?, stagingDirectory: String, drillId: String, logger: Logger) async throws -> ScratchCluster {
        let initdb = try await PostgresInstalls.program("initdb", forServerMajor: major, configured: configured, setting: "drill.bin_dir")
        let cluster = ScratchCluster(major: major, binDirectory: (initdb as NSString).deletingLastPathComponent,
                                     base: stagingDirectory + "/pgbackd-scratch-\(drillId)", owner: getuid() == 0 ? "postgres" : nil, logger: logger)
        do {
            try FileManager.default.createDirectory(atPath: cluster.socket, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try cluster.give([cluster.base, cluster.socket])
            let made = try await cluster.run("initdb", ["-D", cluster.data, "-U", "postgres", "-E", "UTF8", "--locale=C", "--auth=trust", "--no-sync"], timeout: .seconds(300))
            guard made.succeeded else {
                throw BackupError(.failed, message: "initdb of the PostgreSQL \(major) scratch cluster failed (\(made.statusText)): \(made.stderr.split(separator: "\n").suffix(3).joined(separator: " / "))")
            }
            let settings = ["listen_addresses=", "unix_socket_directories=\(cluster.socket)", "port=5432", "archive_mode=off", "jit=off", "fsync=off",
                            "full_page_writes=off", "synchronous_commit=off"].map { "-c \($0)" }.joined(separator: " ")
            let started = try await cluster.run("pg_ctl", ["-D", cluster.data, "-l", cluster.base + "/postgres.log", "-w", "-t", "120", "-o", settings, "start"],
                                                timeout: .seconds(150))
            guard started.succeeded else {
                let log = (try? String(contentsOfFile: cluster.base + "/postgres.log", encoding: .utf8)).map { String($0.suffix(500)) } ?? ""
                throw BackupError(.failed, message: "the PostgreSQL \(major) scratch cluster did not start (\(started.statusText)): \(log)")
            }
            logger.info("scratch cluster started", metadata: ["drill.scratch_major": "\(major)", "drill.scratch_dir": "\(cluster.base)"])
            return cluster
        } catch {
            cluster.stop()
            throw error
        }
    }

    /// Stops the server at once and removes everything; synchronous, so it also runs in a
    /// `defer` on every way out of a drill.
    func stop(keep: Bool = false) {
        if FileManager.default.fileExists(atPath: data + "/postmaster.pid") {
            Self.stopImmediately(pgCtl: binDirectory + "/pg_ctl", data: data, owner: owner)
        }
        if !keep { try? FileManager.default.removeItem(atPath: base) }
    }

    /// `pg_ctl stop -m immediate`, waited for (at most 30 s) on the calling thread: drills stop
    /// their throw-away clusters from `defer`, which cannot await, on every way out.
    static func stopImmediately(pgCtl: String, data: String, owner: String?) {
        let stop = Process()
        stop.executableURL = URL(fileURLWithPath: owner == nil ? pgCtl : "/usr/sbin/runuser")
        stop.arguments = (owner.map { ["-u", $0, "--", pgCtl] } ?? []) + ["-D", data, "-m", "immediate", "-w", "stop"]
        stop.standardOutput = FileHandle.nullDevice
        stop.standardError = FileHandle.nullDevice
        try? stop.run()
        for _ in 0..<300 where stop.isRunning { usleep(100_000) }
    }

    private func run(_ program: String, _ arguments: [String], timeout: Duration) async throws -> ProgramOutcome {
        let path = binDirectory + "/" + program
        if let owner {
            return try await runProgram(program: "/usr/sbin/runuser", arguments: ["-u", owner, "--", path] + arguments, environment: [:], logger: logger,
                                        timeout: timeout, workingDirectory: base)
        }
        return try await runProgram(program: path, arguments: arguments, environment: [:], logger: logger, timeout: timeout, workingDirectory: base)
    }

    private func give(_ paths: [String]) throws {
        guard let owner, let entry = getpwnam(owner) else { return }
        for path in paths where chown(path, entry.pointee.pw_uid, entry.pointee.pw_gid) != 0 {
            throw StagingError(message: "cannot give \(path) to \(owner): \(String(cString: strerror(errno)))")
        }
    }
}
