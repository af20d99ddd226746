import Encryption
import Foundation
@testable import ObjectStorage
@testable import PGBackupCore
import PostgresClient
import Synchronization
import Testing

/// Generated inputs for every parser pgbackd feeds with text it did not write itself: the TOML
/// configuration (the whole load path of `pgbackd check --config`), the backup manifest, S3's XML
/// answers and libpq conninfo strings. Each input is a mutation of a valid one (bit flips,
/// truncation, lines duplicated or removed, huge numbers, deep nesting, invalid UTF-8, NULs, very
/// long runs) or a structured random one. A crash ends the test process (a failure by itself);
/// an input that takes longer than 2 s is a hang; an error must be the product's coded error with
/// a clear message. The seed is printed: `PGBACKD_FUZZ_SEED=<seed>` replays a run.
extension Reliability {
    @Suite struct Fuzz {
        static var inputs: Int { ReliabilityScale.pick(ci: 10_000, long: 100_000) }

        // MARK: configuration

        @Test func configurationLoad() async throws {
            let context = try ConfigurationFuzz()
            defer { try? FileManager.default.removeItem(atPath: context.directory) }
            // The valid inputs the mutations start from must load: else the run fuzzes nothing.
            for (index, base) in context.bases.enumerated() {
                #expect(throws: Never.self, "base configuration \(index) must load") {
                    _ = try Configuration.parse(String(fuzzBytes: base), file: context.file)
                }
                try #require(context.load(base) == nil, "base configuration \(index) does not load: \(context.load(base) ?? "")")
            }
            let seed = FuzzRunner.seed("configuration")
            let result = await FuzzRunner.run("configuration", inputs: Self.inputs, seed: seed,
                describe: { String(fuzzBytes: $0) },
                generate: { random, _ in context.generate(&random) },
                check: { context.check($0) })
            #expect(result.refused > result.inputs / 10, "too few inputs were refused: the generator makes nothing invalid")
            #expect(result.accepted > 0, "no input was accepted: the generator makes nothing valid")
            ReliabilityLedger.record(ReliabilityFigures(area: "fuzz", scenario: "configuration (check --config load path)",
                                                        runs: result.inputs, missed: result.missed))
        }

        /// What `pgbackd check --config` prints for bad files: one line naming the file, exit 78.
        @Test func checkPrintsOneClearLineForBadConfigurations() async throws {
            let directory = try temporaryDirectory("fuzz-check")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let bad: [(name: String, text: [UInt8], says: String)] = [
                ("syntax", Array("[repository\ntype = \"file\"\n".utf8), "line 1"),
                ("duplicate key", Array("[repository]\ntype = \"file\"\ntype = \"s3\"\n".utf8), "line"),
                ("deep array", Array("x = \(Mutate.nesting("[", "]", depth: 50_000))\n".utf8), "line"),
                ("deep inline table", Array("x = \(Mutate.nesting("{a=", "}", depth: 50_000))\n".utf8), "line"),
                ("long dotted header", Array("[\(Array(repeating: "a", count: 60).joined(separator: "."))]\n".utf8), "unknown key"),
                // Found by the fuzzer: 50,000 parts overflowed the stack (exit 139, no message).
                ("very long dotted header", Array("[\(Array(repeating: "a", count: 100_000).joined(separator: "."))]\n".utf8), "more than 64 parts"),
                ("very long dotted key", Array("[repository]\n\(Array(repeating: "\"a\"", count: 100_000).joined(separator: "."))=1\n".utf8), "line 2: a dotted key"),
                // Found by the fuzzer: toml++ asserted (abort, exit 134) on a header not starting with a key.
                ("three brackets", Array("[[[\n".utf8), "line 1: a table name must start"),
                ("header starting with a dot", Array("[repository]\ntype = \"file\"\n[.a]\n".utf8), "line 3: a table name must start"),
                ("array header starting with =", Array("[[=]]\n".utf8), "line 1: a table name must start"),
                // Found by the long fuzz run (seed 4365673805964748335): a '}' where an array value must come.
                ("brace closing an empty array", Array("[postgres]\ndatabases = [}\n".utf8), "line 2: a '}' where an array expects"),
                ("brace after an array's comma", Array("[postgres]\ndatabases = [\"a\", # c\n  }\n".utf8), "line 3: a '}' where an array expects"),
                ("brace in an array in an inline table", Array("x = {a=[}]}\n".utf8), "line 1: a '}' where an array expects"),
                ("very long dotted key in an inline table", Array("x = { \(Array(repeating: "b", count: 100_000).joined(separator: ".")) = 1 }\n".utf8), "line 1: a dotted key"),
                ("invalid UTF-8", [0x5B, 0x72, 0x65, 0x70, 0x6F, 0xFF, 0xFE, 0x5D, 0x0A], "line"),
                ("NUL", Array("[repository]\ntype = \"fi\0le\"\n".utf8), "line"),
                ("huge number", Array("[compression]\nlevel = 99999999999999999999999\n".utf8), "line"),
                ("wrong type", Array("[compression]\nlevel = \"fast\"\n".utf8), "compression.level"),
            ]
            for (name, text, says) in bad {
                let file = "\(directory)/\(name.replacingOccurrences(of: " ", with: "-")).toml"
                _ = FileManager.default.createFile(atPath: file, contents: Data(text), attributes: [.posixPermissions: 0o600])
                let run = try await shell(pgbackdExecutable, ["check", "--config", file])
                let lines = run.stderr.split(separator: "\n").filter { !$0.contains("warning") }
                #expect(run.status == 78, "\(name): exit \(run.status), stderr: \(run.stderr.prefix(500))")
                #expect(lines.count == 1 && lines[0].hasPrefix("pgbackd: error: \(file)"), "\(name): \(run.stderr.prefix(500))")
                #expect(run.stderr.contains(says), "\(name): \(run.stderr.prefix(500))")
                #expect(FuzzRunner.unclearMessage(run.stderr, input: String(fuzzBytes: text)) == nil, "\(name): \(run.stderr.prefix(500))")
                print("[fuzz] check --config (\(name)): exit \(run.status): \(run.stderr.prefix(300))")
            }
        }

