import Foundation
import Logging
import ObjectStorage
import PostgresClient

/// `pgbackd drill`: restores a backup into scratch databases, checks what came back against the
/// manifest and the configured rules, stores a report beside the backup, and drops the scratch
/// databases again on every path (also when interrupted).
public struct Drill: Sendable {
    public struct Request: Sendable {
        public var backup: String
        public var databases: [String]
        public var keep: Bool

        public init(backup: String = "latest", databases: [String] = [], keep: Bool = false) {
            self.backup = backup
            self.databases = databases
            self.keep = keep
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
            try await runLeased(Request(backup: backupId, databases: request.databases, keep: request.keep))
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
        if manifest.kind == .base {
            var report = try await BaseDrill(configuration: configuration, repository: repository, logger: logger)
                .run(manifest, drillId: drillId, startedAt: startedAt, keep: request.keep)
            report.passed = report.failures.isEmpty
            try await repository.storage.put(key: repository.drillReportKey(backupId: manifest.backupId, drillId: drillId), bytes: try report.encoded())
            logger.info(report.passed ? "drill passed" : "drill failed", metadata: ["drill.failed_checks": "\(report.failures.count)"])
            return report
        }
        let dumps = try databases.map { try LogicalRestore.dump(of: $0, in: manifest) }

        let server = try await PostgresServer.connect(
            PostgresConfiguration(conninfo: configuration.drill.conninfo ?? configuration.postgres.conninfo, binDirectory: configuration.postgres.binDirectory),
            logger: logger)
        let scratch = ScratchDatabases(connection: server.connection, logger: logger)
        _ = try await scratch.dropStale()

        var reportChecks: [CheckResult] = []
        if let globals = manifest.artifacts.first(where: { $0.content == .globals }) {
            reportChecks.append(await verifyArtifact(globals))
        }
        let restorer = DumpRestorer(repository: repository, server: server, stagingDirectory: configuration.drill.stagingDirectory,
                                    jobs: configuration.drill.jobs, logger: logger)
        var results: [DrillReport.DatabaseDrill] = []
        for (index, dump) in dumps.enumerated() {
            let snapshot = manifest.databases.first { $0.name == dump.database }!
            let name = try await scratch.create(drillId: drillId, index: index)
            do {
                results.append(try await drill(snapshot, dump: dump, scratchName: name, restorer: restorer, server: server, keep: request.keep, logger: logger))
                if !request.keep { try await scratch.drop(name) }
            } catch {
                try? await scratch.drop(name)
                throw error
            }
        }

        var report = DrillReport(drillId: drillId, backupId: manifest.backupId, stanza: repository.stanza, host: ProcessInfo.processInfo.hostName,
                                 startedAt: startedAt, finishedAt: Date(), passed: false, checks: reportChecks, databases: results)
        report.passed = report.failures.isEmpty
        try await repository.storage.put(key: repository.drillReportKey(backupId: manifest.backupId, drillId: drillId), bytes: try report.encoded())
        logger.info(report.passed ? "drill passed" : "drill failed", metadata: ["drill.failed_checks": "\(report.failures.count)"])
        return report
    }

    private static func runChecks(conninfo: String, timeout: Int, logger: Logger,
                                  _ body: @Sendable (PostgresConnection) async throws -> [CheckResult]) async throws -> [CheckResult] {
        let connection = try await PostgresConnection.connect(conninfo: conninfo, logger: logger)
        try await connection.query("set statement_timeout = '\(timeout)s'")
        return try await body(connection)
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

    private func drill(_ snapshot: DatabaseSnapshot, dump: Artifact, scratchName: String, restorer: DumpRestorer,
                       server: PostgresServer, keep: Bool, logger: Logger) async throws -> DrillReport.DatabaseDrill {
        var checks: [CheckResult] = []
        let restoreStarted = Date()
        var restoreSeconds = 0.0
        do {
            let outcome = try await restorer.restore(dump, into: scratchName, options: .init(noOwner: true, exitOnError: false))
            restoreSeconds = Date().timeIntervalSince(restoreStarted)
            checks.append(CheckResult(name: "artifacts", passed: true, summary: "\(dump.key): size, SHA-256 and gzip stream match the manifest",
                                      figures: ["stored_bytes": dump.storedSize, "raw_bytes": dump.rawSize]))
            checks.append(CheckResult(name: "restore", passed: outcome.succeeded,
                                      summary: outcome.succeeded ? "pg_restore -j \(configuration.drill.jobs) finished cleanly in \(String(format: "%.1f", outcome.seconds)) s" : "pg_restore reported \(outcome.errors.count) error(s) (\(outcome.status))",
                                      evidence: outcome.errors.prefix(20).map { ["pg_restore": $0] }))
        } catch let error as IntegrityError {
            checks.append(CheckResult(name: "artifacts", passed: false, summary: error.message, evidence: [["object": error.key, "problem": error.code.description]]))
            return DrillReport.DatabaseDrill(name: snapshot.name, scratchDatabase: scratchName, kept: keep, restoreSeconds: 0, checkSeconds: 0, checks: checks)
        }

        // Two sessions check at once: the anti-joins and counts on one, sizes, objects and user
        // queries on the other, so both cores (and the server's) work.
        let checkStarted = Date()
        let conninfo = server.conninfo.with(database: scratchName)
        async let keysAndCounts = Self.runChecks(conninfo: conninfo, timeout: configuration.drill.checkTimeoutSeconds, logger: logger) { connection in
            [try await ReferentialCheck(connection: connection, expected: snapshot.foreignKeys).run(),
             try await SnapshotComparisonChecks.rowCounts(connection, expected: snapshot.rowCounts)]
        }
        let rules = configuration.checks
        async let contentAndObjects = Self.runChecks(conninfo: conninfo, timeout: configuration.drill.checkTimeoutSeconds, logger: logger) { connection in
            var results: [CheckResult] = []
            if let contentSize = try await ContentSizeCheck(connection: connection, rules: rules.contentSize).run(database: snapshot.name) {
                results.append(contentSize)
            }
            results.append(try await SnapshotComparisonChecks.objects(connection, expected: snapshot.objects))
            for check in rules.sql where check.database == nil || check.database == snapshot.name {
                results.append(try await UserSQLCheck(connection: connection, check: check).run())
            }
            return results
        }
        let (first, second) = try await (keysAndCounts, contentAndObjects)
        checks += first + second
        return DrillReport.DatabaseDrill(name: snapshot.name, scratchDatabase: scratchName, kept: keep, restoreSeconds: restoreSeconds,
                                         checkSeconds: Date().timeIntervalSince(checkStarted), checks: checks)
    }
}

extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
