import Foundation
import Logging
import PGBackdSupport
import PostgresClient

#if canImport(Glibc)
import Glibc
#endif

/// Puts one database dump from the repository into a database: verifies it while staging it to a
/// temp file (parallel pg_restore needs a seekable file), then runs `pg_restore -j N`.
/// The staging directory is removed on every path; one a killed process left is removed by the next
/// (``StagingDirectory``).
struct DumpRestorer {
    let repository: Repository
    let server: PostgresServer
    let stagingDirectory: String
    let jobs: Int
    let logger: Logger

    struct Options {
        /// Restore objects owned by the connecting role (drills: roles may not exist there).
        var noOwner = false
        /// Stop at the first error (restore), or go on and report (drill: a constraint that fails
        /// to restore must show up as a failed check, not abort the drill).
        var exitOnError = true
        /// Record which foreign keys exist in the database just before the foreign-key run
        /// (``Outcome/foreignKeysBeforeTheirRun``), so a drill can tell the constraints that run
        /// created, after all the data was in, from any that were there before.
        var recordForeignKeys = false
        /// `default_toast_compression` for pg_restore's sessions (a drill's `lz4`); nil keeps
        /// the server's.
        var toastCompression: String? = nil
    }

    struct Outcome: Sendable {
        var rawBytes: Int64
        var seconds: Double
        /// pg_restore's status and its complaints; empty when it exited 0 without any.
        var succeeded: Bool
        var status: String
        var errors: [String]
        /// The same, each with the object pg_restore was creating when it failed.
        var failures: [PgRestoreFailure] = []
        /// With ``Options/recordForeignKeys``: the OIDs of the foreign keys (`pg_constraint`,
        /// `contype = 'f'`) that existed when the foreign-key run started, every table's data
        /// already restored; nil when not recorded (or that run never started).
        var foreignKeysBeforeTheirRun: Set<String>? = nil
    }

    /// A dump verified against its manifest entry and staged for pg_restore.
    struct StagedDump {
        let artifact: Artifact
        let path: String
        let directory: StagingDirectory
        let startedAt: Date

        func remove() { directory.remove() }
    }

    /// Verifies the dump while staging it: size, SHA-256 and gzip stream are proven before
    /// anything is created on the server. The caller removes what it returns.
    func stage(_ artifact: Artifact) async throws -> StagedDump {
        let started = Date()
        // First: creating it removes what killed drills left, which the free space counts.
        let staging = try StagingDirectory(in: stagingDirectory, logger: logger)
        do {
            try checkFreeSpace(needed: artifact.rawSize)
            let staged = staging.path + "/" + (RepositoryLayout.objectName(ofKey: artifact.key) as NSString).deletingPathExtension
            logger.info("verifying and staging dump", metadata: ["restore.object": "\(artifact.key)", "restore.staging": "\(staged)"])
            _ = try await ArtifactVerifier(repository: repository).verify(artifact, stagingPath: staged)
            return StagedDump(artifact: artifact, path: staged, directory: staging, startedAt: started)
        } catch {
            staging.remove()
            throw error
        }
    }

    func restore(_ artifact: Artifact, into database: String, options: Options) async throws -> Outcome {
        let staged = try await stage(artifact)
        defer { staged.remove() }
        return try await restore(staged, into: database, options: options)
    }