        // MARK: manifest

        @Test func manifestParser() async throws {
            let context = ManifestFuzz()
            for base in context.bases {
                try #require(context.check(base).isAccepted, "a valid manifest is refused")
            }
            let seed = FuzzRunner.seed("manifest")
            let result = await FuzzRunner.run("manifest", inputs: Self.inputs, seed: seed,
                describe: { String(fuzzBytes: $0) },
                generate: { random, _ in context.generate(&random) },
                check: { context.check($0) })
            #expect(result.refused > result.inputs / 10)
            #expect(result.accepted > 0)
            ReliabilityLedger.record(ReliabilityFigures(area: "fuzz", scenario: "backup manifest parser", runs: result.inputs, missed: result.missed))
        }

        // MARK: S3 XML

        @Test func s3XMLResponses() async throws {
            let context = try S3XMLFuzz()
            defer { try? FileManager.default.removeItem(atPath: context.directory) }
            for base in context.bases {
                try #require(S3XML.parse(base) != nil, "a valid S3 answer does not parse: \(String(fuzzBytes: base))")
            }
            #expect(S3XML.listObjectsV2(context.bases[0])?.objects.count == 2)
            #expect(S3XML.completeMultipartUpload(Array(S3XMLFuzz.completeAsError.utf8)) == .failed(.init(code: "InternalError", message: "We encountered an internal error. Please try again.", requestID: "4442587FB7D0A2F9")))
            let seed = FuzzRunner.seed("S3 XML")
            // Each input goes through up to five readers, one parse each: 2 s per parse.
            let result = await FuzzRunner.run("S3 XML", inputs: Self.inputs, seed: seed, limit: .seconds(10),
                describe: { String(fuzzBytes: $0) },
                generate: { random, _ in context.generate(&random) },
                check: { context.check($0) })
            #expect(result.refused > result.inputs / 10)
            #expect(result.accepted > result.inputs / 20)
            ReliabilityLedger.record(ReliabilityFigures(area: "fuzz", scenario: "S3 XML responses", runs: result.inputs, missed: result.missed))
        }

        /// Found by the fuzzer: an element name with a truncated UTF-8 sequence (`<\u{E2}\u{82}KeyCount>`
        /// in a ListObjectsV2 answer), and `<?xm?>`, crashed the process inside FoundationXML. Now
        /// they are refused as "not a ListBucketResult", and other invalid UTF-8 with them.
        @Test func s3XMLThatCrashedFoundationXMLIsRefused() {
            let documents: [[UInt8]] = [
                Array("<ListBucketResult><".utf8) + [0xE2, 0x82] + Array("KeyCount>2</KeyCount></ListBucketResult>".utf8),
                Array("<Error><Code>".utf8) + [0xFF, 0xFE] + Array("</Code></Error>".utf8),
                Array("<Error a".utf8) + [0xC3, 0x28] + Array("=\"1\"><Code>X</Code></Error>".utf8),
                // And (strlen of NULL in FoundationXML) a processing instruction without data.
                Array("<?xm?>".utf8),
                Array("<Error><?pi?><Code>X</Code></Error>".utf8),
            ]
            for document in documents {
                #expect(S3XML.parse(document) == nil)
                #expect(S3XML.listObjectsV2(document) == nil)
                #expect(S3XML.errorBody(document) == nil)
                #expect(S3XML.completeMultipartUpload(document) == nil)
            }
        }

        /// Found by the fuzzer: 100,000 nested elements crashed the process (the parsed tree
        /// overflowed the stack when it was freed). Now a document nested deeper than any S3
        /// answer is refused; S3's own depth still parses.
        @Test func deeplyNestedS3XMLIsRefusedNotACrash() {
            let deep = Array(Mutate.nesting("<Contents>", "</Contents>", depth: 100_000, inner: "<Key>k</Key>").utf8)
            #expect(S3XML.parse(deep) == nil)
            #expect(S3XML.listObjectsV2(Array(("<ListBucketResult>" + Mutate.nesting("<Contents>", "</Contents>", depth: 100_000) + "</ListBucketResult>").utf8)) == nil)
            let list = Array("<ListBucketResult><Contents><Key>a</Key><Size>1</Size><Owner><ID>x</ID></Owner></Contents></ListBucketResult>".utf8)
            #expect(S3XML.listObjectsV2(list)?.objects.map(\.key) == ["a"])
        }

        // MARK: conninfo

