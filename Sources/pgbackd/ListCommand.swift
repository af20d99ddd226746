import ArgumentParser
import Foundation
import PGBackupCore

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the committed backups, read from the repository alone.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let (_, _, repository) = try await common.openRepository()
            let backups = try await repository.backups()
            if json {
                try printJSON(backups.map(BackupSummary.init))
                return
            }
            if backups.isEmpty {
                print("no backups in stanza '\(repository.stanza)'")
                return
            }
            let rows = backups.map { manifest in
                [manifest.backupId, manifest.kind.rawValue, manifest.databases.map(\.name).joined(separator: ","),
                 formatBytes(manifest.rawSize), formatBytes(manifest.storedSize),
                 String(format: "%.1f s", manifest.finishedAt.timeIntervalSince(manifest.startedAt))]
            }
            printTable(header: ["BACKUP", "KIND", "DATABASES", "DUMPED", "STORED", "DURATION"], rows: rows)
        }
    }
}

func printTable(header: [String], rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
    }
}
