import Foundation
import Logging
import PGBackdSupport

#if canImport(Glibc)
import Glibc
#endif

/// `pgbackd restore [ID] --pgdata DIR [--time T | --lsn L | --xid X | --latest]`: lays a base
/// backup into an empty directory and sets it up to recover from the WAL archive to the target.
/// The tar is verified (SHA-256, gzip, sizes) before anything is extracted; on failure the
/// directory is left as it was found.
public struct PointInTimeRestore: Sendable {
    public struct Request: Sendable {
        /// A base backup id; nil or `latest` picks the newest one that ends before the target.
        public var backup: String?
        public var dataDirectory: String
        public var target: RecoveryTarget
        /// `recovery_target_action = 'promote'` instead of `'pause'` once the target is reached.
        public var promote: Bool
        /// The OS user that will run the restored server, when pgbackd runs as root. Default `postgres`.
        public var owner: String?
        /// The pgbackd binary and configuration file `restore_command` calls (absolute paths,
        /// readable by `owner`).
        public var executable: String
        public var configFile: String
        /// More settings for `postgresql.auto.conf`; drills use it for the port and to turn archiving off.
        public var extraSettings: [(String, String)]

        public init(backup: String?, dataDirectory: String, target: RecoveryTarget, promote: Bool, owner: String? = nil,
                    executable: String, configFile: String, extraSettings: [(String, String)] = []) {
            self.backup = backup
            self.dataDirectory = dataDirectory
            self.target = target
            self.promote = promote
            self.owner = owner
            self.executable = executable
            self.configFile = configFile
            self.extraSettings = extraSettings
        }
    }

    public struct Result: Sendable, Encodable {
        public var backupId: String
        public var dataDirectory: String
        public var target: String
        public var rawBytes: Int64
        public var seconds: Double
        /// What was appended to postgresql.auto.conf, in order.
        public var settings: [String]
    }

    let configuration: Configuration
    let repository: Repository
    let logger: Logger

    public init(configuration: Configuration, repository: Repository, logger: Logger) {
        self.configuration = configuration
        self.repository = repository
        self.logger = logger
    }

    public func run(_ request: Request) async throws -> Result {
        let backupId = try await chooseBackup(request).backupId
        return try await BackupLease(repository: repository, purpose: "restore", logger: logger).withLease(backupId) {
            var request = request
            request.backup = backupId
            return try await runLeased(request)
        }
    }

    private func runLeased(_ request: Request) async throws -> Result {
        let started = ContinuousClock.now
        let manifest = try await chooseBackup(request)
        guard let artifact = manifest.artifacts.first(where: { $0.content == .baseTar }) else {
            throw RepositoryError(.corruptManifest, message: "manifest of base backup \(manifest.backupId) lists no base.tar.gz")
        }
        let directory = request.dataDirectory
        let created = try prepareDirectory(directory)
        var logger = logger
        logger[metadataKey: "restore.backup_id"] = "\(manifest.backupId)"
        logger[metadataKey: "restore.pgdata"] = "\(directory)"
        do {
            try checkFreeSpace(directory, needed: artifact.rawSize * 2 + (64 << 20))
            let staging = directory + "/.pgbackd-base.tar"
            defer { unlink(staging) }
            logger.info("verifying and staging the base backup", metadata: ["restore.raw_bytes": "\(artifact.rawSize)"])
            _ = try await ArtifactVerifier(repository: repository).verify(artifact, stagingPath: staging)
            try await extract(staging, into: directory, logger: logger)
            unlink(staging)
            let settings = recoverySettings(request)
            try appendSettings(settings, to: directory + "/postgresql.auto.conf", backupId: manifest.backupId)
            _ = FileManager.default.createFile(atPath: directory + "/recovery.signal", contents: Data(), attributes: [.posixPermissions: 0o600])
            try giveToOwner(directory, owner: request.owner)
            logger.info("base backup laid out for recovery", metadata: ["restore.target": "\(request.target)"])
            return Result(backupId: manifest.backupId, dataDirectory: directory, target: request.target.description,
                          rawBytes: artifact.rawSize, seconds: (ContinuousClock.now - started).seconds,
                          settings: settings.map { "\($0.0) = \(Self.quote($0.1))" })
        } catch {
            logger.error("restore failed; removing what it wrote", metadata: ["restore.error": "\(error)"])
            removeContents(directory, andDirectory: created)
            throw error
        }
    }

