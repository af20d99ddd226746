import Foundation
import Logging
import ObjectStorage
import PostgresClient
import Synchronization

/// `pgbackd drill`: restores a backup into scratch databases, checks what came back against the
/// manifest and the configured rules, stores a report beside the backup, and drops the scratch
/// databases again on every path (also when interrupted).
public struct Drill: Sendable {
    public struct Request: Sendable {
        public var backup: String
        public var databases: [String]
        public var keep: Bool
        /// An upgrade drill into a throw-away cluster of this major (`--scratch-major`); default
        /// `drill.scratch_major`.
        public var scratchMajor: Int?

        public init(backup: String = "latest", databases: [String] = [], keep: Bool = false, scratchMajor: Int? = nil) {
            self.backup = backup
            self.databases = databases
            self.keep = keep
            self.scratchMajor = scratchMajor
        }
    }

    let configuration: Configuration
    let repository: Repository
    let logger: Logger

    public init(configuration: Configuration, repository: Repository, logger: Logger) {
        self.configuration = configuration
        self.repository = repository
        self.logger = logger
    }

    public func run(_ request: Request) async throws -> DrillReport {
        try await BackupLease(repository: repository, purpose: "drill", logger: logger).withLease(resolving: request.backup) { backupId in
            try await runLeased(Request(backup: backupId, databases: request.databases, keep: request.keep, scratchMajor: request.scratchMajor))
        }
    }

