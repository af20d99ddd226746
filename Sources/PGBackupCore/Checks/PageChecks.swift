import Foundation
import Logging
import PGBackdSupport
import PostgresClient

/// The checks that look inside a restored cluster's files and pages instead of its rows:
/// `verifybackup` (every file against pg_basebackup's own `backup_manifest`), `checksums` (every
/// page's data checksum) and `amcheck` (heap and B-tree structure, every heap tuple found in its
/// indexes). A damaged page that no referential or user query reads passes every data check;
/// these find it. The programs come from the server's bin directory; a missing one (pg_amcheck
/// before PostgreSQL 14) makes its check skipped, with the reason, not failed.
struct PageChecks {
    /// Evidence rows kept per check; the figures count them all.
    static let evidenceLimit = 100
    /// pg_amcheck's options: `--parent-check` also proves the B-tree's downlinks; its ShareLock
    /// only blocks writers, and only the drill writes to a throw-away cluster or scratch database.
    static let amcheckOptions = ["--heapallindexed", "--parent-check", "--no-password"]

    let binDirectory: String
    /// The OS user that owns the data directory, when pgbackd runs as root.
    let owner: String?
    let timeoutSeconds: Int
    let jobs: Int
    let logger: Logger

    /// A check that could not run here: passed (the backup is not at fault), marked `skipped`.
    static func skipped(_ name: String, _ reason: String) -> CheckResult {
        CheckResult(name: name, passed: true, summary: "skipped: \(reason)", figures: ["skipped": 1])
    }

