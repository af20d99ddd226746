import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A throw-away PostgreSQL cluster in a directory of its own, `base`: the data directory
/// `data/`, a private socket directory `socket/` and the server's log `postgres.log`. Drills
/// run one (a base backup's point-in-time restore, an upgrade drill's newer major) and the
/// integration tests make them for settings the shared test server must not have.
///
/// initdb and postgres refuse to run as root: as root, every program runs as ``owner``
/// (`postgres`) through runuser, from `base`, and what the server writes must be given to it
/// (``give(_:recursive:)``).
public struct PostgresCluster: Sendable {
    public let base: String
    /// Where initdb and pg_ctl are: the programs of the cluster's major.
    public let binDirectory: String
    /// The OS user that owns the data directory and runs the server; nil: ourselves.
    public let owner: String?
    let logger: Logger

    public var data: String { base + "/data" }
    public var socket: String { base + "/socket" }
    public var log: String { base + "/postgres.log" }
    /// The server listens on its socket only, where the port just names the socket file.
    public static let port = 5432

    /// Who owns a cluster: `postgres` when we run as root, else ourselves.
    public static var defaultOwner: String? { getuid() == 0 ? "postgres" : nil }

    public init(base: String, binDirectory: String, owner: String? = PostgresCluster.defaultOwner, logger: Logger) {
        self.base = base
        self.binDirectory = binDirectory
        self.owner = owner
        self.logger = logger
    }

    /// Makes `base` and the socket directory (mode `socketMode`) and gives both to the owner.
    public func makeDirectories(socketMode: mode_t = 0o700) throws(PostgresClusterError) {
        do {
            try FileManager.default.createDirectory(atPath: socket, withIntermediateDirectories: true, attributes: [.posixPermissions: socketMode])
        } catch {
            throw PostgresClusterError(.files, path: socket, message: "cannot create \(socket): \(error.localizedDescription)")
        }
        try give([base, socket])
    }

    /// initdb of ``data``: superuser `postgres`, UTF8, C locale, trust (the socket is private)
    /// and no fsync of what is thrown away anyway; `arguments` add to that.
    public func initdb(_ arguments: [String] = [], timeout: Duration = .seconds(300)) async throws -> ProgramOutcome {
        try await run("initdb", ["-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C", "--auth=trust", "--no-sync"] + arguments, timeout: timeout)
    }

    /// `pg_ctl start`, the server's output in ``log``, waiting up to `waitSeconds` until it
    /// accepts connections. `settings` (`name=value`) go to the server as `-c` options.
    public func start(settings: [String] = [], waitSeconds: Int = 120) async throws -> ProgramOutcome {
        let options = settings.isEmpty ? [] : ["-o", settings.map { "-c \($0)" }.joined(separator: " ")]
        return try await run("pg_ctl", ["-D", data, "-l", log, "-w", "-t", "\(waitSeconds)"] + options + ["start"], timeout: .seconds(waitSeconds + 30))
    }

    /// `pg_ctl stop` in `mode` (`fast`, `immediate`), waiting up to `waitSeconds`.
    public func stop(mode: String = "fast", waitSeconds: Int = 60) async throws -> ProgramOutcome {
        try await run("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "\(waitSeconds)", "stop"], timeout: .seconds(waitSeconds + 30))
    }

    /// `pg_ctl stop -m immediate` when a server runs, waited for (at most 30 s) on the calling
    /// thread: synchronous, so it runs in a `defer`, which cannot await, on every way out.
    public func stopImmediately() {
        guard FileManager.default.fileExists(atPath: data + "/postmaster.pid") else { return }
        let pgCtl = binDirectory + "/pg_ctl"
        let stop = Process()
        stop.executableURL = URL(fileURLWithPath: owner == nil ? pgCtl : "/usr/sbin/runuser")
        stop.arguments = (owner.map { ["-u", $0, "--", pgCtl] } ?? []) + ["-D", data, "-m", "immediate", "-w", "stop"]
        stop.currentDirectoryURL = URL(fileURLWithPath: base)
        stop.standardOutput = FileHandle.nullDevice
        stop.standardError = FileHandle.nullDevice
        try? stop.run()
        for _ in 0..<300 where stop.isRunning { usleep(100_000) }
    }

    /// Deletes `base` and everything in it; stop the server first.
    public func remove() {
        try? FileManager.default.removeItem(atPath: base)
    }

    /// The end of the server's log, for a message about why it did not start or recover.
    public func logTail(_ characters: Int) -> String {
        (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(characters)) } ?? ""
    }

    /// Runs `program` (a name in ``binDirectory``, or a path) as the owner, from `base`.
    public func run(_ program: String, _ arguments: [String], environment: [String: String] = [:], timeout: Duration) async throws -> ProgramOutcome {
        try await runProgram(program: program.contains("/") ? program : binDirectory + "/" + program, arguments: arguments, environment: environment,
                             logger: logger, timeout: timeout, workingDirectory: base, user: owner)
    }

    /// Gives `paths` (with everything below them when `recursive`) to the owner; nothing to do
    /// when the cluster is ours.
    public func give(_ paths: [String], recursive: Bool = false) throws(PostgresClusterError) {
        guard let owner else { return }
        try Self.give(paths, to: owner, recursive: recursive)
    }

    /// Gives `paths` to the OS user `owner` (root only), symbolic links themselves and not what
    /// they point to: a tablespace link in `pg_tblspc` is not followed.
    public static func give(_ paths: [String], to owner: String, recursive: Bool) throws(PostgresClusterError) {
        guard let entry = getpwnam(owner) else {
            throw PostgresClusterError(.noSuchUser, path: paths.first, message: "no OS user '\(owner)' to own \(paths.joined(separator: ", "))")
        }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        for path in paths {
            var all = [path]
            if recursive, let walk = FileManager.default.enumerator(atPath: path) {
                while let relative = walk.nextObject() as? String { all.append(path + "/" + relative) }
            }
            for item in all where lchown(item, uid, gid) != 0 {
                throw PostgresClusterError(.files, path: item, message: "cannot give \(item) to \(owner): \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// Why a throw-away cluster's directories could not be made or given to its owner. (A program
/// that fails is a ``ProgramOutcome``, for the caller to judge.)
public struct PostgresClusterError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// No OS user of the owner's name.
        public static let noSuchUser = Code(name: "noSuchUser")
        /// A directory could not be made, or a file not given to the owner.
        public static let files = Code(name: "files")
        public var description: String { name }
    }

    public var code: Code
    public var path: String?
    public var message: String

    public init(_ code: Code, path: String?, message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { message }
}