        @Test func conninfoParser() async throws {
            let context = ConninfoFuzz()
            for base in context.bases {
                try #require(context.check(base).isAccepted, "a valid conninfo is refused: \(base)")
            }
            let seed = FuzzRunner.seed("conninfo")
            // Each input is parsed, then quoted and parsed again with up to nine database names: 2 s per parse.
            let result = await FuzzRunner.run("conninfo", inputs: Self.inputs, seed: seed, limit: .seconds(10),
                describe: { $0 },
                generate: { random, _ in context.generate(&random) },
                check: { context.check($0) })
            #expect(result.refused > result.inputs / 20)
            #expect(result.accepted > result.inputs / 20)
            ReliabilityLedger.record(ReliabilityFigures(area: "fuzz", scenario: "conninfo parser", runs: result.inputs, missed: result.missed))
        }
    }
}

extension FuzzOutcome {
    var isAccepted: Bool { if case .accepted = self { true } else { false } }
}

// MARK: - configuration inputs

/// Valid configurations, their side files (S3 secret, webhook token, encryption key), and the
/// generator: mutations of the valid files and structured random ones from the real key names.
struct ConfigurationFuzz: Sendable {
    let directory: String
    let file: String
    let bases: [[UInt8]]
    let values: [String]

    init() throws {
        directory = try temporaryDirectory("fuzz-config")
        file = "\(directory)/pgbackd.toml"
        let secret = "\(directory)/s3.secret", token = "\(directory)/webhook.token", key = "\(directory)/repo.key"
        try "fuzz-secret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        try "Bearer fuzz\n".write(toFile: token, atomically: true, encoding: .utf8)
        try RepositoryKey.generate().write(to: key)
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let example = try String(contentsOf: source.appendingPathComponent("config/pgbackd.toml"), encoding: .utf8)
        // The commented example with every optional line switched on, minus the lines that name
        // files or programs this host lacks.
        let uncommented = example.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let text = String(line)
            guard text.range(of: #"^# (\[\[?[a-z0-9_.]+\]\]?\s*(#.*)?$|[a-z_]+ = )"#, options: .regularExpression) != nil else { return text }
            return String(text.dropFirst(2))
        }.joined(separator: "\n")
            .replacingOccurrences(of: "type = \"file\"", with: "type = \"s3\"")
            .replacingOccurrences(of: "/etc/pgbackd/s3.secret", with: secret)
            .replacingOccurrences(of: "/etc/pgbackd/webhook.token", with: token)
            .replacingOccurrences(of: "/etc/pgbackd/repository.key", with: key)
            .replacingOccurrences(of: "/etc/pgbackd/internal-ca.pem", with: "/etc/ssl/certs/ca-certificates.crt")
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("secret_access_key = ") && !$0.hasPrefix("scratch_major = ") }
            .joined(separator: "\n")
        let s3 = """
            [repository]
            type = "s3"
            stanza = "db-1"
            [repository.s3]
            endpoint = "http://127.0.0.1:9000"
            bucket = "pgbackd-fuzz"
            access_key_id = "AKIAFUZZ"
            secret_access_key_file = "\(secret)"
            part_size_mib = 5
            [postgres]
            conninfo = "host=/tmp user=postgres"
            databases = ["daylog", "app"]
            [[alerts.webhook]]
            events = ["drill.failed"]
            url = "http://127.0.0.1:9/hook/TOKEN"
            headers = { Authorization_file = "\(token)", X-Team = "db" }
            [[alerts.command]]
            events = ["backup.failed"]
            run = ["/bin/true", "--x"]
            [encryption]
            key_file = "\(key)"
            """
        bases = [Array(example.utf8), Array(uncommented.utf8), Array(s3.utf8), Array("".utf8)]
        values = [
            "\"\"", "\"file\"", "\"s3\"", "\"path\"", "\"virtual\"", "\"spool\"", "\"direct\"", "\"main\"", "\"/tmp\"", "\"\(directory)\"",
            "\"/nonexistent/x\"", "\"relative/x\"", "\"/dev/null\"", "\"\(secret)\"", "\"\(key)\"", "\"\(token)\"", "\"\(directory)/missing\"",
            "\"http://127.0.0.1:9\"", "\"https://s3.example.com/base\"", "\"ftp://x\"", "\"http://\"", "\"0 2 * * *\"", "\"*/5 * * * *\"",
            "\"61 25 * * *\"", "\"@daily\"", "\"26h\"", "\"8d\"", "\"0s\"", "\"-1h\"", "\"99999999999999999999d\"", "\"Europe/Berlin\"", "\"Mars/Olympus\"",
            "\"127.0.0.1:9187\"", "\"[::1]:0\"", "\":99999\"", "\"host=/tmp dbname=x\"", "\"postgresql://u@h/db\"", "\"host='\"", "\"select 1\"",
            "\"public.t\"", "\"octet_length\"", "\"drill.failed\"", "\"backup.failed\"", "\"*\"", "\"libdeflate\"", "\"zlib\"", "\"日本語\"",
            "\"\\u0000\"", "\"\\uD800\"", "\"a\\\"b\"", "'literal \\ string'", "\"\"\"multi\nline\"\"\"", "\"\(String(repeating: "x", count: 5000))\"",
            "0", "1", "-1", "5", "64", "65", "5120", "9223372036854775807", "-9223372036854775808", "1.5", "nan", "inf", "-0.0", "1e308",
            "true", "false", "[]", "[\"daylog\"]", "[\"\", \"x\"]", "[1, 2]", "[\"/bin/true\"]", "[\"relative\"]", "[[1], [2]]",
            "{ Authorization_file = \"\(token)\" }", "{ Authorization_file = \"/nonexistent\" }", "{ X = \"y\" }", "{ a = { b = 1 } }", "{}",
            "1979-05-27T07:32:00Z", "07:32:00", "1979-05-27",
        ]
    }

    static let schema: [(table: String, array: Bool, keys: [String])] = [
        ("repository", false, ["type", "path", "stanza"]),
        ("repository.s3", false, ["endpoint", "bucket", "region", "prefix", "uri_style", "access_key_id", "secret_access_key", "secret_access_key_file", "verify_tls", "ca_file", "part_size_mib", "parallel_parts", "signing"]),
        ("postgres", false, ["conninfo", "databases", "bin_dir"]),
        ("compression", false, ["level", "threads", "engine"]),
        ("drill", false, ["jobs", "staging_dir", "check_timeout_seconds", "amcheck", "conninfo", "scratch_major", "bin_dir", "max_restore_seconds"]),
        ("retention", false, ["keep_last", "keep_daily", "keep_weekly", "keep_monthly", "min_keep"]),
        ("wal", false, ["mode", "spool_dir", "max_spool_mib", "max_lag_seconds", "parallel_uploads", "rescan_seconds", "prefetch"]),
        ("schedule", false, ["time_zone", "backup", "base_backup", "drill", "retention", "wal_check", "catch_up"]),
        ("daemon", false, ["stop_timeout_seconds", "state_dir", "wal_watcher", "max_backup_age", "max_unverified_age"]),
        ("encryption", false, ["key_file", "old_key_files"]),
        ("metrics", false, ["listen"]),
        ("checks.content_size", true, ["table", "column", "max_bytes", "measure", "database"]),
        ("checks.sql", true, ["name", "query", "database"]),
        ("alerts.command", true, ["events", "run", "timeout_seconds"]),
        ("alerts.webhook", true, ["events", "url", "headers", "timeout_seconds", "ca_file"]),
    ]

    func generate(_ random: inout FuzzRandom) -> [UInt8] {
        switch random.int(0..<10) {
        case 0..<6: return Mutate.apply(random.pick(bases), &random)
        case 6..<9: return Array(structured(&random).utf8)
        default: return Array(pathological(&random).utf8)
        }
    }

    /// A document made of the real tables and keys, with values of any type.
    func structured(_ random: inout FuzzRandom) -> String {
        var text = ""
        for _ in 0..<random.int(1...8) {
            let table = random.pick(Self.schema)
            let header = random.chance(0.05) ? "[\(table.table)]" : table.array ? "[[\(table.table)]]" : "[\(table.table)]"
            text += random.chance(0.03) ? "[\(table.table).x]\n" : header + "\n"
            for _ in 0..<random.int(0...6) {
                let key = random.chance(0.05) ? random.pick(["unknown", "Type", "endpont", "level ", "\"quoted key\"", "a.b", "x-y"]) : random.pick(table.keys)
                text += "\(key) = \(random.pick(values))\n"
            }
        }
        return text
    }

    /// Deep nesting, very long keys and values, many tables.
    func pathological(_ random: inout FuzzRandom) -> String {
        let depth = random.pick([100, 1_000, 10_000, 100_000])
        switch random.int(0..<7) {
        case 0: return "x = " + Mutate.nesting("[", "]", depth: depth, closed: random.chance(0.5))
        case 1: return "x = " + Mutate.nesting("{a=", "}", depth: depth, closed: random.chance(0.5))
        case 2: return "[" + Array(repeating: "a", count: depth).joined(separator: ".") + "]\nk = 1\n"
        case 3: return "[repository]\nstanza = \"" + String(repeating: "s", count: depth * 3) + "\"\n"
        case 4: return String(repeating: "[[alerts.command]]\nrun = [\"/bin/true\"]\nevents = [\"*\"]\n", count: min(depth, 5_000))
        case 5: return "[postgres]\ndatabases = [" + Array(repeating: "\"d\"", count: depth).joined(separator: ",") + "]\n"
        default: return "[repository]\n" + String(repeating: "k", count: depth) + " = 1\n"
        }
    }

    /// Nil when the bytes load; else why not.
    func load(_ bytes: [UInt8]) -> String? {
        switch check(bytes) {
        case .accepted: nil
        case .refused: "refused"
        case .unclear(let why): why
        }
    }

    func check(_ bytes: [UInt8]) -> FuzzOutcome {
        guard FileManager.default.createFile(atPath: file, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            return .unclear("the test could not write \(file)")
        }
        do {
            _ = try Configuration.load(path: file, environment: [:])
            return .accepted
        } catch {
            let text = String(describing: error)
            guard ExitStatus(error) == .configuration else {
                return .unclear("\(type(of: error)) (exit \(ExitStatus(error).rawValue), not 78): \(text.prefix(400))")
            }
            if let why = FuzzRunner.unclearMessage(text, input: String(fuzzBytes: bytes)) { return .unclear(why) }
            if let error = error as? ConfigurationError, error.file != file {
                return .unclear("the error does not name the file: \(text.prefix(400))")
            }
            return .refused
        }
    }
}