    private func runLeased(_ request: Request) async throws -> DrillReport {
        let startedAt = Date()
        let manifest = try await repository.manifest(request.backup)
        let databases = request.databases.isEmpty ? manifest.databases.map(\.name) : request.databases
        let drillId = Self.drillID(startedAt)
        var logger = logger
        logger[metadataKey: "drill.id"] = "\(drillId)"
        logger[metadataKey: "backup.id"] = "\(manifest.backupId)"
        // Throw-away clusters of base and upgrade drills that were killed: their servers still
        // run. Any drill removes them (the daemon's drills are logical ones).
        ClusterDirectoryLock.removeAbandoned(in: configuration.drill.stagingDirectory, logger: logger)
        if manifest.kind == .base, request.scratchMajor != nil {
            throw RestoreError(code: .notABaseBackup, message: "\(manifest.backupId) is a base backup, which restores only into its own major (PostgreSQL \(manifest.server.versionNumber / 10_000)); an upgrade drill (--scratch-major) restores a logical backup")
        }
        if manifest.kind == .base {
            var report = try await BaseDrill(configuration: configuration, repository: repository, logger: logger)
                .run(manifest, drillId: drillId, startedAt: startedAt, keep: request.keep)
            // One restore and recovery of the whole cluster, which every database's entry shares.
            report.restoreSeconds = report.databases.first?.restoreSeconds
            if let limit = configuration.drill.maxRestoreSeconds, let seconds = report.restoreSeconds {
                report.checks.append(Self.restoreTime(seconds, limit: limit, databases: []))
            }
            report.settle()
            try await repository.storage.put(key: repository.drillReportKey(backupId: manifest.backupId, drillId: drillId), bytes: try report.encoded())
            logger.info(report.passed ? "drill passed" : "drill failed", metadata: ["drill.failed_checks": "\(report.failures.count)"])
            return report
        }
        let dumps = try databases.map { try LogicalRestore.dump(of: $0, in: manifest) }

        var cluster: ScratchCluster?
        if let major = request.scratchMajor ?? configuration.drill.scratchMajor {
            let sourceMajor = manifest.server.versionNumber / 10_000
            guard major >= sourceMajor else {
                throw RestoreError(code: .invalidTarget, message: "a backup of PostgreSQL \(sourceMajor) cannot be drilled into PostgreSQL \(major): choose --scratch-major \(sourceMajor) or newer")
            }
            cluster = try await ScratchCluster.start(major: major, configured: configuration.drill.binDirectory,
                                                     stagingDirectory: configuration.drill.stagingDirectory, drillId: drillId, logger: logger)
        }
        defer { cluster?.stop(keep: request.keep) }
        let server = try await drillServer(logger: logger, scratch: cluster)
        let scratch = ScratchDatabases(connection: server.connection, logger: logger)
        try await scratch.watchClient()
        _ = try await scratch.dropStale()

        var reportChecks: [CheckResult] = []
        if let globals = manifest.artifacts.first(where: { $0.content == .globals }) {
            var check = await verifyArtifact(globals)
            if manifest.rolePasswords == false {
                check.summary += "; roles without passwords (the backup role could not read pg_authid)"
                check.figures["role_passwords"] = 0
            }
            reportChecks.append(check)
        }
        if let rules = Self.rulesNamingOtherDatabases(configuration.checks, manifest: manifest) {
            reportChecks.append(rules)
        }
        let restorer = DumpRestorer(repository: repository, server: server, stagingDirectory: configuration.drill.stagingDirectory,
                                    jobs: configuration.drill.jobs, logger: logger)
        let hostExtensions = try await DrillHostExtensions.read(server.connection)
        let toastCompression = try await Self.scratchToastCompression(configuration, server: server)
        var results: [DrillReport.DatabaseDrill] = []
        for (index, dump) in dumps.enumerated() {
            let snapshot = manifest.databases.first { $0.name == dump.database }!
            let missing = hostExtensions.missing(snapshot.extensions ?? [:])
            guard missing.isEmpty else {
                logger.warning("the drill server lacks extensions this database uses; it cannot be verified here",
                               metadata: ["drill.database": "\(snapshot.name)", "drill.missing_extensions": "\(missing.joined(separator: ","))"])
                results.append(DrillReport.DatabaseDrill(name: snapshot.name, scratchDatabase: "", kept: false, restoreSeconds: 0, checkSeconds: 0,
                                                         checks: [hostExtensions.unverifiable(missing, versions: snapshot.extensions ?? [:])]))
                continue
            }
            let name = try await scratch.create(drillId: drillId, index: index)
            do {
                results.append(try await drill(snapshot, of: manifest, dump: dump, scratchName: name, restorer: restorer, server: server,
                                               toastCompression: toastCompression, keep: request.keep, logger: logger))
                if request.keep {
                    try await scratch.keep(name, drillId: drillId, backupId: manifest.backupId)
                } else {
                    try await scratch.drop(name)
                }
            } catch {
                try? await scratch.drop(name)
                throw error
            }
        }

        // Once more at the end: a drill killed while its backend ran CREATE DATABASE leaves a
        // database that appears only when that statement ends, which may be after the sweep at
        // the start (the kill suite saw it).
        let late = (try? await scratch.dropStale()) ?? []
        if !late.isEmpty { logger.notice("dropped scratch databases that appeared during the drill", metadata: ["drill.scratch": "\(late)"]) }

        let restoreSeconds = results.reduce(0) { $0 + $1.restoreSeconds }
        if let limit = configuration.drill.maxRestoreSeconds {
            reportChecks.append(Self.restoreTime(restoreSeconds, limit: limit, databases: results))
        }
        var report = DrillReport(drillId: drillId, backupId: manifest.backupId, stanza: repository.stanza, host: ProcessInfo.processInfo.hostName,
                                 startedAt: startedAt, finishedAt: Date(), passed: false, checks: reportChecks, databases: results,
                                 restoreSeconds: restoreSeconds,
                                 servers: .init(source: manifest.server.versionNumber, scratch: server.info.versionNumber))
        report.settle()
        try await repository.storage.put(key: repository.drillReportKey(backupId: manifest.backupId, drillId: drillId), bytes: try report.encoded())
        logger.info(report.passed ? "drill passed" : "drill failed", metadata: ["drill.failed_checks": "\(report.failures.count)"])
        return report
    }

    /// The server scratch databases are made on: a throw-away cluster of an upgrade drill, else
    /// `drill.conninfo`, else the backed-up one. Its programs come from `drill.bin_dir`, else
    /// `postgres.bin_dir` when it is the backed-up server, else the installs found.
    private func drillServer(logger: Logger, scratch: ScratchCluster? = nil) async throws -> PostgresServer {
        try await PostgresServer.connect(Self.drillServerConfiguration(configuration, scratch: scratch), logger: logger)
    }