    /// Four runs of pg_restore: tables and data (`-j N`); indexes and every other constraint
    /// (`-j N`); the partitions' index attachments (one at a time); foreign keys (`-j N`). In one
    /// run, parallel pg_restore may create a partitioned table's foreign key before every
    /// partition's data is in (the COPY into a later partition then fails, and its rows are lost
    /// in a drill), or before the referenced partitioned table's key is valid ("there is no
    /// unique constraint matching given keys"); and two sibling attachments run at once can each
    /// miss the other's and leave a multi-level partitioned key invalid for good. The order is
    /// pg_restore's own within each run.
    func restore(_ staged: StagedDump, into database: String, options: Options) async throws -> Outcome {
        let pgRestore = try await server.tool("pg_restore")
        // pg_restore only connects when given --dbname; a conninfo with nothing but the name keeps
        // any name safe to pass and every secret in the environment.
        var arguments = ["--jobs=\(jobs)", "--no-password", "--dbname=dbname=\(Conninfo.quote(database))"]
        if options.noOwner { arguments += ["--no-owner", "--no-privileges"] }
        if options.exitOnError { arguments.append("--exit-on-error") }

        let listing = try await runProgram(program: pgRestore, arguments: ["--list", staged.path], environment: [:], logger: logger)
        guard listing.succeeded else {
            throw RestoreError(code: .pgRestoreFailed, message: "pg_restore --list \(staged.path) failed (\(listing.statusText)): \(listing.stderr.split(separator: "\n").suffix(3).joined(separator: " / "))")
        }
        let lists = Self.splitPostData(listing.stdout)
        let restPath = staged.path + ".post-data.list", attachPath = staged.path + ".index-attach.list", keysPath = staged.path + ".foreign-keys.list"
        try lists.rest.write(toFile: restPath, atomically: false, encoding: .utf8)
        try lists.indexAttach.write(toFile: attachPath, atomically: false, encoding: .utf8)
        try lists.foreignKeys.write(toFile: keysPath, atomically: false, encoding: .utf8)

        var environment = server.childEnvironment(database: database)
        if let toastCompression = options.toastCompression {
            let inherited = environment["PGOPTIONS"] ?? ProcessInfo.processInfo.environment["PGOPTIONS"]
            environment["PGOPTIONS"] = [inherited, "-c default_toast_compression=\(toastCompression)"].compactMap { $0 }.joined(separator: " ")
        }
        var errors: [String] = []
        var failures: [PgRestoreFailure] = []
        var status = "exit code 0"
        var succeeded = true
        var foreignKeysBefore: Set<String>?
        let passes = [["--section=pre-data", "--section=data"], ["--section=post-data", "--use-list=\(restPath)"],
                      ["--section=post-data", "--use-list=\(attachPath)", "--jobs=1"], ["--section=post-data", "--use-list=\(keysPath)"]]
        for (index, pass) in passes.enumerated() {
            if index == passes.count - 1, options.recordForeignKeys {
                foreignKeysBefore = try await foreignKeyOIDs(in: database)
            }
            // A later --jobs wins: the index attachments run one at a time.
            let outcome = try await runProgram(program: pgRestore, arguments: arguments + pass + [staged.path],
                                               environment: environment, logger: logger)
            errors += outcome.stderr.split(separator: "\n").filter { $0.contains("error:") }.map(String.init)
            failures += PgRestoreFailure.parse(outcome.stderr)
            if succeeded { status = outcome.statusText }
            succeeded = succeeded && outcome.succeeded
            if !outcome.succeeded && options.exitOnError { break }
        }
        return Outcome(rawBytes: staged.artifact.rawSize, seconds: Date().timeIntervalSince(staged.startedAt),
                       succeeded: succeeded && errors.isEmpty, status: status, errors: errors, failures: failures,
                       foreignKeysBeforeTheirRun: foreignKeysBefore)
    }

    /// Every foreign key's constraint OID in `database`, partitions' clones included.
    private func foreignKeyOIDs(in database: String) async throws -> Set<String> {
        let connection = try await PostgresConnection.connect(conninfo: server.conninfo.with(database: database), logger: logger)
        let rows = try await connection.query("select oid::text from pg_catalog.pg_constraint where contype = 'f'").rows
        return Set(rows.compactMap { $0[0] })
    }

    /// pg_restore's table of contents three times: without foreign keys and index attachments,
    /// with the index attachments alone, with the foreign keys alone. An entry line reads
    /// `<id>; <class oid> <oid> <description> <schema> <name…> <owner>`, the description being
    /// e.g. `FK CONSTRAINT` or `INDEX ATTACH`.
    static func splitPostData(_ listing: String) -> (rest: String, indexAttach: String, foreignKeys: String) {
        var rest: [String] = [], attach: [String] = [], keys: [String] = []
        for line in listing.split(separator: "\n", omittingEmptySubsequences: false) {
            guard !line.hasPrefix(";"), !line.isEmpty else { continue }
            let words = line.split(separator: " ").dropFirst(3).prefix(2).joined(separator: " ")
            let entry = String(line), skipped = ";" + line
            rest.append(words == "FK CONSTRAINT" || words == "INDEX ATTACH" ? skipped : entry)
            attach.append(words == "INDEX ATTACH" ? entry : skipped)
            keys.append(words == "FK CONSTRAINT" ? entry : skipped)
        }
        let text = { (lines: [String]) in lines.joined(separator: "\n") + "\n" }
        return (text(rest), text(attach), text(keys))
    }