    func program(_ name: String) -> String? {
        let path = binDirectory + "/" + name
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    // MARK: verifybackup

    /// `pg_verifybackup --no-parse-wal` on the restored directory before the server starts: the
    /// manifest describes the files as pg_basebackup sent them, and WAL replay changes them. WAL
    /// is not parsed (pg_wal is empty in the tar; pgbackd archives WAL apart): the `recovery`
    /// check replays exactly the backup's WAL range, which proves more than parsing it would.
    func verifyBackup(dataDirectory data: String) async throws -> CheckResult {
        guard let program = program("pg_verifybackup") else {
            return Self.skipped("verifybackup", "no pg_verifybackup in \(binDirectory) (it exists from PostgreSQL 13)")
        }
        guard FileManager.default.fileExists(atPath: data + "/backup_manifest") else {
            return Self.skipped("verifybackup", "the backup holds no backup_manifest (pg_basebackup before PostgreSQL 13, or --no-manifest)")
        }
        let outcome = try await runAsOwner(program, ["--no-parse-wal", "--quiet", data])
        logger.info("pg_verifybackup finished", metadata: ["check.program.status": "\(outcome.statusText)"])
        if outcome.succeeded {
            return CheckResult(name: "verifybackup", passed: true,
                               summary: "every file matches the backup's backup_manifest (pg_verifybackup: sizes and checksums, none missing or extra)")
        }
        var evidence = Self.verifyBackupProblems(outcome.stderr)
        let count = evidence.count
        if evidence.isEmpty { evidence = [["problem": Self.tail(outcome.stderr, or: outcome.statusText)]] }
        return CheckResult(name: "verifybackup", passed: false,
                           summary: outcome.timedOut ? "pg_verifybackup did not finish within drill.check_timeout_seconds (\(timeoutSeconds) s)"
                               : count == 0 ? "pg_verifybackup failed (\(outcome.statusText))" : "\(count) file(s) differ from the backup's backup_manifest",
                           figures: ["problems": Int64(count)], evidence: Array(evidence.prefix(Self.evidenceLimit)))
    }

    /// `pg_verifybackup: error: checksum mismatch for file "base/5/16384"` and the like: one row
    /// per message, with the file it names.
    static func verifyBackupProblems(_ stderr: String) -> [[String: String]] {
        stderr.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "pg_verifybackup: error: ") else { return nil }
            let message = String(line[range.upperBound...])
            var row = ["problem": message]
            if let file = firstQuoted(message) { row["file"] = file }
            return row
        }
    }

    // MARK: checksums

    /// Whether the backed-up cluster has data checksums (pg_controldata of the restored
    /// directory); nil when that cannot be told.
    func checksumsEnabled(dataDirectory data: String) async throws -> Bool? {
        guard let program = program("pg_controldata") else { return nil }
        let outcome = try await runAsOwner(program, ["-D", data])
        guard outcome.succeeded else { return nil }
        // "Data page checksum version:           1"; 0 is off.
        guard let line = outcome.stdout.split(separator: "\n").first(where: { $0.hasPrefix("Data page checksum version:") }),
              let version = Int(line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") else { return nil }
        return version != 0
    }

    /// `pg_checksums --check` on a cleanly stopped data directory: one row per bad block, with its
    /// file (relative to the data directory) and block number.
    func checksums(dataDirectory data: String, program: String) async throws -> CheckResult {
        let outcome = try await runAsOwner(program, ["--check", "-D", data])
        logger.info("pg_checksums finished", metadata: ["check.program.status": "\(outcome.statusText)"])
        let figures = Self.checksumFigures(outcome.stdout)
        if outcome.succeeded {
            return CheckResult(name: "checksums", passed: true,
                               summary: "the data checksum of every page matches (pg_checksums: \(figures["blocks"] ?? 0) blocks in \(figures["files"] ?? 0) files)",
                               figures: figures)
        }
        var evidence = Self.checksumFailures(outcome.stderr, dataDirectory: data)
        let count = evidence.count
        if evidence.isEmpty { evidence = [["problem": Self.tail(outcome.stderr, or: outcome.statusText)]] }
        return CheckResult(name: "checksums", passed: false,
                           summary: outcome.timedOut ? "pg_checksums did not finish within drill.check_timeout_seconds (\(timeoutSeconds) s)"
                               : count == 0 ? "pg_checksums failed (\(outcome.statusText))" : "\(count) page(s) with a wrong data checksum",
                           figures: figures.merging(["bad_blocks": Int64(count)]) { $1 }, evidence: Array(evidence.prefix(Self.evidenceLimit)))
    }

    /// `Files scanned:  960` and `Blocks scanned: 2807` from pg_checksums' summary.
    static func checksumFigures(_ stdout: String) -> [String: Int64] {
        var figures: [String: Int64] = [:]
        for line in stdout.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let value = Int64(parts[1]) else { continue }
            switch parts[0] {
            case "Files scanned": figures["files"] = value
            case "Blocks scanned": figures["blocks"] = value
            default: break
            }
        }
        return figures
    }

    /// `pg_checksums: error: checksum verification failed in file "/d/base/5/16384", block 0:
    /// calculated checksum 9F2A but block contains 1B3C`.
    static func checksumFailures(_ stderr: String, dataDirectory data: String) -> [[String: String]] {
        stderr.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "checksum verification failed in file ") else { return nil }
            let rest = String(line[range.upperBound...])
            guard var file = firstQuoted(rest) else { return nil }
            if file.hasPrefix(data + "/") { file.removeFirst(data.count + 1) }
            var row = ["file": file]
            if let blockRange = rest.range(of: ", block "), let colon = rest[blockRange.upperBound...].firstIndex(of: ":") {
                row["block"] = String(rest[blockRange.upperBound..<colon])
                row["problem"] = rest[rest.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            return row
        }
    }

    /// Adds the relation (`schema.name`, and the fork when not the main one) each bad file
    /// belongs to, asked of the restored server: `base/<database oid>/<filenode>[_fork][.segment]`.
    static func nameRelations(_ evidence: [[String: String]], connect: (String) async throws -> PostgresConnection,
                              catalog: PostgresConnection) async -> [[String: String]] {
        var named: [[String: String]] = []
        var sessions: [String: PostgresConnection] = [:]
        for var row in evidence {
            defer { named.append(row) }
            guard let file = row["file"] else { continue }
            let parts = file.split(separator: "/").map(String.init)
            let name = parts.last?.split(separator: ".").first.map(String.init) ?? ""
            let nameParts = name.split(separator: "_", maxSplits: 1).map(String.init)
            guard let filenode = nameParts.first, UInt32(filenode) != nil else { continue }
            if nameParts.count == 2 { row["fork"] = nameParts[1] }
            do {
                let session: PostgresConnection, tablespace: String
                if parts.count == 3, parts[0] == "base" {
                    guard let database = try await catalog.query("select datname from pg_catalog.pg_database where oid = $1::oid", [parts[1]]).scalar else { continue }
                    row["database"] = database
                    if sessions[database] == nil { sessions[database] = try await connect(database) }
                    session = sessions[database]!
                    tablespace = "0"
                } else if parts.count == 2, parts[0] == "global" {
                    session = catalog
                    tablespace = "pg_global"
                } else {
                    continue
                }
                let relation = try await session.query("""
                    select pg_catalog.format('%I.%I', n.nspname, c.relname) from pg_catalog.pg_class c
                    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                    where c.oid = pg_catalog.pg_filenode_relation(
                        case when $1 = '0' then 0 else (select oid from pg_catalog.pg_tablespace where spcname = $1) end, $2::oid)
                    """, [tablespace, filenode]).scalar
                if let relation { row["relation"] = relation }
            } catch {
                row["relation"] = "(cannot tell: \(error))"
            }
        }
        return named
    }

    // MARK: amcheck

    /// pg_amcheck `--heapallindexed --parent-check` over what `arguments` select (`--all`, or
    /// the database of the connection): heap tables with verify_heapam, B-tree indexes with
    /// bt_index_parent_check, each heap tuple looked up in every index.
    /// - Parameter databaseNames: scratch database → the backed-up database it holds, for the report.
    func amcheck(arguments: [String], environment: [String: String], databaseNames: [String: String], program: String) async throws -> CheckResult {
        let outcome = try await runProgram(program: program, arguments: Self.amcheckOptions + ["--jobs", "\(jobs)"] + arguments,
                                           environment: environment.merging(Self.untranslated) { $1 }, logger: logger, timeout: .seconds(timeoutSeconds))
        // 0: nothing found; 2: corruption found; anything else: pg_amcheck itself failed.
        var evidence = Self.amcheckProblems(outcome.stdout, databaseNames: databaseNames)
        let relations = Self.damagedRelations(evidence)
        logger.info("pg_amcheck finished", metadata: ["check.program.status": "\(outcome.statusText)", "check.relations_damaged": "\(relations.count)"])
        if outcome.succeeded && evidence.isEmpty {
            return CheckResult(name: "amcheck", passed: true,
                               summary: "every heap table and B-tree index is intact and every heap tuple is in its indexes (pg_amcheck \(Self.amcheckOptions.prefix(2).joined(separator: " ")))")
        }
        let problems = evidence.count
        if evidence.isEmpty { evidence = [["problem": Self.tail(outcome.stderr, or: outcome.statusText)]] }
        let summary = outcome.timedOut ? "pg_amcheck did not finish within drill.check_timeout_seconds (\(timeoutSeconds) s)"
            : relations.isEmpty ? "pg_amcheck failed (\(outcome.statusText))"
            : "\(relations.count) relation(s) damaged: \(relations.prefix(10).joined(separator: ", "))\(relations.count > 10 ? ", …" : "")"
        return CheckResult(name: "amcheck", passed: false, summary: summary,
                           figures: ["relations_damaged": Int64(relations.count), "problems": Int64(problems)],
                           evidence: Array(evidence.prefix(Self.evidenceLimit)))
    }

    /// pg_amcheck's report: a header per damaged place, `heap table "db.public.t", block 0,
    /// offset 1:` or `btree index "db.public.t_pkey":`, then the problem on indented lines.
    static func amcheckProblems(_ stdout: String, databaseNames: [String: String]) -> [[String: String]] {
        var rows: [[String: String]] = []
        var current: [String: String]?
        var message: [String] = []
        func flush() {
            if var row = current {
                row["problem"] = message.joined(separator: " ")
                rows.append(row)
            }
            current = nil
            message = []
        }
        for line in stdout.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix(" ") {
                message.append(line.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "  ", with: " "))
                continue
            }
            flush()
            guard let open = line.firstIndex(of: "\""), let close = line[line.index(after: open)...].firstIndex(of: "\"") else {
                rows.append(["problem": String(line)])
                continue
            }
            var row = ["kind": line[..<open].trimmingCharacters(in: .whitespaces)]
            let qualified = String(line[line.index(after: open)..<close])
            // "db.schema.name": database names are known, so a dot inside one is no problem.
            if let database = databaseNames.keys.sorted(by: { $0.count > $1.count }).first(where: { qualified.hasPrefix($0 + ".") }) {
                row["database"] = databaseNames[database]
                row["relation"] = String(qualified.dropFirst(database.count + 1))
            } else {
                row["relation"] = qualified
            }
            let place = line[line.index(after: close)...].trimmingCharacters(in: CharacterSet(charactersIn: ",: "))
            if !place.isEmpty { row["at"] = place }
            current = row
        }
        flush()
        return rows
    }

    /// `public.t (heap table)`, each once, in the order reported.
    static func damagedRelations(_ evidence: [[String: String]]) -> [String] {
        var seen: [String] = []
        for row in evidence {
            guard let relation = row["relation"] else { continue }
            let name = "\(row["database"].map { "\($0): " } ?? "")\(relation) (\(row["kind"] ?? "relation"))"
            if !seen.contains(name) { seen.append(name) }
        }
        return seen
    }

    // MARK: helpers

    /// The programs' messages and pg_controldata's labels are parsed: never translated ones.
    static let untranslated = ["LC_ALL": "C"]

    func runAsOwner(_ program: String, _ arguments: [String]) async throws -> ProgramOutcome {
        try await runProgram(program: program, arguments: arguments, environment: Self.untranslated, logger: logger, timeout: .seconds(timeoutSeconds), user: owner)
    }

    static func firstQuoted(_ text: String) -> String? {
        guard let open = text.firstIndex(of: "\""), let close = text[text.index(after: open)...].firstIndex(of: "\"") else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    static func tail(_ text: String, or fallback: String) -> String {
        let lines = text.split(separator: "\n").suffix(5).joined(separator: " / ")
        return lines.isEmpty ? fallback : lines
    }
}
