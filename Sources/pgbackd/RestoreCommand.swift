import ArgumentParser
import Foundation
import Logging
import PGBackupCore

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a database from a logical backup, or a cluster to a point in time from a base backup.",
        discussion: """
            Logical: pgbackd restore [ID] --database NAME --target-db NEW restores one database \
            into a database on the configured server.

            Point in time: pgbackd restore [ID] --pgdata DIR [--time T | --lsn L | --xid X | \
            --immediate | --latest] [--promote] lays a base backup into an empty DIR, writes \
            recovery.signal and restore_command = 'pgbackd wal-fetch …' into postgresql.auto.conf; \
            start the server on DIR and it recovers from the WAL archive to the target. Without an \
            ID the newest base backup that finished before the target is used. --time takes what \
            recovery_target_time takes, e.g. '2026-11-25 09:00:00.5+00' (the output of select now()).
            """)

    @OptionGroup var common: CommonOptions

    @Argument(help: "Backup id, or 'latest'.")
    var backup: String = "latest"

    @Option(help: "Logical: the database in the backup to restore.")
    var database: String?

    @Option(name: .customLong("target-db"), help: "Logical: the database to restore into; created if missing.")
    var targetDatabase: String?

    @Option(help: "Logical: pg_restore parallel jobs (default: drill.jobs).")
    var jobs: Int?

    @Flag(help: "Logical: drop and recreate the target database if it is not empty.")
    var force = false

    @Flag(help: "Logical: also restore roles and tablespaces (globals.sql) first.")
    var globals = false

    @Flag(help: "Logical: make the connecting role own the restored objects.")
    var noOwner = false

    @Option(help: "Point in time: the empty (or new) data directory to restore into.")
    var pgdata: String?

    @Option(help: "Point in time: recover up to this time (recovery_target_time).")
    var time: String?

    @Option(help: "Point in time: recover up to this LSN, e.g. 0/3000060.")
    var lsn: String?

    @Option(help: "Point in time: recover up to this transaction id.")
    var xid: String?

    @Flag(help: "Point in time: stop as soon as the base backup is consistent.")
    var immediate = false

    @Flag(help: "Point in time: replay all archived WAL (the default without a target).")
    var latest = false

    @Flag(help: "Point in time: promote once the target is reached (default: pause, to inspect first).")
    var promote = false

    @Option(help: "Point in time, as root: the OS user that runs PostgreSQL and owns DIR (default postgres).")
    var owner: String?

    @Flag(help: "Print a JSON summary.")
    var json = false

    func validate() throws {
        let targets = [time != nil, lsn != nil, xid != nil, immediate, latest].filter { $0 }.count
        if pgdata == nil {
            guard database != nil, targetDatabase != nil else {
                throw ValidationError("give --database and --target-db to restore a logical backup, or --pgdata DIR for a point-in-time restore of a base backup")
            }
            if targets > 0 || promote || owner != nil {
                throw ValidationError("--time, --lsn, --xid, --immediate, --latest, --promote and --owner need --pgdata")
            }
        } else {
            if database != nil || targetDatabase != nil {
                throw ValidationError("--pgdata restores a whole cluster; --database and --target-db are for logical backups")
            }
            if targets > 1 { throw ValidationError("give at most one of --time, --lsn, --xid, --immediate, --latest") }
            if let lsn, WALPosition(lsn) == nil { throw ValidationError("--lsn \(lsn) is not an LSN like 0/3000060") }
        }
    }

    func run() async throws {
        try await runReportingErrors {
            let (configuration, logger, repository) = try await common.openRepository()
            if let pgdata {
                try await restorePointInTime(pgdata: pgdata, configuration: configuration, logger: logger, repository: repository)
                return
            }
            let request = LogicalRestore.Request(backup: backup, database: database!, target: targetDatabase!, jobs: jobs,
                                                 force: force, globals: globals, noOwner: noOwner)
            let restore = LogicalRestore(configuration: configuration, repository: repository, logger: logger)
            let result = try await withSignalCancellation { try await restore.run(request) }
            if json {
                try printJSON(result)
            } else {
                print("restored \(result.database) of \(result.backupId) into \(result.target): \(formatBytes(result.rawBytes)) in \(String(format: "%.1f", result.seconds)) s")
                for error in result.globalsErrors { print("  globals: \(error)") }
                for setting in result.settingsNotRestored { print("  not restored: \(setting)") }
            }
        }
    }

    private var recoveryTarget: RecoveryTarget {
        if let time { return .time(time) }
        if let lsn, let position = WALPosition(lsn) { return .lsn(position) }
        if let xid { return .xid(xid) }
        if immediate { return .immediate }
        return .latest
    }

    private func restorePointInTime(pgdata: String, configuration: Configuration, logger: Logger, repository: Repository) async throws {
        let absolute = URL(fileURLWithPath: pgdata).standardizedFileURL.path
        let request = PointInTimeRestore.Request(
            backup: backup, dataDirectory: absolute, target: recoveryTarget, promote: promote, owner: owner,
            executable: PGBackd.executablePath, configFile: URL(fileURLWithPath: configuration.file).standardizedFileURL.path)
        let restore = PointInTimeRestore(configuration: configuration, repository: repository, logger: logger)
        let result = try await withSignalCancellation { try await restore.run(request) }
        if json {
            try printJSON(result)
        } else {
            print("restored base backup \(result.backupId) into \(result.dataDirectory) (\(formatBytes(result.rawBytes)) in \(String(format: "%.1f", result.seconds)) s)")
            print("recovery target: \(result.target)")
            print("start the server on it (e.g. pg_ctl -D \(result.dataDirectory) start, as its owner); it fetches WAL with pgbackd wal-fetch and \(promote || recoveryTarget == .latest ? "promotes" : "pauses") at the target")
        }
    }
}
