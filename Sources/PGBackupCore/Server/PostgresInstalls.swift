import Foundation
import PGBackdSupport

/// The PostgreSQL installations on this host, found where distributions put them, so a program
/// of the right major is used for each server: a backup of a PostgreSQL 17 server needs pg_dump
/// 17 or newer, a drill into an 18 scratch server pg_restore 18.
struct PostgresInstalls {
    /// Whether a program of a newer major may serve an older server. pg_dump, pg_dumpall and
    /// pg_basebackup support older servers, and psql talks to them; pg_restore and the server
    /// programs must match (a newer pg_restore emits settings an older server rejects, such as
    /// PostgreSQL 17's `transaction_timeout`).
    static func acceptsNewerMajor(_ program: String) -> Bool {
        ["pg_dump", "pg_dumpall", "pg_basebackup", "psql"].contains(program)
    }

    /// Directories to look in, in order: the configured one, Debian's and PGDG's, a source
    /// install's, then `PATH`.
    static func searchDirectories(configured: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var directories: [String] = configured.map { [$0] } ?? []
        for (parent, pattern) in [("/usr/lib/postgresql", "%@/bin"), ("/usr", "%@/bin")] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
            let matching = parent == "/usr" ? names.filter { $0.hasPrefix("pgsql-") } : names.filter { Int($0) != nil }
            directories += matching.sorted { (Int($0.drop { !$0.isNumber }) ?? 0) > (Int($1.drop { !$0.isNumber }) ?? 0) }
                .map { parent + "/" + String(format: pattern, $0) }
        }
        directories.append("/usr/local/pgsql/bin")
        directories += (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        var seen: Set<String> = []
        return directories.filter { seen.insert($0).inserted }
    }

    /// `<program> --version`, tried again once: a program just written can be busy for a moment
    /// (ETXTBSY, while another thread's fork still holds it open), which is no answer about it.
    static func version(of path: String) async throws -> String {
        do {
            return try await runChild(program: path, arguments: ["--version"])
        } catch {
            try await Task.sleep(for: .milliseconds(200))
            return try await runChild(program: path, arguments: ["--version"])
        }
    }

    /// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → 15.
    static func major(fromVersionOutput text: String) -> Int? {
        text.split(separator: " ").dropFirst(2).first.flatMap { Int($0.split(separator: ".").first ?? "") }
    }

    /// The path of `program` for a server of `serverMajor`: the same major if any directory has
    /// it, else (where the program allows) the nearest newer one. A configured directory is the
    /// only one searched: an operator who names one means it.
    /// - Parameter setting: the configuration key of `configured`, for messages.
    static func program(_ program: String, forServerMajor serverMajor: Int, configured: String?, setting: String) async throws -> String {
        var found: [(path: String, major: Int, version: String)] = []
        for directory in configured.map({ [$0] }) ?? searchDirectories(configured: nil) {
            let path = directory + "/" + program
            guard FileManager.default.isExecutableFile(atPath: path) else { continue }
            let output: String
            do {
                output = try await version(of: path)
            } catch {
                found.append((path, 0, "unknown: `\(program) --version` failed: \(error)"))
                continue
            }
            guard let major = major(fromVersionOutput: output) else { continue }
            if major == serverMajor { return path }
            found.append((path, major, String(output.split(whereSeparator: \.isWhitespace).dropFirst(2).first ?? "")))
        }
        if acceptsNewerMajor(program), let newer = found.filter({ $0.major > serverMajor }).min(by: { $0.major < $1.major }) {
            return newer.path
        }
        let seen = found.isEmpty ? "none was found\(configured.map { " in \($0)" } ?? "")" : "found: " + found.map { "\($0.path) (\($0.version))" }.joined(separator: ", ")
        let wanted = acceptsNewerMajor(program) ? "PostgreSQL \(serverMajor) or newer" : "PostgreSQL \(serverMajor)"
        let fix = configured == nil
            ? "install the PostgreSQL \(serverMajor) programs (Debian: apt-get install postgresql-client-\(serverMajor), or postgresql-\(serverMajor) for the server programs) or set \(setting)"
            : "point \(setting) at the PostgreSQL \(serverMajor) programs"
        throw BackupError(.toolMissing, message: "\(program) of \(wanted) is needed for a PostgreSQL \(serverMajor) server; \(seen): \(fix)")
    }
}
