import ArgumentParser
import Foundation
import PGBackupCore

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one backup's manifest: artifacts, checksums, row counts.")

    @OptionGroup var common: CommonOptions

    @Argument(help: "Backup id, or 'latest'.")
    var id: String

    @Flag(help: "Print the whole manifest as JSON.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let (_, _, repository) = try await common.openRepository()
            let manifest = try await repository.manifest(id)
            if json {
                print(String(decoding: try manifest.encoded(), as: UTF8.self))
                return
            }
            print("backup      \(manifest.backupId) (\(manifest.kind.rawValue))")
            print("stanza      \(manifest.stanza)")
            print("server      \(manifest.server.version)")
            print("system id   \(manifest.server.systemIdentifier)")
            print("taken       \(manifest.startedAt) – \(manifest.finishedAt)")
            print("compression \(manifest.compression.algorithm) level \(manifest.compression.level)\(manifest.compression.engine.map { " (\($0))" } ?? "")")
            if manifest.rolePasswords == false {
                print("globals     roles WITHOUT passwords (the backup role could not read pg_authid): set them again after restoring globals")
            }
            print("")
            printTable(header: ["ARTIFACT", "DUMPED", "STORED", "SHA-256 (STORED)"], rows: manifest.artifacts.map {
                [$0.key, formatBytes($0.rawSize), formatBytes($0.storedSize), $0.storedSha256]
            })
            for database in manifest.databases {
                print("")
                print("database \(database.name): \(database.rowCounts.count) tables, \(database.foreignKeys.count) foreign keys")
                printTable(header: ["TABLE", "ROWS"], rows: database.rowCounts.sorted { $0.key < $1.key }.map { [$0.key, String($0.value)] })
            }
        }
    }
}
