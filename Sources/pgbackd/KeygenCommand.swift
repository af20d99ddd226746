import ArgumentParser
import Encryption
import Foundation
import PGBackupCore

struct KeygenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a new repository key (32 random bytes, base64) to a new file of mode 0600.",
        discussion: """
            Point [encryption] key_file at it. To rotate keys, write a new one, make it key_file, \
            move the old file to old_key_files and run 'pgbackd rekey'; afterwards the old file \
            can be destroyed. An existing file is never overwritten.
            """)

    @Option(help: "The file to create.")
    var output: String

    func run() async throws {
        try await runReportingErrors {
            let key = try RepositoryKey.generate()
            try key.write(to: output)
            print("wrote \(output) (mode 0600): repository key \(key.fingerprint)")
        }
    }
}

struct EncryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt",
        abstract: "Turn encryption on for an existing stanza: everything stored from now on is encrypted.",
        discussion: """
            Records [encryption] key_file's key in the stanza's repository.json. Backups and WAL \
            stored before stay as they are and remain readable; expire removes them in time.
            """)

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try await runReportingErrors {
            let configuration = try common.loadConfiguration()
            guard configuration.encryption != nil else {
                throw ConfigurationError(.missingKey, file: configuration.file, key: "encryption.key_file", message: "set it to a key file first ('pgbackd keygen --output FILE' writes one)")
            }
            let repository = try await RepositoryFactory.open(configuration, logger: common.makeLogger(), checkingEncryption: false)
            try await repository.recordEncryption()
            print("stanza '\(repository.stanza)' is encrypted from now on under repository key \(repository.encryptionKeys[0].fingerprint)")
        }
    }
}

struct RekeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rekey",
        abstract: "Rewrap every data key under [encryption] key_file's key; no backup or WAL file is rewritten.",
        discussion: """
            Reads the wrapped data keys with key_file or old_key_files and writes each again under \
            key_file. Safe to kill and run again: it goes on where it stopped. When it has \
            finished, the old key files are no longer needed ('pgbackd check' says so).
            """)

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let (_, _, repository) = try await common.openRepository()
            let outcome = try await withSignalCancellation { try await KeyRotation(repository: repository).rekey() }
            if json { try printJSON(outcome); return }
            print("rewrapped \(outcome.rewrapped) data key(s) under repository key \(outcome.keyFingerprint); \(outcome.alreadyCurrent) already were")
        }
    }
}
