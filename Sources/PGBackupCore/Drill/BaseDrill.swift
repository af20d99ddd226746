import Foundation
import Logging
import PGBackdSupport
import PostgresClient

/// A drill of a base backup: a point-in-time restore into a throw-away cluster — the restored
/// data directory itself, no initdb — recovered from the WAL archive to the end of the backup
/// and promoted, then the same data checks as a logical drill in every database. Before them it
/// looks inside (``PageChecks``): the files against pg_basebackup's manifest before the server
/// starts, page checksums and amcheck once recovered. A base backup
/// has no snapshot row counts (the copy is consistent only at its stop LSN, where nothing was
/// counted), so the foreign keys checked are the restored catalog's own, and `wal` says whether
/// the archive can take this backup on to the newest WAL.
struct BaseDrill {
    let configuration: Configuration
    let repository: Repository
    let logger: Logger

    func run(_ manifest: Manifest, drillId: String, startedAt: Date, keep: Bool) async throws -> DrillReport {
        guard let wal = manifest.wal else {
            throw RepositoryError(.corruptManifest, message: "base backup \(manifest.backupId) has no WAL range in its manifest")
        }
        // The server programs of the backup's own major, found before anything is restored.
        let pgCtlPath = try await PostgresInstalls.program("pg_ctl", forServerMajor: manifest.server.versionNumber / 10_000,
                                                           configured: configuration.drill.binDirectory ?? configuration.postgres.binDirectory,
                                                           setting: configuration.drill.binDirectory == nil ? "postgres.bin_dir" : "drill.bin_dir")
        let binDirectory = (pgCtlPath as NSString).deletingLastPathComponent
        let cluster = PostgresCluster(base: configuration.drill.stagingDirectory + "/pgbackd-drill-\(drillId)", binDirectory: binDirectory, logger: logger)
        let base = cluster.base, data = cluster.data, socket = cluster.socket, owner = cluster.owner
        var lock: ClusterDirectoryLock?
        defer {
            if keep { lock?.markKept() } else if let lock { lock.removeDirectory() } else { cluster.remove() }
            lock?.release()
        }
        lock = try ClusterDirectoryLock.create(base: base)
        try stagingStep { () throws(PostgresClusterError) in try cluster.makeDirectories() }
        // Our own pg_hba.conf: the socket directory is private to the owner, so trust is safe,
        // and the backed-up cluster's rules (or none, on Debian's /etc layout) do not apply.
        try "local all all trust\n".write(toFile: base + "/pg_hba.conf", atomically: true, encoding: .utf8)
        try stagingStep { () throws(PostgresClusterError) in try cluster.give([base + "/pg_hba.conf"]) }

        var checks: [CheckResult] = []
        let restoreStarted = Date()
        do {
            _ = try await PointInTimeRestore(configuration: configuration, repository: repository, logger: logger).run(.init(
                backup: manifest.backupId, dataDirectory: data, target: .immediate, promote: true, owner: owner,
                executable: PGBackd.executablePath, configFile: URL(fileURLWithPath: configuration.file).standardizedFileURL.path,
                extraSettings: [
                    ("port", "5432"), ("listen_addresses", ""), ("unix_socket_directories", socket), ("hba_file", base + "/pg_hba.conf"),
                    // Never archive into the repository the backup came from; no JIT (the service
                    // runs with MemoryDenyWriteExecute=).
                    ("archive_mode", "off"), ("jit", "off"),
                ]))
            checks.append(CheckResult(name: "artifacts", passed: true, summary: "base.tar.gz: size, SHA-256 and gzip stream match the manifest"))
        } catch let error as IntegrityError {
            checks.append(CheckResult(name: "artifacts", passed: false, summary: error.message, evidence: [["object": error.key, "problem": error.code.description]]))
            return report(manifest, drillId: drillId, startedAt: startedAt, checks: checks, databases: [])
        }
        let timeout = configuration.drill.checkTimeoutSeconds
        let pageChecks = PageChecks(binDirectory: binDirectory, owner: owner, timeoutSeconds: timeout, jobs: configuration.drill.jobs, logger: logger)
        // Before anything is added or the server starts: the manifest describes the files as
        // pg_basebackup sent them, and WAL replay changes them.
        checks.append(try await pageChecks.verifyBackup(dataDirectory: data))
        let checksumsEnabled = try await pageChecks.checksumsEnabled(dataDirectory: data)
        // A postgresql.conf lives in /etc on Debian, not in the data directory: give it an empty one.
        if !FileManager.default.fileExists(atPath: data + "/postgresql.conf") {
            try "".write(toFile: data + "/postgresql.conf", atomically: true, encoding: .utf8)
            try stagingStep { () throws(PostgresClusterError) in try cluster.give([data + "/postgresql.conf"]) }
        }

        let start = try await cluster.start(waitSeconds: timeout)
        // Synchronous on purpose: the cluster must be gone whichever way the drill ends.
        defer { cluster.stopImmediately() }
        let log = { cluster.logTail(2000) }
        guard start.succeeded else {
            checks.append(CheckResult(name: "recovery", passed: false, summary: "the restored cluster did not start (\(start.statusText))", evidence: [["postgres.log": log()]]))
            return report(manifest, drillId: drillId, startedAt: startedAt, checks: checks, databases: [])
        }
        let user = (try? Conninfo(configuration.postgres.conninfo))?.settings["user"] ?? "postgres"
        let conninfo = { (database: String) in "host=\(socket) port=5432 user=\(Conninfo.quote(user)) dbname=\(Conninfo.quote(database))" }
        var connection = try await PostgresConnection.connect(conninfo: conninfo("postgres"), logger: logger)
        var promoted = false
        for _ in 0..<(timeout * 10) {
            if try await connection.query("select pg_is_in_recovery()").scalar == "f" { promoted = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let restoreSeconds = Date().timeIntervalSince(restoreStarted)
        checks.append(CheckResult(
            name: "recovery", passed: promoted,
            summary: promoted ? "recovered from the WAL archive to the end of the backup (\(wal.stopLSN)) and promoted in \(String(format: "%.1f", restoreSeconds)) s"
                : "recovery did not finish within drill.check_timeout_seconds (\(timeout) s)",
            evidence: promoted ? [] : [["postgres.log": log()]]))
        checks.append(await walCoverage(manifest))
        guard promoted else { return report(manifest, drillId: drillId, startedAt: startedAt, checks: checks, databases: []) }

        // Data checksums on the recovered cluster, stopped cleanly: pg_checksums refuses a data
        // directory whose pg_control says it runs (a base backup's does), and a page torn while
        // pg_basebackup copied it is only whole again after WAL replay.
        switch (checksumsEnabled, pageChecks.program("pg_checksums")) {
        case (nil, _):
            checks.append(PageChecks.skipped("checksums", "pg_controldata in \(binDirectory) could not tell whether data checksums are on"))
        case (false?, _):
            checks.append(CheckResult(name: "checksums", passed: true, summary: "data checksums are off in this cluster (initdb --data-checksums turns them on): no page checksum to verify",
                                      figures: ["enabled": 0]))
        case (true?, nil):
            checks.append(PageChecks.skipped("checksums", "data checksums are on, but there is no pg_checksums in \(binDirectory)"))
        case (true?, let program?):
            let stop = try await cluster.stop(mode: "fast", waitSeconds: timeout)
            guard stop.succeeded else {
                checks.append(CheckResult(name: "checksums", passed: false, summary: "the recovered cluster did not stop cleanly for pg_checksums (\(stop.statusText))", evidence: [["postgres.log": log()]]))
                return report(manifest, drillId: drillId, startedAt: startedAt, checks: checks, databases: [])
            }
            var result = try await pageChecks.checksums(dataDirectory: data, program: program)
            let restart = try await cluster.start(waitSeconds: timeout)
            guard restart.succeeded else {
                checks.append(result)
                checks.append(CheckResult(name: "restart", passed: false, summary: "the recovered cluster did not start again after pg_checksums (\(restart.statusText))", evidence: [["postgres.log": log()]]))
                return report(manifest, drillId: drillId, startedAt: startedAt, checks: checks, databases: [])
            }
            connection = try await PostgresConnection.connect(conninfo: conninfo("postgres"), logger: logger)
            if !result.passed {
                result.evidence = await PageChecks.nameRelations(result.evidence, connect: { try await PostgresConnection.connect(conninfo: conninfo($0), logger: logger) },
                                                                catalog: connection)
            }
            checks.append(result)
        }

        let names = try await connection.query("select datname from pg_database where datallowconn and not datistemplate order by 1").rows.compactMap { $0[0] }
        // Heap and index structure in every database, templates included, before any data check
        // reads a damaged page. amcheck is installed where missing: the cluster is thrown away.
        if let program = pageChecks.program("pg_amcheck") {
            let superuser = try await connection.query("select rolname from pg_catalog.pg_roles where oid = 10").scalar ?? user
            let all = try await connection.query("select datname from pg_database where datallowconn").rows.compactMap { $0[0] }
            checks.append(try await pageChecks.amcheck(
                arguments: ["--host", socket, "--port", "5432", "--username", superuser, "--maintenance-db", names.contains("postgres") ? "postgres" : names.first ?? "template1",
                            "--all", "--install-missing"],
                environment: [:], databaseNames: Dictionary(all.map { ($0, $0) }, uniquingKeysWith: { first, _ in first }), program: program))
        } else {
            checks.append(PageChecks.skipped("amcheck", "no pg_amcheck in \(binDirectory) (it exists from PostgreSQL 14)"))
        }
        var sessions: [(name: String, connection: PostgresConnection)] = []
        var tables: [String: Set<String>] = [:]
        for name in names {
            let database = try await PostgresConnection.connect(conninfo: conninfo(name), logger: logger)
            try await database.query("set statement_timeout = '\(timeout)s'")
            try await SnapshotCatalog.pinSessionSettings(database)
            tables[name] = Set(try await database.query(SnapshotCatalog.dumpedTables).rows.compactMap { row in row[0].flatMap { schema in row[1].map { "\(schema).\($0)" } } })
            sessions.append((name, database))
        }
        var databases: [DrillReport.DatabaseDrill] = []
        for (name, database) in sessions {
            let checkStarted = Date()
            var results = [try await ReferentialCheck(connection: database, expected: SnapshotCatalog.foreignKeys(database)).run()]
            if let contentSize = try await ContentSizeCheck(connection: database, rules: configuration.checks.contentSize).run(database: name, tablesInBackup: tables) {
                results.append(contentSize)
            }
            try await database.query("reset search_path")
            for check in configuration.checks.sql where check.database == nil || check.database == name {
                results.append(try await UserSQLCheck(connection: database, check: check).run())
            }
            databases.append(DrillReport.DatabaseDrill(name: name, scratchDatabase: data, kept: keep, restoreSeconds: restoreSeconds,
                                                       checkSeconds: Date().timeIntervalSince(checkStarted), checks: results))
        }
        return report(manifest, drillId: drillId, startedAt: startedAt, checks: checks, databases: databases)
    }

    /// Whether the archive holds every segment from this backup's start to the newest one.
    private func walCoverage(_ manifest: Manifest) async -> CheckResult {
        do {
            let check = try await WALCheck(repository: repository).run()
            let coverage = check.backups.first { $0.backupId == manifest.backupId }
            let passed = coverage?.recoverableToLatest == true
            return CheckResult(name: "wal", passed: passed,
                               summary: passed ? "the archive can recover this backup to the newest archived WAL" : "WAL after this backup has gaps: recovery would stop early",
                               evidence: check.gaps.map { ["timeline": "\($0.timeline)", "gap": $0.description] })
        } catch {
            return CheckResult(name: "wal", passed: false, summary: "cannot list the WAL archive: \(error)")
        }
    }

    private func report(_ manifest: Manifest, drillId: String, startedAt: Date, checks: [CheckResult], databases: [DrillReport.DatabaseDrill]) -> DrillReport {
        DrillReport(drillId: drillId, backupId: manifest.backupId, stanza: repository.stanza, host: ProcessInfo.processInfo.hostName,
                    startedAt: startedAt, finishedAt: Date(), passed: false, checks: checks, databases: databases)
    }
}
