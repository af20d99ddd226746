import ArgumentParser

@main
struct PGBackdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgbackd",
        abstract: "PostgreSQL backups that are restored and checked, not just stored.",
        version: "0.1.0",
        subcommands: [RunCommand.self, StatusCommand.self, BackupCommand.self, RestoreCommand.self, DrillCommand.self, ListCommand.self, ShowCommand.self, CheckCommand.self,
                      WalPushCommand.self, WalFetchCommand.self, WalWatchCommand.self, WalCheckCommand.self, ExpireCommand.self,
                      KeygenCommand.self, EncryptCommand.self, RekeyCommand.self]
    )
}
