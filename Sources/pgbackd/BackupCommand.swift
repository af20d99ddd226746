import ArgumentParser
import Foundation
import PGBackupCore

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take a logical backup now: pg_dump of each database in one snapshot, plus globals.")

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("database"), help: "Back up only this database (repeatable). Default: postgres.databases, else all.")
    var databases: [String] = []

    @Flag(help: "Print a JSON summary instead of the backup id.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let (configuration, logger, repository) = try await common.openRepository()
            let progress: ProgressLine? = isatty(STDERR_FILENO) == 1 ? ProgressLine() : nil
            var report: (@Sendable (BackupProgress) -> Void)?
            if let progress { report = { progress.update($0) } }
            let backup = LogicalBackup(configuration: configuration, repository: repository, logger: logger, progress: report)
            let databases = self.databases
            let alerts = AlertDispatcher(configuration: configuration.alerts, logger: logger)
            let manifest: Manifest
            do {
                manifest = try await withSignalCancellation { try await backup.run(databases: databases) }
            } catch {
                progress?.clear()
                await alerts.send(.backupFailed(stanza: configuration.repository.stanza, backupId: nil, error: error))
                throw error
            }
            progress?.clear()
            await alerts.send(.backup(manifest))
            if json {
                try printJSON(BackupSummary(manifest))
            } else {
                print(manifest.backupId)
                let seconds = manifest.finishedAt.timeIntervalSince(manifest.startedAt)
                FileHandle.standardError.write(Data("committed \(manifest.backupId): \(manifest.databases.count) database(s), \(formatBytes(manifest.rawSize)) dumped, \(formatBytes(manifest.storedSize)) stored, in \(String(format: "%.1f", seconds)) s\n".utf8))
            }
        }
    }
}

/// The backup at a glance, for `--json` and `list --json`.
struct BackupSummary: Encodable {
    var backupId: String
    var kind: String
    var stanza: String
    var startedAt: Date
    var finishedAt: Date
    var databases: [String]
    var rawBytes: Int64
    var storedBytes: Int64
    var serverVersion: Int

    init(_ manifest: Manifest) {
        backupId = manifest.backupId
        kind = manifest.kind.rawValue
        stanza = manifest.stanza
        startedAt = manifest.startedAt
        finishedAt = manifest.finishedAt
        databases = manifest.databases.map(\.name)
        rawBytes = manifest.rawSize
        storedBytes = manifest.storedSize
        serverVersion = manifest.server.versionNumber
    }
}

/// One self-overwriting status line on a terminal's stderr.
final class ProgressLine: Sendable {
    func update(_ progress: BackupProgress) {
        let elapsed = max(Date().timeIntervalSince(progress.startedAt), 0.001)
        let rate = Double(progress.rawBytes) / elapsed
        let text = "\r\u{1B}[K\(progress.database): \(formatBytes(progress.rawBytes)) dumped, \(formatBytes(Int64(rate)))/s"
        FileHandle.standardError.write(Data(text.utf8))
    }

    func clear() {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