// MARK: - manifest inputs

struct ManifestFuzz: Sendable {
    let bases: [[UInt8]]

    init() {
        let start = Date(timeIntervalSince1970: 1_795_573_000.123)
        let dump = Artifact(key: "backups/20261125T020000Z-logical/daylog.dump.gz", content: .databaseDump, database: "daylog",
                            rawSize: 123_456, rawSha256: String(repeating: "a", count: 64), storedSize: 23_456, storedSha256: String(repeating: "b", count: 64), crc32: 3_735_928_559)
        let globals = Artifact(key: "backups/20261125T020000Z-logical/globals.sql.gz", content: .globals, database: nil,
                               rawSize: 512, rawSha256: String(repeating: "c", count: 64), storedSize: 300, storedSha256: String(repeating: "d", count: 64), crc32: 1)
        let logical = Manifest(
            formatVersion: 1, backupId: "20261125T020000Z-logical", kind: .logical, stanza: "main", startedAt: start, finishedAt: start + 61,
            pgbackdVersion: "0.16.0", server: ServerInfo(versionNumber: 170_011, version: "PostgreSQL 17.11", systemIdentifier: "7412345678901234567", timeline: 1),
            compression: CompressionInfo(algorithm: "gzip", level: 1, engine: "libdeflate"), artifacts: [globals, dump],
            databases: [DatabaseSnapshot(
                name: "daylog", snapshot: "00000003-0000001B-1", rowCounts: ["public.auth_user": 10, "public.journal_journalentry": 1000],
                foreignKeys: [ForeignKey(table: "public.journal_journalentry", quotedTable: "public.journal_journalentry", name: "fk_user", columns: ["user_id"],
                                         referencedTable: "public.auth_user", quotedReferencedTable: "public.auth_user", referencedColumns: ["id"],
                                         matchType: "s", definition: "FOREIGN KEY (user_id) REFERENCES public.auth_user(id)", actions: "aa--")],
                objects: ObjectCensus(schemas: ["public": .init(tables: 3, indexes: 4, constraints: 5, sequences: 1, functions: 0, views: 0)], excludesExtensionMembers: true),
                properties: nil, largeObjects: 0, extensions: ["plpgsql": "1.0"])],
            rolePasswords: true)
        let base = Manifest(
            formatVersion: 1, backupId: "20261125T010000Z-base", kind: .base, stanza: "main", startedAt: start, finishedAt: start + 5,
            pgbackdVersion: "0.16.0", server: ServerInfo(versionNumber: 150_018, version: "PostgreSQL 15.18", systemIdentifier: "7412345678901234567", timeline: 2),
            compression: CompressionInfo(algorithm: "gzip", level: 6), artifacts: [
                Artifact(key: "backups/20261125T010000Z-base/base.tar.gz", content: .baseTar, database: nil, rawSize: 1 << 30, rawSha256: String(repeating: "e", count: 64),
                         storedSize: 1 << 20, storedSha256: String(repeating: "f", count: 64), crc32: 0),
            ], databases: [],
            wal: WALRange(timeline: 2, startLSN: "0/2000028", stopLSN: "0/2000100", segmentSize: 16 << 20, startSegment: "000000020000000000000002", stopSegment: "000000020000000000000002"))
        bases = [try! logical.encoded(), try! base.encoded()]
    }

