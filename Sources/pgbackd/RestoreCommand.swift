import ArgumentParser
import Foundation
import PGBackupCore

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore one database of a logical backup into a database on the configured server.")

    @OptionGroup var common: CommonOptions

    @Argument(help: "Backup id, or 'latest'.")
    var backup: String = "latest"

    @Option(help: "The database in the backup to restore.")
    var database: String

    @Option(name: .customLong("target-db"), help: "The database to restore into; created if missing.")
    var targetDatabase: String

    @Option(help: "pg_restore parallel jobs (default: drill.jobs).")
    var jobs: Int?

    @Flag(help: "Drop and recreate the target database if it is not empty.")
    var force = false

    @Flag(help: "Also restore roles and tablespaces (globals.sql) first.")
    var globals = false

    @Flag(help: "Make the connecting role own the restored objects.")
    var noOwner = false

    @Flag(help: "Print a JSON summary.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let (configuration, logger, repository) = try await common.openRepository()
            let request = LogicalRestore.Request(backup: backup, database: database, target: targetDatabase, jobs: jobs,
                                                 force: force, globals: globals, noOwner: noOwner)
            let restore = LogicalRestore(configuration: configuration, repository: repository, logger: logger)
            let result = try await withSignalCancellation { try await restore.run(request) }
            if json {
                try printJSON(result)
            } else {
                print("restored \(result.database) of \(result.backupId) into \(result.target): \(formatBytes(result.rawBytes)) in \(String(format: "%.1f", result.seconds)) s")
                for error in result.globalsErrors { print("  globals: \(error)") }
            }
        }
    }
}
