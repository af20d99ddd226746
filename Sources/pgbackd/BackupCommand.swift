import ArgumentParser
import Foundation
import PGBackupCore

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take a backup now: logical (pg_dump per database, plus globals) or base (pg_basebackup).",
        discussion: """
            --type logical (the default) dumps each database in one exported snapshot and records \
            its exact row counts. --type base copies the whole cluster with pg_basebackup for \
            point-in-time recovery; it needs WAL archiving to this repository (archive_command = \
            'pgbackd wal-push %p') and commits only once its last WAL segment is archived.
            """)

    enum BackupType: String, ExpressibleByArgument, CaseIterable {
        case logical, base
    }

    @OptionGroup var common: CommonOptions

    @Option(help: "What to back up: logical or base.")
    var type: BackupType = .logical

    @Option(name: .customLong("database"), help: "Back up only this database (repeatable; logical only). Default: postgres.databases, else all.")
    var databases: [String] = []

    @Flag(help: "Print a JSON summary instead of the backup id.")
    var json = false

    func validate() throws {
        if type == .base && !databases.isEmpty {
            throw ValidationError("--database applies to logical backups only: a base backup copies the whole cluster")
        }
    }

    func run() async throws {
        try await runReportingErrors {
            let runner = try await common.jobRunner()
            let progress: ProgressLine? = isatty(STDERR_FILENO) == 1 ? ProgressLine() : nil
            var report: (@Sendable (BackupProgress) -> Void)?
            if let progress { report = { progress.update($0) } }
            let job = BackupJob(type == .base ? .base : .logical(databases: databases), progress: report)
            defer { progress?.clear() }
            let manifest = try await withSignalCancellation { try await runner.run(job) }
            progress?.clear()
            if json {
                try printJSON(BackupSummary(manifest))
            } else {
                print(manifest.backupId)
                let seconds = manifest.finishedAt.timeIntervalSince(manifest.startedAt)
                let what = manifest.kind == .base ? "base backup of the cluster" : "\(manifest.databases.count) database(s)"
                FileHandle.standardError.write(Data("committed \(manifest.backupId): \(what), \(formatBytes(manifest.rawSize)) read, \(formatBytes(manifest.storedSize)) stored, in \(String(format: "%.1f", seconds)) s\n".utf8))
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
    /// Base backups: the WAL range they need.
    var wal: WALRange?

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
        wal = manifest.wal
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
