import Foundation
import Logging
import PGBackdSupport

#if canImport(Glibc)
import Glibc
#endif

/// A second PostgreSQL cluster of a test's own, for settings the shared test server must not
/// have (archive_mode, archive_command). It lives under /tmp (the `postgres` user must traverse
/// every parent), listens on a Unix socket only, and is stopped and deleted by
/// ``withThrowawayCluster(_:settings:_:)`` however the test ends. initdb, pg_ctl and running
/// them as `postgres` under root are pgbackd's own ``PostgresCluster``'s.
struct ThrowawayCluster: Sendable {
    let server: PostgresCluster
    var base: String { server.base }
    var binDirectory: String { server.binDirectory }
    var data: String { server.data }
    var socket: String { server.socket }
    let port = PostgresCluster.port

    init(base: String, binDirectory: String) {
        server = PostgresCluster(base: base, binDirectory: binDirectory, logger: Logger(label: "pgbackd.test.cluster"))
    }

    /// Makes `path` (a directory or file under ``base``) and everything in it the cluster owner's.
    func giveToOwner(_ path: String) throws {
        try server.give([path], recursive: true)
    }

    /// One SQL statement through psql; returns its unaligned output.
    @discardableResult
    func sql(_ statement: String) throws -> String {
        let result = try blockingShell("\(binDirectory)/psql", ["-h", socket, "-p", "\(port)", "-U", "postgres", "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement])
        guard result.status == 0 else { throw ClusterError(message: "psql \(statement): \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `pg_ctl start`; the server's log in the error when it does not come up.
    func startServer(waitSeconds: Int = 60) async throws {
        let started = try await server.start(waitSeconds: waitSeconds)
        guard started.succeeded else {
            throw ClusterError(message: "pg_ctl start failed (\(started.statusText)): \(started.stdout) \(started.stderr) \(server.logTail(2000))")
        }
    }

    /// `pg_ctl stop -m fast`.
    func stopServer() async throws {
        let stopped = try await server.stop(mode: "fast", waitSeconds: 60)
        guard stopped.succeeded else { throw ClusterError(message: "pg_ctl stop failed (\(stopped.statusText)): \(stopped.stdout) \(stopped.stderr)") }
    }

    fileprivate func start(settings: String, initdbArguments: [String]) async throws {
        try server.makeDirectories(socketMode: 0o755)
        // With what `prepare` put there: the pgbackd copy, its configuration, the spool.
        try giveToOwner(base)
        let initdb = try await server.initdb(initdbArguments)
        guard initdb.succeeded else { throw ClusterError(message: "initdb failed: \(initdb.stderr)") }
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
        try await startServer()
    }

    fileprivate func stopAndRemove() async {
        if FileManager.default.fileExists(atPath: "\(data)/postmaster.pid") {
            _ = try? await server.stop(mode: "fast", waitSeconds: 60)
        }
        server.remove()
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
        try await cluster.start(settings: settings(cluster), initdbArguments: initdbArguments)
        let result = try await body(cluster)
        await cluster.stopAndRemove()
        return result
    } catch {
        await cluster.stopAndRemove()
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
            \(TestServices.encryptionTOML)
            """.write(toFile: "\(cluster.base)/pgbackd.toml", atomically: true, encoding: .utf8)
        chmod("\(cluster.base)/pgbackd.toml", 0o644)
        try FileManager.default.createDirectory(atPath: "\(cluster.base)/spool", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
    }) { cluster in
        try await body(cluster, PITRHarness(cluster: cluster, binDirectory: binDirectory))
    }
}
