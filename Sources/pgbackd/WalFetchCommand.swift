import ArgumentParser
import Foundation
import PGBackupCore

struct WalFetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-fetch",
        abstract: "Restore one archived WAL file: restore_command = 'pgbackd wal-fetch %f %p'.",
        discussion: """
            Exits 1, and only then, when the archive has no such file: recovery takes that as \
            the end of the archived WAL. Any other failure (a corrupt object, content that does \
            not match the SHA-256 in its object name, two objects for one name, storage down) \
            exits 126, which PostgreSQL treats as fatal: recovery stops instead of ending early \
            at a point the operator did not ask for. Nothing is written to %p then.

            With wal.prefetch > 0, a call that finds the next segment not yet prefetched also \
            downloads the next wal.prefetch segments, at the same time as the requested one, into \
            .pgbackd-prefetch/ next to %p (waiting at most 10 s for them after %p is written); \
            the following calls are served from there after checking each file's SHA-256.
            """)

    @OptionGroup var common: CommonOptions

    @Argument(help: "The WAL file name (PostgreSQL's %f).")
    var name: String

    @Argument(help: "Where to write it (PostgreSQL's %p).")
    var path: String

    func run() async throws {
        do {
            let configuration = try common.loadConfiguration()
            let logger = common.makeLogger()
            guard let file = WALFileName(name) else {
                throw WALError(.invalidName, message: "\(name) is not a WAL file name (segment, .history, .backup or .partial); restore_command must pass %f")
            }
            // As wal-push: restore_command may run as another user; a wrong key fails the read itself.
            let repository = try await RepositoryFactory.open(configuration, logger: logger, checkingEncryption: false)
            let archive = WALArchive(repository: repository, level: configuration.compression.level, logger: logger)
            let prefetcher = WALPrefetcher(archive: archive, depth: configuration.wal.prefetch, logger: logger)
            let path = self.path
            _ = try await withSignalCancellation { try await prefetcher.fetch(file, to: path) }
        } catch let error as ExitCode {
            throw error
        } catch {
            // Recovery asks for files that do not exist as a matter of course (the next
            // timeline's history, the segment after the last): that is news, not an error.
            let notFound = (error as? WALError)?.code == .notFound
            FileHandle.standardError.write(Data("pgbackd: \(notFound ? "wal-fetch" : "error"): \(describe(error))\n".utf8))
            // Exit 1 tells PostgreSQL "no such file": it must never stand for another failure.
            // Every other failure must stop recovery, and PostgreSQL aborts only on a signal or
            // an exit status above 125 (restore_command in its documentation).
            throw ExitCode(ExitStatus.walFetch(error).rawValue)
        }
    }
}