    /// The named backup (which must be a base backup), or the newest base backup that ended
    /// before a `time` or `lsn` target; the newest of all for the other targets.
    public func chooseBackup(_ request: Request) async throws -> Manifest {
        if let id = request.backup, id != "latest" {
            let manifest = try await repository.manifest(id)
            guard manifest.kind == .base else {
                throw RestoreError(code: .notABaseBackup, message: "\(id) is a \(manifest.kind.rawValue) backup; point-in-time restore needs a base backup ('pgbackd backup --type base'); restore a logical backup with --database and --target-db")
            }
            return manifest
        }
        let bases = try await repository.backups().filter { $0.kind == .base && $0.wal != nil }
        guard let newest = bases.last else {
            throw RepositoryError(.backupNotFound, message: "stanza '\(repository.stanza)' holds no base backup: take one with 'pgbackd backup --type base'")
        }
        switch request.target {
        case .time(let text):
            guard let instant = request.target.instant else {
                throw RestoreError(code: .invalidTarget, message: "cannot tell which base backup precedes --time '\(text)': write it as 'YYYY-MM-DD HH:MM:SS[.frac]+HH' (as select now() prints it) or name the backup id")
            }
            guard let chosen = bases.last(where: { $0.finishedAt <= instant }) else {
                throw RestoreError(code: .invalidTarget, message: "no base backup finished before \(text); the oldest finished at \(bases[0].finishedAt): choose a later time")
            }
            return chosen
        case .lsn(let lsn):
            guard let chosen = bases.last(where: { WALPosition($0.wal!.stopLSN).map { $0 <= lsn } ?? false }) else {
                throw RestoreError(code: .invalidTarget, message: "no base backup ends before LSN \(lsn); the oldest ends at \(bases[0].wal!.stopLSN): choose a later LSN")
            }
            return chosen
        case .xid, .immediate, .latest:
            return newest
        }
    }

    func recoverySettings(_ request: Request) -> [(String, String)] {
        let command = "\(Self.shellQuote(request.executable)) wal-fetch --config \(Self.shellQuote(request.configFile)) %f %p"
        var settings: [(String, String)] = [("restore_command", command), ("recovery_target_timeline", "latest")]
        settings += request.target.settings
        if request.target != .latest {
            settings.append(("recovery_target_action", request.promote ? "promote" : "pause"))
        }
        return settings + request.extraSettings
    }

    /// - Returns: whether the directory was created (and so is removed again on failure).
    private func prepareDirectory(_ path: String) throws -> Bool {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw RestoreError(code: .targetNotEmpty, message: "\(path) exists and is not a directory: choose another --pgdata")
            }
            let entries = try FileManager.default.contentsOfDirectory(atPath: path)
            guard entries.isEmpty else {
                throw RestoreError(code: .targetNotEmpty, message: "\(path) is not empty (\(entries.count) entries): restore into an empty or new directory; stop and move the old cluster away first")
            }
            chmod(path, 0o700)
            return false
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StagingError(message: "cannot create the data directory \(path): \(error.localizedDescription)")
        }
        return true
    }

    private func checkFreeSpace(_ path: String, needed: Int64) throws {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return }
        let free = Int64(stats.f_bavail) * Int64(stats.f_frsize)
        guard free >= needed else {
            throw StagingError(.insufficientSpace, message: "\(path) has \(free >> 20) MiB free, but restoring this base backup needs about \(needed >> 20) MiB (the verified tar, then the files): free space or choose another --pgdata")
        }
    }

    private func extract(_ tarFile: String, into directory: String, logger: Logger) async throws {
        let tar = FileManager.default.isExecutableFile(atPath: "/usr/bin/tar") ? "/usr/bin/tar" : "/bin/tar"
        let outcome = try await runProgram(
            program: tar,
            arguments: ["--extract", "--file=\(tarFile)", "--directory=\(directory)", "--no-same-owner", "--preserve-permissions"],
            environment: [:], logger: logger)
        guard outcome.succeeded else {
            throw RestoreError(code: .extractFailed, message: "tar could not extract the base backup into \(directory) (\(outcome.statusText)): \(outcome.stderr.split(separator: "\n").suffix(3).joined(separator: " / "))")
        }
    }

    private func appendSettings(_ settings: [(String, String)], to path: String, backupId: String) throws {
        var text = "\n# Added by pgbackd restore of \(backupId) at \(Date()): remove once recovery is done.\n"
        for (name, value) in settings { text += "\(name) = \(Self.quote(value))\n" }
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
            return FileHandle(forWritingAtPath: path)
        }() else {
            throw StagingError(message: "cannot write \(path)")
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.synchronize()
    }

    /// As root, the files become the owner's (the server refuses a data directory it does not
    /// own); otherwise they are already ours.
    private func giveToOwner(_ directory: String, owner: String?) throws {
        guard getuid() == 0 else { return }
        let name = owner ?? "postgres"
        do throws(PostgresClusterError) {
            try PostgresCluster.give([directory], to: name, recursive: true)
        } catch {
            throw RestoreError(code: .extractFailed, message: error.code == .noSuchUser
                ? "\(error.message): pass --owner with the user that runs PostgreSQL" : error.message)
        }
    }

    private func removeContents(_ directory: String, andDirectory: Bool) {
        if andDirectory {
            try? FileManager.default.removeItem(atPath: directory)
            return
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            try? FileManager.default.removeItem(atPath: directory + "/" + entry)
        }
    }

    /// A postgresql.conf string literal.
    static func quote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// restore_command runs through `sh -c`: single-quote paths that need it.
    static func shellQuote(_ value: String) -> String {
        let safe = value.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "/._-+:,@".unicodeScalars.contains($0) }
        return safe ? value : "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