    /// Replays `globals.sql` (roles, tablespaces) with psql; roles that exist already are reported, not fatal.
    func restoreGlobals(_ artifact: Artifact) async throws -> Outcome {
        let started = Date()
        let psql = try await server.tool("psql")
        let staging = try StagingDirectory(in: stagingDirectory, logger: logger)
        defer { staging.remove() }
        let staged = staging.path + "/globals.sql"
        _ = try await ArtifactVerifier(repository: repository).verify(artifact, stagingPath: staged)
        let outcome = try await runProgram(program: psql, arguments: ["-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", staged],
                                           environment: server.childEnvironment(database: "postgres"), logger: logger)
        let errors = outcome.stderr.split(separator: "\n").filter { $0.contains("ERROR:") }.map(String.init)
        return Outcome(rawBytes: artifact.rawSize, seconds: Date().timeIntervalSince(started), succeeded: outcome.succeeded, status: outcome.statusText, errors: errors)
    }

    private func checkFreeSpace(needed: Int64) throws {
        var stats = statvfs()
        guard statvfs(stagingDirectory, &stats) == 0 else {
            throw StagingError(message: "cannot use staging directory \(stagingDirectory): \(String(cString: strerror(errno))); create it or set drill.staging_dir")
        }
        let available = Int64(stats.f_bavail) * Int64(stats.f_frsize)
        let wanted = needed + needed / 20 + (64 << 20)
        guard available >= wanted else {
            throw StagingError(.insufficientSpace, message: "staging the dump needs \(wanted >> 20) MiB in \(stagingDirectory) but only \(available >> 20) MiB are free; set drill.staging_dir to a larger file system")
        }
    }
}

/// The staging directory is missing, unwritable or too small.
public struct StagingError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        /// It cannot be created, locked, written or given to the server's owner.
        case unusable
        /// It has less free space than the job needs.
        case insufficientSpace
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    public init(_ code: Code = .unusable, message: String) {
        self.code = code
        self.message = message
    }
}

/// One statement pg_restore could not run, and the object it belongs to: "CREATE VIEW public.v:
/// column pg_stat_bgwriter.checkpoints_timed does not exist" says what an upgrade breaks; the
/// raw error line alone does not.
struct PgRestoreFailure: Sendable, Equatable {
    /// The start of the failed command, e.g. `CREATE VIEW public.v`; nil when pg_restore did not
    /// print it.
    var object: String?
    /// The server's message, e.g. `column pg_stat_bgwriter.checkpoints_timed does not exist`.
    var error: String

    /// pg_restore prints, per failed statement, `pg_restore: error: could not execute query:
    /// ERROR:  <message>`, perhaps `LINE n:` context, then `Command was: <statement>`.
    static func parse(_ stderr: String) -> [PgRestoreFailure] {
        var failures: [PgRestoreFailure] = []
        for line in stderr.split(separator: "\n") {
            if let range = line.range(of: "error: ") {
                var message = String(line[range.upperBound...])
                for prefix in ["could not execute query: ", "ERROR:  "] where message.hasPrefix(prefix) { message.removeFirst(prefix.count) }
                failures.append(PgRestoreFailure(object: nil, error: message))
            } else if line.hasPrefix("Command was: "), !failures.isEmpty, failures[failures.count - 1].object == nil {
                failures[failures.count - 1].object = object(fromCommand: String(line.dropFirst("Command was: ".count)))
            }
        }
        return failures
    }

    /// `CREATE VIEW public.v AS` → `CREATE VIEW public.v`; `CREATE FUNCTION public.f(integer)
    /// RETURNS …` → `CREATE FUNCTION public.f(integer)`.
    static func object(fromCommand line: String) -> String {
        var text = line.trimmingCharacters(in: .whitespaces)
        for cut in [" AS ", " RETURNS ", " FROM ", " WITH ", " USING "] {
            if let range = text.range(of: cut) { text = String(text[..<range.lowerBound]) }
        }
        for suffix in [" AS", ";", " ("] where text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text.count > 120 ? String(text.prefix(120)) + "…" : text
    }
}