    func generate(_ random: inout FuzzRandom) -> [UInt8] {
        switch random.int(0..<10) {
        case 0..<5: return Mutate.apply(random.pick(bases), &random)
        case 5..<9: return structured(&random)
        default:
            let depth = random.pick([100, 1_000, 10_000, 50_000])
            return Array(random.pick([
                Mutate.nesting("[", "]", depth: depth, closed: random.chance(0.5)),
                Mutate.nesting("{\"a\":", "}", depth: depth, closed: random.chance(0.5)),
                "{\"format_version\":1,\"artifacts\":" + Mutate.nesting("[", "]", depth: depth) + "}",
                "\"" + String(repeating: "\\u0000", count: depth) + "\"",
                String(repeating: " ", count: depth) + "{}",
            ]).utf8)
        }
    }

    /// A valid manifest with one value anywhere in it replaced, removed, or a key added.
    func structured(_ random: inout FuzzRandom) -> [UInt8] {
        guard var object = try? JSONSerialization.jsonObject(with: Data(random.pick(bases))) else { return [] }
        for _ in 0..<random.int(1...3) {
            object = Self.edit(object, &random, depth: 0)
        }
        return (try? Array(JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed]))) ?? []
    }

    static func edit(_ value: Any, _ random: inout FuzzRandom, depth: Int) -> Any {
        if var object = value as? [String: Any], !object.isEmpty, random.chance(0.8) {
            let key = random.pick(object.keys.sorted())
            switch random.int(0..<10) {
            case 0: object.removeValue(forKey: key)
            case 1: object[random.pick(["extra", "format_version", "FORMAT_VERSION", "formatVersion", key + "_x"])] = randomValue(&random)
            case 2: object[key] = randomValue(&random)
            default: object[key] = edit(object[key]!, &random, depth: depth + 1)
            }
            return object
        }
        if var array = value as? [Any], !array.isEmpty, random.chance(0.8) {
            let index = random.int(0..<array.count)
            switch random.int(0..<6) {
            case 0: array.remove(at: index)
            case 1: array.append(array[index])
            case 2: array[index] = randomValue(&random)
            default: array[index] = edit(array[index], &random, depth: depth + 1)
            }
            return array
        }
        return randomValue(&random)
    }

    static func randomValue(_ random: inout FuzzRandom) -> Any {
        switch random.int(0..<14) {
        case 0: return NSNull()
        case 1: return random.pick([0, -1, 1, 2, Int.max, Int.min, Int(Int32.max) + 1, 4_294_967_296])
        case 2: return random.pick([1e300, -1e300, 0.5, 1.5, 3.0e19, -0.0])
        case 3: return random.chance(0.5)
        case 4: return random.pick(["", "logical", "base", "gzip", "database-dump", "base-tar", "globals", "../../etc/passwd", "2026-11-25T02:00:00Z",
                                   "2026-11-25T02:00:00.123Z", "not a time", "9999-99-99T99:99:99Z", "0/2000028", "zz", "\u{0}", "\u{FEFF}", "\u{10FFFF}"])
        case 5: return String(repeating: random.pick(["a", "é", "\\", "\""]), count: random.pick([1_000, 20_000]))
        case 6: return [] as [Any]
        case 7: return [:] as [String: Any]
        case 8: return [randomValue(&random), randomValue(&random)]
        case 9: return ["key": randomValue(&random)]
        case 10: return Decimal(string: "123456789012345678901234567890")!
        case 11: return Array(repeating: "x", count: random.pick([10, 2_000]))
        case 12: return random.pick([Int64.max, Int64.min, Int64(UInt32.max) + 1]) as Int64
        default: return "\(random.next())"
        }
    }

    /// Through the repository's reader (`Repository.readManifest`), as `show`, `restore` and
    /// `drill` read a manifest.
    func check(_ bytes: [UInt8]) -> FuzzOutcome {
        let outcome = OutcomeBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            let storage = MemoryStorage()
            let repository = Repository(storage: storage, stanza: "fuzz")
            let key = "fuzz/backups/20261125T020000Z-logical/manifest.json"
            let result: FuzzOutcome
            do {
                _ = try await storage.put(key: key, bytes: bytes)
                let manifest = try await repository.readManifest(key: key)
                result = manifest.formatVersion <= Manifest.currentFormatVersion ? .accepted : .unclear("accepted format version \(manifest.formatVersion)")
            } catch {
                let text = String(describing: error)
                if ExitStatus(error) != .dataError {
                    result = .unclear("\(type(of: error)) (exit \(ExitStatus(error).rawValue), not 65): \(text.prefix(400))")
                } else if let why = FuzzRunner.unclearMessage(text, input: String(fuzzBytes: bytes)) {
                    result = .unclear(why)
                } else if !text.contains(key) && !text.hasPrefix("manifest of ") {
                    result = .unclear("the error does not name the manifest: \(text.prefix(400))")
                } else {
                    result = .refused
                }
            }
            outcome.value.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return outcome.value.withLock { $0 } ?? .unclear("no outcome")
    }
}

