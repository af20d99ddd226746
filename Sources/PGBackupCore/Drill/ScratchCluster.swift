import Foundation
import Logging
import PGBackdSupport
import PostgresClient

/// A throw-away PostgreSQL cluster of a chosen major (initdb'ed under `drill.staging_dir`) for an
/// upgrade drill: a logical backup of an older major restored into a newer one answers the
/// question every operator has before `pg_upgrade` or a dump-and-restore upgrade, "does all of
/// it restore there?". It listens on a private socket only (trust is safe there), never
/// archives, and is stopped and removed when the drill ends.
struct ScratchCluster {
    let major: Int
    /// As root the server runs as `postgres`, as initdb and postgres insist.
    let cluster: PostgresCluster
    /// Held while the drill runs: a killed drill's cluster is stopped and removed by the next.
    let lock: ClusterDirectoryLock

    var binDirectory: String { cluster.binDirectory }
    var base: String { cluster.base }
    var conninfo: String { "host=\(Conninfo.quote(cluster.socket)) port=\(PostgresCluster.port) user=postgres dbname=postgres" }

    /// initdb and start; the programs are `major`'s, from `configured` (`drill.bin_dir`) or the
    /// installs ``PostgresInstalls`` finds.
    static func start(major: Int, configured: String?, stagingDirectory: String, drillId: String, logger: Logger) async throws -> ScratchCluster {
        let initdb = try await PostgresInstalls.program("initdb", forServerMajor: major, configured: configured, setting: "drill.bin_dir")
        let cluster = PostgresCluster(base: stagingDirectory + "/pgbackd-scratch-\(drillId)", binDirectory: (initdb as NSString).deletingLastPathComponent,
                                      logger: logger)
        let lock = try ClusterDirectoryLock.create(base: cluster.base)
        do {
            try stagingStep { () throws(PostgresClusterError) in try cluster.makeDirectories() }
        } catch {
            lock.removeDirectory()
            lock.release()
            throw error
        }
        let scratch = ScratchCluster(major: major, cluster: cluster, lock: lock)
        do {
            let made = try await cluster.initdb()
            guard made.succeeded else {
                throw BackupError(.failed, message: "initdb of the PostgreSQL \(major) scratch cluster failed (\(made.statusText)): \(made.stderr.split(separator: "\n").suffix(3).joined(separator: " / "))")
            }
            let started = try await cluster.start(settings: ["listen_addresses=", "unix_socket_directories=\(cluster.socket)", "port=\(PostgresCluster.port)",
                                                             "archive_mode=off", "jit=off", "fsync=off", "full_page_writes=off", "synchronous_commit=off"])
            guard started.succeeded else {
                throw BackupError(.failed, message: "the PostgreSQL \(major) scratch cluster did not start (\(started.statusText)): \(cluster.logTail(500))")
            }
            logger.info("scratch cluster started", metadata: ["drill.scratch_major": "\(major)", "drill.scratch_dir": "\(cluster.base)"])
            return scratch
        } catch {
            scratch.stop()
            throw error
        }
    }

    /// Stops the server at once and removes everything; synchronous, so it also runs in a
    /// `defer` on every way out of a drill.
    func stop(keep: Bool = false) {
        cluster.stopImmediately()
        if keep { lock.markKept() } else { lock.removeDirectory() }
        lock.release()
    }
}

/// A throw-away cluster's directory that cannot be made or given to its owner: a staging failure
/// (drill.staging_dir), as the exit codes tell it.
func stagingStep(_ step: () throws(PostgresClusterError) -> Void) throws(StagingError) {
    do throws(PostgresClusterError) {
        try step()
    } catch {
        throw StagingError(message: error.message)
    }
}