    static func drillServerConfiguration(_ configuration: Configuration, scratch: ScratchCluster? = nil) -> PostgresConfiguration {
        var postgres = PostgresConfiguration(conninfo: configuration.drill.conninfo ?? configuration.postgres.conninfo,
                                             binDirectory: configuration.drill.binDirectory ?? (configuration.drill.conninfo == nil ? configuration.postgres.binDirectory : nil),
                                             conninfoSetting: configuration.drill.conninfo == nil ? "postgres.conninfo (drill.conninfo is not set)" : "drill.conninfo")
        if configuration.drill.binDirectory != nil { postgres.binDirectorySetting = "drill.bin_dir" }
        if let scratch {
            postgres = PostgresConfiguration(conninfo: scratch.conninfo, binDirectory: scratch.binDirectory,
                                             conninfoSetting: "the PostgreSQL \(scratch.major) scratch cluster in \(scratch.base)")
            postgres.binDirectorySetting = "drill.bin_dir"
        }
        return postgres
    }

    /// Scratch databases on the drill server: those `--keep` kept, and any a running drill uses.
    public func scratchDatabases() async throws -> [KeptScratchDatabase] {
        try await ScratchDatabases(connection: try await drillServer(logger: logger).connection, logger: logger).all()
    }

    /// Drops the scratch databases drills kept; returns their names.
    public func dropKeptScratchDatabases() async throws -> [String] {
        try await ScratchDatabases(connection: try await drillServer(logger: logger).connection, logger: logger).dropKept()
    }

    /// Gives the scratch database the source database's settings (`ALTER DATABASE … SET`,
    /// `ALTER ROLE … IN DATABASE … SET`) before any check connects, and proves they read back:
    /// user checks then see the database as its application does. Owner, privileges and comment
    /// are `pgbackd restore`'s to restore; a drill restores without owners.
    private func restoreSettings(_ properties: DatabaseProperties, scratch: String, server: PostgresServer) async throws -> CheckResult {
        let roles = Set(try await server.connection.query("select rolname::text from pg_catalog.pg_roles").rows.compactMap { $0[0] })
        let (statements, skipped) = try await properties.statements(for: scratch, parts: .settings, existingRoles: roles, server.connection)
        var evidence: [[String: String]] = []
        var refused: [String] = []
        for sql in statements {
            do {
                try await server.connection.query(sql)
            } catch let error as PostgresError where error.sqlState == "42501" {
                // A setting only a superuser may make (another role's, a superuser-only
                // parameter): the drill role's limits, not the backup's fault.
                refused.append(sql)
            } catch let error as PostgresError {
                evidence.append(["statement": sql, "problem": error.message])
            }
        }
        if evidence.isEmpty, refused.isEmpty, let restored = try await DatabaseProperties.read(database: scratch, server.connection) {
            if restored.settings.sorted() != properties.settings.sorted() {
                evidence.append(["problem": "database settings differ", "snapshot": properties.settings.joined(separator: "; "), "restored": restored.settings.joined(separator: "; ")])
            }
            let wanted = properties.roleSettings.filter { roles.contains($0.role) }
            if restored.roleSettings.map({ "\($0.role): \($0.settings.sorted())" }).sorted() != wanted.map({ "\($0.role): \($0.settings.sorted())" }).sorted() {
                evidence.append(["problem": "role settings in the database differ",
                                 "snapshot": wanted.map { "\($0.role): \($0.settings.joined(separator: ", "))" }.joined(separator: "; "),
                                 "restored": restored.roleSettings.map { "\($0.role): \($0.settings.joined(separator: ", "))" }.joined(separator: "; ")])
            }
        }
        let count = properties.settings.count + properties.roleSettings.reduce(0) { $0 + $1.settings.count }
        var summary = evidence.isEmpty ? "\(statements.count - refused.count) database and role setting(s) restored and read back" : "\(evidence.count) setting problem(s)"
        if !skipped.isEmpty { summary += "; not applied, no such role on the drill server: \(skipped.joined(separator: "; "))" }
        if !refused.isEmpty { summary += "; not applied, the drill role may not: \(refused.joined(separator: "; "))" }
        summary += "; owner \(properties.owner), privileges and comment are restored by pgbackd restore"
        return CheckResult(name: "database-properties", passed: evidence.isEmpty, summary: summary,
                           figures: ["settings": Int64(count), "skipped_roles": Int64(skipped.count), "refused": Int64(refused.count)], evidence: evidence)
    }