private final class OutcomeBox: Sendable {
    let value = Mutex<FuzzOutcome?>(nil)
}

// MARK: - S3 XML inputs

struct S3XMLFuzz: Sendable {
    let directory: String
    /// A file an external entity could name: its content must never reach a parsed value.
    let canaryFile: String
    static let canary = "XXE-CANARY-7f3a9c"
    let bases: [[UInt8]]

    static let completeAsError = """
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>
        """

    init() throws {
        directory = try temporaryDirectory("fuzz-xml")
        canaryFile = "\(directory)/canary.txt"
        try Self.canary.write(toFile: canaryFile, atomically: true, encoding: .utf8)
        let documents = [
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>pgbackd-test</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken><Contents><Key>p/main/backups/20261125T020000Z-logical/manifest.json</Key><LastModified>2026-11-25T10:09:32.000Z</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>2048</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>p/main/wal/000000010000000000000002-&amp;&lt;.gz</Key><LastModified>2026-11-25T10:09:33Z</LastModified><Size>16777216</Size></Contents></ListBucketResult>
            """,
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><AWSAccessKeyId>AKIAFUZZ</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256</StringToSign><RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>
            """,
            """
            <Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region><RequestId>1</RequestId></Error>
            """,
            """
            <Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message><RangeRequested>bytes=100-</RangeRequested><ActualObjectSize>42</ActualObjectSize></Error>
            """,
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>pgbackd-test</Bucket><Key>p/main/backups/x/base.tar.gz</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>
            """,
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://127.0.0.1/pgbackd-test/k</Location><Bucket>pgbackd-test</Bucket><Key>k</Key><ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag></CompleteMultipartUploadResult>
            """,
            "<CompleteMultipartUploadResponse><Bucket>b</Bucket><Key>k</Key><ETag>&quot;abc-2&quot;</ETag></CompleteMultipartUploadResponse>",
            Self.completeAsError,
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>pgbackd-test</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>p/main/b</NextKeyMarker><NextUploadIdMarker>xyz</NextUploadIdMarker><IsTruncated>true</IsTruncated><Upload><Key>p/main/backups/a</Key><UploadId>abc</UploadId><Initiated>2026-11-25T10:09:32.000Z</Initiated></Upload><Upload><Key>p/main/backups/b</Key><UploadId><![CDATA[x<y]]></UploadId></Upload></ListMultipartUploadsResult>
            """,
        ]
        bases = documents.map { Array($0.utf8) }
    }

    static let names = ["ListBucketResult", "Contents", "Key", "Size", "LastModified", "IsTruncated", "NextContinuationToken", "Error", "Code", "Message",
                        "Region", "RequestId", "ActualObjectSize", "BucketName", "InitiateMultipartUploadResult", "UploadId", "CompleteMultipartUploadResult",
                        "CompleteMultipartUploadResponse", "ETag", "ListMultipartUploadsResult", "Upload", "Initiated", "NextKeyMarker", "NextUploadIdMarker", "x:Key"]
    static let texts = ["", "true", "false", "0", "-1", "9223372036854775808", "99999999999999999999", "2026-11-25T10:09:32.000Z", "2026-13-45T99:99:99Z",
                        "SlowDown", "InternalError", "NoSuchKey", "AccessDenied", "SignatureDoesNotMatch", "NoSuchUpload", "&amp;", "&lt;&gt;", "&#0;", "&#x10FFFF;",
                        "&#xD800;", "&unknown;", "<![CDATA[<Error>]]>", "<!-- c -->", "<?pi x?>", "\u{0}", "\u{FFFE}", "é", "\u{202E}"]

    func generate(_ random: inout FuzzRandom) -> [UInt8] {
        switch random.int(0..<20) {
        case 0..<11: return Mutate.apply(random.pick(bases), &random)
        case 11..<18: return Array(("<?xml version=\"1.0\"?>" + element(&random, depth: 0)).utf8)
        default: return Array(pathological(&random).utf8)
        }
    }

    func element(_ random: inout FuzzRandom, depth: Int) -> String {
        let name = random.pick(Self.names)
        var inner = ""
        for _ in 0..<random.int(0...(depth < 3 ? 4 : 1)) {
            inner += random.chance(0.4) || depth >= 4 ? random.pick(Self.texts) : element(&random, depth: depth + 1)
        }
        let attributes = random.chance(0.1) ? " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"" : random.chance(0.05) ? " a=\"1\" a=\"2\"" : ""
        return random.chance(0.03) ? "<\(name)\(attributes)>\(inner)" : "<\(name)\(attributes)>\(inner)</\(name)>"
    }

    /// Entity expansion, external entities, deep nesting, huge documents.
    func pathological(_ random: inout FuzzRandom) -> String {
        switch random.int(0..<7) {
        case 0: // billion laughs
            var entities = "<!ENTITY l0 \"lol\">"
            for level in 1...10 { entities += "<!ENTITY l\(level) \"" + String(repeating: "&l\(level - 1);", count: 10) + "\">" }
            return "<?xml version=\"1.0\"?><!DOCTYPE Error [\(entities)]><Error><Code>&l10;</Code><Message>&l10;</Message></Error>"
        case 1: // external entities: must not be read
            return "<?xml version=\"1.0\"?><!DOCTYPE Error [<!ENTITY x SYSTEM \"file://\(canaryFile)\"><!ENTITY % p SYSTEM \"file://\(canaryFile)\">]><Error><Code>&x;</Code><Message>&x;</Message></Error>"
        case 2:
            let depth = random.pick([100, 1_000, 10_000, 100_000])
            return Mutate.nesting("<Contents>", "</Contents>", depth: depth, inner: "<Key>k</Key>", closed: random.chance(0.5))
        case 3:
            return "<ListBucketResult>" + String(repeating: "<Contents><Key>k</Key><Size>1</Size></Contents>", count: random.pick([1_000, 5_000])) + "</ListBucketResult>"
        case 4:
            return "<Error><Code>" + String(repeating: "C", count: random.pick([10_000, 200_000])) + "</Code><Message>" + String(repeating: "m", count: 100_000) + "</Message></Error>"
        case 5:
            return "<ListBucketResult " + (0..<random.pick([100, 10_000])).map { "a\($0)=\"\($0)\"" }.joined(separator: " ") + "/>"
        default:
            return "<?xml version=\"1.0\" encoding=\"\(random.pick(["UTF-16", "EBCDIC", "nonsense", "ISO-8859-1"]))\"?><Error><Code>X</Code></Error>"
        }
    }

    /// Every parser over the bytes. Properties: an external entity is never read; a document
    /// whose root is `Error` never completes a multipart upload; a parsed error body maps to a
    /// StorageError with a message.
    func check(_ bytes: [UInt8]) -> FuzzOutcome {
        let mapper = S3ErrorMapper(bucket: "pgbackd-test", endpoint: "http://127.0.0.1:9000", accessKeyID: "AKIAFUZZ")
        var parsed = 0
        var strings: [String] = []
        if let body = S3XML.errorBody(bytes) {
            parsed += 1
            strings += [body.code, body.message, body.region, body.bucketName, body.requestID].compactMap { $0 }
            for status in [200, 301, 400, 403, 404, 409, 412, 416, 429, 500, 503] {
                let error = mapper.error(status: status, body: body, headers: [:], operation: "GetObject", key: "k", attempts: 1)
                if error.message.isEmpty { return .unclear("an empty StorageError message for \(status) \(body.code)") }
            }
        }
        // The reader S3's answer to each request goes through, by the root the document has
        // (and one other, at random, to see that it refuses it).
        let root = S3XML.parse(bytes)?.name
        if root == "ListBucketResult" || bytes.count % 7 == 0, let page = S3XML.listObjectsV2(bytes) {
            parsed += 1
            strings += page.objects.map(\.key) + [page.nextContinuationToken].compactMap { $0 }
        }
        if root == "ListMultipartUploadsResult" || bytes.count % 7 == 1, let page = S3XML.listMultipartUploads(bytes) {
            parsed += 1
            strings += page.uploads.flatMap { [$0.key, $0.uploadID] }
        }
        if root == "InitiateMultipartUploadResult" || bytes.count % 7 == 2, let id = S3XML.initiateMultipartUpload(bytes) {
            parsed += 1
            strings.append(id)
            if id.isEmpty { return .unclear("an empty upload id was accepted") }
        }
        switch S3XML.completeMultipartUpload(bytes) {
        case .completed?:
            parsed += 1
            if let root, !root.hasPrefix("CompleteMultipartUpload") {
                return .unclear("a \(root) document completed a multipart upload")
            }
        case .failed(let body)?:
            parsed += 1
            if root != "Error" { return .unclear("a failure parsed from a non-Error document") }
            if body.code.isEmpty { return .unclear("an error body without a code") }
        case nil:
            if S3XML.errorBody(bytes) != nil { return .unclear("an <Error> body was not seen as a failed CompleteMultipartUpload") }
        }
        if strings.contains(where: { $0.contains(Self.canary) }) { return .unclear("an external entity was read into a parsed value") }
        return parsed > 0 ? .accepted : .refused
    }
}

// MARK: - conninfo inputs

struct ConninfoFuzz: Sendable {
    let bases = [
        "host=/var/run/postgresql user=postgres dbname=postgres",
        "host=127.0.0.1 port=5432 user=backup dbname='my db' application_name=pgbackd sslmode=require connect_timeout=10",
        "postgresql://backup:s%40cret@db.example.com:5433/daylog?sslmode=verify-full&application_name=x",
        "postgres://[::1]:5432,127.0.0.1:5433/db?target_session_attrs=read-write",
        "host=a,b port=1,2 options='-c statement_timeout=0' password='it\\'s'",
        "",
        "dbname=x",
    ]

    static let keywords = ["host", "hostaddr", "port", "dbname", "user", "password", "passfile", "options", "application_name", "sslmode",
                           "connect_timeout", "target_session_attrs", "service", "channel_binding", "keepalives", "sslrootcert", "gssencmode", "nosuch", "Host", ""]
    static let values = ["", "x", "'quoted value'", "'unterminated", "a\\ b", "'a\\'b'", "\\", "5432", "-1", "99999999999", "disable", "require", "verify-full",
                         "/tmp", "a,b,c", "::1", "[::1]", "é", "'\u{0}'", "%", "%zz", "=", "==", "' '", "'it''s'"]

    func generate(_ random: inout FuzzRandom) -> String {
        switch random.int(0..<10) {
        case 0..<4: return String(fuzzBytes: Mutate.apply(Array(random.pick(bases).utf8), &random).filter { $0 != 0 })
        case 4..<7:
            return (0..<random.int(0...6)).map { _ in
                "\(random.pick(Self.keywords))\(random.pick(["=", " = ", "", "=="]))\(random.pick(Self.values))"
            }.joined(separator: random.pick([" ", "  ", "\t", "\n", ""]))
        case 7..<9:
            let user = random.pick(["", "u@", "u:p@", "u:p%40x@", "%@", ":@"])
            let host = random.pick(["", "h", "[::1]", "[::1", "h:99999", "h:-1", "h,h2:5", "%2Ftmp", "h:port"])
            let query = random.pick(["", "?sslmode=require", "?x=y", "?&&", "?=", "?host=%2Ftmp&port=1", "?options=-c%20a%3Db"])
            return "\(random.pick(["postgresql://", "postgres://", "postgresql:/", "pg://"]))\(user)\(host)\(random.pick(["", "/", "/db", "/d%20b", "/%zz"]))\(query)"
        default:
            // A conninfo is one line of the configuration: up to 100,000 characters is absurd enough.
            let long = String(repeating: random.pick(["a", "\\", "'", " ", "="]), count: random.pick([1_000, 20_000, 60_000]))
            return random.pick(["host=\(long)", "dbname='\(long)'", long, "postgresql://\(long)", String(repeating: "a=b ", count: 10_000)])
        }
    }

    /// libpq through ``Conninfo``: an error is PostgresError `invalidConninfo` with libpq's
    /// message; what parses survives ``Conninfo/with(database:)`` (parses again, same settings,
    /// the new database) with any database name.
    func check(_ text: String) -> FuzzOutcome {
        do {
            let parsed = try Conninfo(text)
            let names = text.utf8.count > 2_000 ? ["a'b\\c"] : ["postgres", "my db", "a'b\\c", "x = y", "日本", " lead", "=", "\\'", "trail\\"]
            for database in names {
                let again: Conninfo
                do {
                    again = try Conninfo(parsed.with(database: database))
                } catch {
                    return .unclear("with(database: \(database.debugDescription)) does not parse again: \(error)")
                }
                var expected = parsed.settings
                expected["dbname"] = database
                if again.settings != expected {
                    return .unclear("with(database: \(database.debugDescription)) changed the settings: \(parsed.settings) → \(again.settings)")
                }
            }
            return .accepted
        } catch let error as PostgresError {
            guard error.code == .invalidConninfo else { return .unclear("PostgresError \(error.code), not invalidConninfo: \(error)") }
            if let why = FuzzRunner.unclearMessage(error.message, input: text) { return .unclear(why) }
            if error.message == "invalid conninfo: " || error.message == "invalid conninfo: cannot parse" { return .unclear("libpq's reason is missing: \(error.message)") }
            return .refused
        } catch {
            return .unclear("\(type(of: error)): \(error)")
        }
    }
}
