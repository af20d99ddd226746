import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A second PostgreSQL cluster of a test's own, for settings the shared test server must not
/// have (archive_mode, archive_command). It lives under /tmp (the `postgres` user must traverse
/// every parent), listens on a Unix socket only, and is stopped and deleted by
/// ``withThrowawayCluster(_:settings:_:)`` however the test ends.
struct ThrowawayCluster: Sendable {
    let base: String
    let binDirectory: String
    var data: String { "\(base)/data" }
    var socket: String { "\(base)/socket" }
    /// With a socket-only server the port just names the socket file; any number works.
    let port = 5432

    static var runsAsRoot: Bool { getuid() == 0 }

    /// A command as the cluster owner: initdb and postgres refuse to run as root.
    func asOwner(_ program: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        Self.runsAsRoot ? try blockingShell("/usr/sbin/runuser", ["-u", "postgres", "--", program] + arguments) : try blockingShell(program, arguments)
    }

    /// Runs pg_ctl (as the owner) with its output in `output`, through posix_spawn and waitpid:
    /// Foundation's `Process.waitUntilExit` was seen never returning after `pg_ctl start`, whose
    /// server outlives it.
    func pgCtl(_ arguments: [String], output: String) throws -> Int32 {
        let argv = (Self.runsAsRoot ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []) + ["\(binDirectory)/pg_ctl"] + arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else { throw ClusterError(message: "cannot run \(argv[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw ClusterError(message: "waitpid pg_ctl: \(String(cString: strerror(errno)))") }
        }
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }

    /// Makes `path` (a directory or file under ``base``) belong to the cluster owner.
    func giveToOwner(_ path: String) throws {
        guard Self.runsAsRoot else { return }
        let result = try blockingShell("/bin/chown", ["-R", "postgres:postgres", path])
        guard result.status == 0 else { throw ClusterError(message: "chown \(path): \(result.stderr)") }
    }

    /// One SQL statement through psql; returns its unaligned output.
    @discardableResult
    func sql(_ statement: String) throws -> String {
        let result = try blockingShell("\(binDirectory)/psql", ["-h", socket, "-p", "\(port)", "-U", "postgres", "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement])
        guard result.status == 0 else { throw ClusterError(message: "psql \(statement): \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    fileprivate func start(settings: String, initdbArguments: [String]) throws {
        try FileManager.default.createDirectory(atPath: socket, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try giveToOwner(base)
        let initdb = try asOwner("\(binDirectory)/initdb", ["-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C", "--auth=trust", "-N"] + initdbArguments)
        guard initdb.status == 0 else { throw ClusterError(message: "initdb failed: \(initdb.stderr)") }
        let conf = """

            # ---- pgbackd WAL integration test cluster ----
            listen_addresses = ''
            port = \(port)
            unix_socket_directories = '\(socket)'
            wal_level = replica
            max_wal_size = 256MB
            \(settings)

            """
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(data)/postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(conf.utf8))
        try handle.close()
        guard try pgCtl(["-D", data, "-l", "\(base)/postgres.log", "-w", "-t", "60", "start"], output: "\(base)/pg_ctl.log") == 0 else {
            let log = (try? String(contentsOfFile: "\(base)/postgres.log", encoding: .utf8)) ?? ""
            let pgCtlLog = (try? String(contentsOfFile: "\(base)/pg_ctl.log", encoding: .utf8)) ?? ""
            throw ClusterError(message: "pg_ctl start failed: \(pgCtlLog) \(log.suffix(2000))")
        }
    }

    fileprivate func stopAndRemove() {
        if FileManager.default.fileExists(atPath: "\(data)/postmaster.pid") {
            _ = try? pgCtl(["-D", data, "-m", "fast", "-w", "-t", "60", "stop"], output: "\(base)/pg_ctl.log")
        }
        try? FileManager.default.removeItem(atPath: base)
    }

    struct ClusterError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}

/// Makes a throw-away cluster (initdb with `settings` appended to postgresql.conf), runs `body`,
/// then stops the cluster (fast) and deletes its directory, whichever way `body` ends.
/// `prepare` runs after the base directory exists and before the server starts: the place to
/// write files the settings name. `initdbArguments` go to initdb, e.g. `--data-checksums`.
func withThrowawayCluster<T>(
    binDirectory: String, initdbArguments: [String] = [], settings: (ThrowawayCluster) -> String,
    prepare: (ThrowawayCluster) throws -> Void = { _ in },
    _ body: (ThrowawayCluster) async throws -> T
) async throws -> T {
    let base = "/tmp/pgbackd-walit-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
    let cluster = ThrowawayCluster(base: base, binDirectory: binDirectory)
    do {
        try prepare(cluster)
        try cluster.start(settings: settings(cluster), initdbArguments: initdbArguments)
        let result = try await body(cluster)
        cluster.stopAndRemove()
        return result
    } catch {
        cluster.stopAndRemove()
        throw error
    }
}

/// A throw-away cluster archiving through a copy of pgbackd (the postgres user must be able to
/// run it and read its configuration) into `repository` (the `[repository]` table's body).
func withArchivingCluster<T>(
    binDirectory: String, repository: String, walSettings: String = "max_lag_seconds = 60", extraConfiguration: String = "",
    initdbArguments: [String] = [],
    _ body: (ThrowawayCluster, PITRHarness) async throws -> T
) async throws -> T {
    try await withThrowawayCluster(binDirectory: binDirectory, initdbArguments: initdbArguments, settings: { cluster in
        """
        archive_mode = on
        archive_command = '\(cluster.base)/pgbackd wal-push --config \(cluster.base)/pgbackd.toml %p'
        """
    }, prepare: { cluster in
        try copyPgbackdExecutable(to: "\(cluster.base)/pgbackd")
        try """
            [repository]
            \(repository)
            [postgres]
            conninfo = "host=\(cluster.socket) port=\(cluster.port) user=postgres dbname=postgres"
            bin_dir = "\(binDirectory)"
            [wal]
            spool_dir = "\(cluster.base)/spool"
            parallel_uploads = 2
            \(walSettings)
            \(extraConfiguration)
            """.write(toFile: "\(cluster.base)/pgbackd.toml", atomically: true, encoding: .utf8)
        chmod("\(cluster.base)/pgbackd.toml", 0o644)
        try FileManager.default.createDirectory(atPath: "\(cluster.base)/spool", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
    }) { cluster in
        try await body(cluster, PITRHarness(cluster: cluster, binDirectory: binDirectory))
    }
}