    /// One check (or a few that belong together) for ``runChecks(_:sessions:conninfo:timeout:logger:)``.
    struct CheckJob: Sendable {
        /// Where its results go in the report.
        var order: Int
        /// A rough rank of its cost, the costliest taken first.
        var cost: Int
        /// A user's query: it runs with the database's own `search_path`, not the pinned one.
        var userQuery = false
        var run: @Sendable (PostgresConnection) async throws -> [CheckResult]
    }

    /// The jobs not yet taken, costliest first, shared by the sessions.
    final class CheckQueue: Sendable {
        private let jobs: Mutex<[CheckJob]>
        init(_ jobs: [CheckJob]) { self.jobs = Mutex(jobs) }
        func next() -> CheckJob? { jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() } }
    }

    /// Runs `jobs` on up to `sessions` connections at once, each session taking the costliest
    /// job left; returns the results in the jobs' `order`. Every session pins its settings
    /// (``SnapshotCatalog/pinSessionSettings(_:)``: row security off); for a user's query only
    /// `search_path` is reset, so it sees the database as its application does (its `ALTER
    /// DATABASE/ROLE … SET`), and a query row security would filter fails rather than pass on
    /// part of the rows.
    static func runChecks(_ jobs: [CheckJob], sessions: Int, conninfo: String, timeout: Int, logger: Logger) async throws -> [CheckResult] {
        let queue = CheckQueue(jobs.sorted { ($0.cost, -$0.order) > ($1.cost, -$1.order) })
        let done = try await withThrowingTaskGroup(of: [(Int, [CheckResult])].self) { group in
            for _ in 0..<min(max(sessions, 1), jobs.count) {
                group.addTask {
                    let connection = try await PostgresConnection.connect(conninfo: conninfo, logger: logger)
                    try await connection.query("set statement_timeout = '\(timeout)s'")
                    try await SnapshotCatalog.pinSessionSettings(connection)
                    var pinned = true
                    var results: [(Int, [CheckResult])] = []
                    while let job = queue.next() {
                        if job.userQuery, pinned {
                            try await connection.query("reset search_path")
                            pinned = false
                        } else if !job.userQuery, !pinned {
                            try await SnapshotCatalog.pinSessionSettings(connection)
                            pinned = true
                        }
                        results.append((job.order, try await job.run(connection)))
                    }
                    return results
                }
            }
            var all: [(Int, [CheckResult])] = []
            for try await part in group { all += part }
            return all
        }
        return done.sorted { $0.0 < $1.0 }.flatMap(\.1)
    }

    /// pg_restore's verdict. Each failure names the object it was creating; in an upgrade drill
    /// (a newer scratch major) the summary says these objects do not restore on that major.
    static func restoreCheck(_ outcome: DumpRestorer.Outcome, jobs: Int, sourceMajor: Int, scratchMajor: Int, toastCompression: String? = nil) -> CheckResult {
        guard !outcome.succeeded else {
            let toast = toastCompression.map { " (TOAST compressed with \($0) in the scratch database)" } ?? ""
            return CheckResult(name: "restore", passed: true, summary: "pg_restore -j \(jobs) finished cleanly in \(String(format: "%.1f", outcome.seconds)) s\(toast)")
        }
        let named = outcome.failures.filter { $0.object != nil }
        var summary = "pg_restore reported \(outcome.errors.count) error(s) (\(outcome.status))"
        if scratchMajor > sourceMajor, !named.isEmpty {
            let objects = named.prefix(3).map { "\($0.object!) (\($0.error))" }.joined(separator: "; ")
            summary = "\(named.count) object(s) of PostgreSQL \(sourceMajor) do not restore on PostgreSQL \(scratchMajor): \(objects)\(named.count > 3 ? "; …" : "")"
        }
        let evidence = outcome.failures.isEmpty
            ? outcome.errors.prefix(100).map { ["pg_restore": $0] }
            : outcome.failures.prefix(100).map { failure in failure.object.map { ["object": $0, "error": failure.error] } ?? ["error": failure.error] }
        return CheckResult(name: "restore", passed: false, summary: summary, figures: ["errors": Int64(outcome.errors.count)], evidence: evidence)
    }

    /// `lz4` when the drill may restore TOAST with it (``DrillConfiguration/toastCompression``):
    /// configured so, the scratch server has lz4 (PostgreSQL 14+ built with it), and no check
    /// measures stored sizes, which lz4 would change.
    static func scratchToastCompression(_ configuration: Configuration, server: PostgresServer) async throws -> String? {
        guard configuration.drill.toastCompression == .lz4, !measuresStoredSizes(configuration.checks) else { return nil }
        let offered = try await server.connection.query(
            "select 'lz4' = any(enumvals) from pg_catalog.pg_settings where name = 'default_toast_compression'").scalar
        return offered == "t" ? "lz4" : nil
    }

    /// A check whose verdict depends on how values are stored, not on the values.
    static func measuresStoredSizes(_ checks: ChecksConfiguration) -> Bool {
        let sizeFunctions = ["pg_column_size", "pg_relation_size", "pg_table_size", "pg_total_relation_size", "pg_indexes_size", "pg_database_size"]
        return checks.contentSize.contains { $0.measure == .pgColumnSize }
            || checks.sql.contains { check in sizeFunctions.contains { check.query.lowercased().contains($0) } }
    }

    /// The recovery time objective as a check: a restore slower than `drill.max_restore_seconds`
    /// is news an operator wants before an outage, not during one.
    static func restoreTime(_ seconds: Double, limit: Int, databases: [DrillReport.DatabaseDrill]) -> CheckResult {
        let passed = seconds <= Double(limit)
        let text = String(format: "%.1f", seconds)
        return CheckResult(name: "restore-time", passed: passed,
                           summary: passed ? "restored in \(text) s, within drill.max_restore_seconds (\(limit) s)"
                                           : "restored in \(text) s, over drill.max_restore_seconds (\(limit) s): the recovery time objective slipped",
                           figures: ["restore_milliseconds": Int64(seconds * 1000), "max_restore_seconds": Int64(limit)],
                           evidence: passed ? [] : databases.map { ["database": $0.name, "restore_seconds": String(format: "%.1f", $0.restoreSeconds)] })
    }

    /// A rule or SQL check for a database the backup does not hold would never run: it names
    /// nothing real, which is a failed check, not a silent pass.
    static func rulesNamingOtherDatabases(_ checks: ChecksConfiguration, manifest: Manifest) -> CheckResult? {
        let held = Set(manifest.databases.map(\.name))
        var evidence: [[String: String]] = []
        for rule in checks.contentSize {
            if let database = rule.database, !held.contains(database) {
                evidence.append(["rule": ContentSizeCheck.describe(rule), "problem": "database \(database) is not in the backup"])
            }
        }
        for check in checks.sql {
            if let database = check.database, !held.contains(database) {
                evidence.append(["check": "sql:\(check.name)", "problem": "database \(database) is not in the backup"])
            }
        }
        guard !evidence.isEmpty else { return nil }
        return CheckResult(name: "configuration", passed: false,
                           summary: "\(evidence.count) check(s) name a database the backup does not hold (it holds \(held.sorted().joined(separator: ", ")))",
                           evidence: evidence)
    }

    static func drillID(_ date: Date) -> String {
        let id = Repository.formatBackupID(date, kind: .logical).replacingOccurrences(of: "-logical", with: "")
        return id + "-" + String(UInt16.random(in: 0...UInt16.max), radix: 16).leftPadded(to: 4)
    }

    private func verifyArtifact(_ artifact: Artifact) async -> CheckResult {
        do {
            _ = try await ArtifactVerifier(repository: repository).verify(artifact)
            return CheckResult(name: "artifacts", passed: true, summary: "\(artifact.key): size, SHA-256 and gzip stream match the manifest")
        } catch {
            return CheckResult(name: "artifacts", passed: false, summary: "\(error)", evidence: [["object": artifact.key]])
        }
    }

    private func drill(_ snapshot: DatabaseSnapshot, of manifest: Manifest, dump: Artifact, scratchName: String, restorer: DumpRestorer,
                       server: PostgresServer, toastCompression: String?, keep: Bool, logger: Logger) async throws -> DrillReport.DatabaseDrill {
        var checks: [CheckResult] = []
        let restoreStarted = Date()
        var restoreSeconds = 0.0
        var foreignKeysBeforeTheirRun: Set<String>?
        do {
            let outcome = try await restorer.restore(dump, into: scratchName, options: .init(noOwner: true, exitOnError: false, recordForeignKeys: true,
                                                                                           toastCompression: toastCompression))
            foreignKeysBeforeTheirRun = outcome.foreignKeysBeforeTheirRun
            restoreSeconds = Date().timeIntervalSince(restoreStarted)
            checks.append(CheckResult(name: "artifacts", passed: true, summary: "\(dump.key): size, SHA-256 and gzip stream match the manifest",
                                      figures: ["stored_bytes": dump.storedSize, "raw_bytes": dump.rawSize]))
            checks.append(Self.restoreCheck(outcome, jobs: configuration.drill.jobs, sourceMajor: manifest.server.versionNumber / 10_000,
                                            scratchMajor: server.info.versionNumber / 10_000, toastCompression: toastCompression))
        } catch let error as IntegrityError {
            checks.append(CheckResult(name: "artifacts", passed: false, summary: error.message, evidence: [["object": error.key, "problem": error.code.description]]))
            return DrillReport.DatabaseDrill(name: snapshot.name, scratchDatabase: scratchName, kept: keep, restoreSeconds: 0, checkSeconds: 0, checks: checks)
        }
        if let properties = snapshot.properties {
            checks.append(try await restoreSettings(properties, scratch: scratchName, server: server))
        }
        checks += try await amcheckScratch(scratchName, database: snapshot.name, server: server, logger: logger)

        // Two sessions check at once, each taking the next check from one queue, the costliest
        // first (those that read every row's content): both cores (and the server's) work until
        // the last check is done. The report lists the checks in their usual order.
        let checkStarted = Date()
        let conninfo = server.conninfo.with(database: scratchName)
        let keysBefore = foreignKeysBeforeTheirRun
        let rules = configuration.checks
        let tablesInBackup = Dictionary(manifest.databases.map { ($0.name, Set($0.rowCounts.keys)) }, uniquingKeysWith: { first, _ in first })
        var jobs = [
            CheckJob(order: 0, cost: 2) { connection in
                [try await ReferentialCheck(connection: connection, expected: snapshot.foreignKeys, foreignKeysBeforeTheirRun: keysBefore).run()]
            },
            CheckJob(order: 1, cost: 3) { connection in
                [try await SnapshotComparisonChecks.rowCounts(connection, expected: snapshot.rowCounts, largeObjects: snapshot.largeObjects)]
            },
            CheckJob(order: 2, cost: 5) { connection in
                (try await ContentSizeCheck(connection: connection, rules: rules.contentSize).run(database: snapshot.name, tablesInBackup: tablesInBackup)).map { [$0] } ?? []
            },
            CheckJob(order: 3, cost: 1) { connection in
                [try await SnapshotComparisonChecks.objects(connection, expected: snapshot.objects)]
            },
        ]
        for (index, check) in rules.sql.enumerated() where check.database == nil || check.database == snapshot.name {
            jobs.append(CheckJob(order: 4 + index, cost: 4, userQuery: true) { connection in
                [try await UserSQLCheck(connection: connection, check: check).run()]
            })
        }
        checks += try await Self.runChecks(jobs, sessions: 2, conninfo: conninfo, timeout: configuration.drill.checkTimeoutSeconds, logger: logger)
        return DrillReport.DatabaseDrill(name: snapshot.name, scratchDatabase: scratchName, kept: keep, restoreSeconds: restoreSeconds,
                                         checkSeconds: Date().timeIntervalSince(checkStarted), checks: checks)
    }
}

extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
