import Foundation
@testable import PGBackupCore
import Testing

/// Issue #14: error texts and documents name real configuration keys only. The schema is what the
/// configuration readers ask for (``TOMLReader/AskedKeys``) while loading a file that holds every
/// table; every dotted key a message or a document names must be in it.
///
/// What counts as a key reference, precisely: a run of lower-case snake_case words joined by dots
/// (`repository.s3.part_size_mib`), not preceded by a word character, `.`, `/` or `-` (so not
/// the middle of `pgbackd.wal.spool` or `/postgres.log`) and not followed by a word character or
/// `(`, whose first word is a top-level table of the schema, that is not an alert event name
/// (`wal.lag`, `drill.failed`) and does not end in a file extension (`.json`, `.log`…). In Swift
/// sources only string literals count (interpolations left out), and a literal used as a
/// dictionary key (`metadata: ["wal.file": …]`, `logger[metadataKey: "retention.dry_run"]`) is
/// a log or evidence field, not a key. In documents (docs/*.md, README.md, config/pgbackd.toml)
/// every such token counts.
@Suite struct ConfigurationKeyReferencesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Every table the readers know, each present (arrays of tables with one element), so that the
    /// readers of all of them run. The keys themselves may stay absent: a reader records what it
    /// asks for, present or not.
    static let everyTable = """
        [repository]
        [repository.s3]
        [postgres]
        [compression]
        [drill]
        [[checks.content_size]]
        table = "public.t"
        column = "c"
        max_bytes = 1
        [[checks.sql]]
        name = "n"
        query = "select 1 where false"
        [[alerts.command]]
        events = ["*"]
        run = ["/bin/true"]
        [[alerts.webhook]]
        events = ["*"]
        url = "https://hooks.example.com/pgbackd"
        [alerts.webhook.headers]
        X-Example = "value"
        [wal]
        [retention]
        [schedule]
        [daemon]
        [metrics]
        [encryption]
        key_file = "/etc/pgbackd/repo.key"
        """

    /// Tables whose keys are the operator's own names, not pgbackd's: HTTP header names.
    static let freeForm: Set<String> = ["alerts.webhook.headers"]

    static let fileExtensions: Set<String> = [
        "conf", "gz", "json", "lock", "log", "md", "pem", "pid", "py", "secret", "service", "sh", "sql", "swift",
        "tar", "timer", "tmp", "toml", "txt", "yaml", "yml",
    ]

    struct Schema {
        var keys: Set<String>
        var tables: Set<String>
        var topLevel: Set<String>

        func knows(_ token: String) -> Bool {
            keys.contains(token) || ConfigurationKeyReferencesTests.freeForm.contains { token.hasPrefix($0 + ".") }
        }
    }

    static func schema() throws -> Schema {
        let asked = TOMLReader.AskedKeys()
        _ = try Configuration.parse(everyTable, file: "every-table.toml", environment: [:], asked: asked)
        return Schema(keys: asked.keys, tables: asked.tables, topLevel: Set(asked.keys.filter { !$0.contains(".") }))
    }

    struct Offender: CustomStringConvertible {
        var file: String
        var line: Int
        var token: String
        var description: String { "\(file):\(line): \(token)" }
    }

    static let tokenPattern = try! NSRegularExpression(
        pattern: #"(?<![A-Za-z0-9_./\-])[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+(?![A-Za-z0-9_(])"#)

    static let eventNames = Set(AlertEventName.known.map(\.rawValue))

    /// The tokens of `text` that are configuration key references by the rule above, with their
    /// line (`firstLine` is the line `text` starts on).
    static func references(in text: String, firstLine: Int, topLevel: Set<String>) -> [(line: Int, token: String)] {
        let ns = text as NSString
        return tokenPattern.matches(in: text, range: NSRange(location: 0, length: ns.length)).compactMap { match in
            let token = ns.substring(with: match.range)
            let words = token.split(separator: ".")
            guard topLevel.contains(String(words[0])), !eventNames.contains(token),
                  !fileExtensions.contains(String(words.last!)) else { return nil }
            let before = ns.substring(to: match.range.location)
            return (firstLine + before.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }, token)
        }
    }

    static func files(under directory: String, suffix: String) -> [String] {
        let base = root.appendingPathComponent(directory).path
        guard let enumerator = FileManager.default.enumerator(atPath: base) else { return [] }
        return enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(suffix) }.sorted().map { "\(directory)/\($0)" }
    }

    static func read(_ relative: String) throws -> String {
        try String(contentsOfFile: root.appendingPathComponent(relative).path, encoding: .utf8)
    }

    static func offenders(schema: Schema) throws -> (swift: [Offender], documents: [Offender], scannedLiterals: Int, documentReferences: Int) {
        var swift: [Offender] = []
        var literals = 0
        for file in files(under: "Sources", suffix: ".swift") {
            for literal in SwiftStringLiterals.scan(try read(file)) where !literal.isDictionaryKey {
                literals += 1
                for reference in references(in: literal.text, firstLine: literal.line, topLevel: schema.topLevel) where !schema.knows(reference.token) {
                    swift.append(Offender(file: file, line: reference.line, token: reference.token))
                }
            }
        }
        var documents: [Offender] = []
        var documentReferences = 0
        for file in files(under: "docs", suffix: ".md") + ["README.md", "config/pgbackd.toml"] {
            for reference in references(in: try read(file), firstLine: 1, topLevel: schema.topLevel) {
                documentReferences += 1
                if !schema.knows(reference.token) { documents.append(Offender(file: file, line: reference.line, token: reference.token)) }
            }
        }
        return (swift, documents, literals, documentReferences)
    }

    @Test func theSchemaHoldsEveryTableAndTheirKeys() throws {
        let schema = try Self.schema()
        #expect(schema.topLevel == ["repository", "postgres", "compression", "drill", "checks", "alerts", "wal", "retention", "schedule", "daemon", "metrics", "encryption"])
        for key in ["repository.s3.part_size_mib", "checks.sql.query", "checks.content_size.max_bytes", "alerts.command.run",
                    "alerts.webhook.headers", "schedule.base_backup", "daemon.max_backup_age", "wal.prefetch", "metrics.listen"] {
            #expect(schema.keys.contains(key), "\(key) is missing from \(schema.keys.sorted())")
        }
        #expect(!schema.keys.contains("repository.s3.signing"))
        // A table the fixture leaves out would have no keys here: everyTable must hold it.
        for table in schema.tables where !Self.freeForm.contains(table) {
            #expect(schema.keys.contains { $0.hasPrefix(table + ".") }, "add [\(table)] to everyTable: its keys are missing from the schema")
        }
    }

    @Test func sourceStringsNameRealKeysOnly() throws {
        let schema = try Self.schema()
        let found = try Self.offenders(schema: schema)
        #expect(found.scannedLiterals > 1000, "the scan found only \(found.scannedLiterals) string literals")
        #expect(found.swift.isEmpty, "string literals naming keys the configuration does not have:\n\(found.swift.map(\.description).joined(separator: "\n"))")
    }

    @Test func documentsNameRealKeysOnly() throws {
        let schema = try Self.schema()
        let found = try Self.offenders(schema: schema)
        #expect(found.documentReferences > 40, "the scan found only \(found.documentReferences) key references in the documents")
        #expect(found.documents.isEmpty, "documents naming keys the configuration does not have:\n\(found.documents.map(\.description).joined(separator: "\n"))")
    }

    /// The rule, on lines like the ones it must tell apart.
    @Test func whatCountsAsAKeyReference() throws {
        let schema = try Self.schema()
        let swift = #"""
            throw StorageError(.invalidArgument, message: "repository.s3.max_retries must not be negative")
            logger.info("spooled", metadata: ["wal.file": "\(name)", "wal.spool": "x"])
            logger[metadataKey: "retention.dry_run"] = "\(dryRun)"
            let queue = DispatchQueue(label: "pgbackd.wal.inotify")
            let log = base + "/postgres.log"
            let event = "wal.lag.resolved"
            let nested = "set \(flag ? "drill.conninfo" : "drill.scratch_major"), not drill.jobs_max"
            // "wal.nothing" in a comment is not a literal
            let multi = """
                fix wal.spool_directory
                """
            """#
        let literals = SwiftStringLiterals.scan(swift).filter { !$0.isDictionaryKey }
        let tokens = literals.flatMap { literal in
            Self.references(in: literal.text, firstLine: literal.line, topLevel: schema.topLevel).map { "\($0.line):\($0.token)" }
        }
        #expect(tokens == ["1:repository.s3.max_retries", "7:drill.conninfo", "7:drill.scratch_major", "7:drill.jobs_max", "10:wal.spool_directory"])
        #expect(tokens.filter { !schema.knows(String($0.split(separator: ":")[1])) } == ["1:repository.s3.max_retries", "7:drill.jobs_max", "10:wal.spool_directory"])
    }
}

/// The string literals of a Swift file, split at interpolations, with their first line; comments
/// skipped. Enough of Swift's lexical grammar for this check: `"…"`, `"""…"""`, raw strings
/// (`#"…"#`), escapes, nested interpolations and nested block comments.
enum SwiftStringLiterals {
    struct Literal {
        var line: Int
        var text: String
        /// The literal is a dictionary key (`["wal.file": …]`) or a `metadataKey:` subscript.
        var isDictionaryKey: Bool
    }

    static func scan(_ source: String) -> [Literal] {
        var lexer = Lexer(bytes: Array(source.utf8))
        lexer.code(nested: false)
        return lexer.literals
    }

    struct Lexer {
        let bytes: [UInt8]
        var index = 0
        var line = 1
        var literals: [Literal] = []

        init(bytes: [UInt8]) { self.bytes = bytes }

        func peek(_ offset: Int = 0) -> UInt8? {
            index + offset < bytes.count ? bytes[index + offset] : nil
        }

        func matches(_ text: String, at offset: Int = 0) -> Bool {
            let pattern = Array(text.utf8)
            guard index + offset + pattern.count <= bytes.count else { return false }
            return Array(bytes[(index + offset)..<(index + offset + pattern.count)]) == pattern
        }

        mutating func advance() {
            if bytes[index] == UInt8(ascii: "\n") { line += 1 }
            index += 1
        }

        /// Code up to the end, or (nested: in an interpolation) to its closing parenthesis.
        mutating func code(nested: Bool) {
            var depth = 0
            while let byte = peek() {
                if matches("//") {
                    while let next = peek(), next != UInt8(ascii: "\n") { _ = next; index += 1 }
                } else if matches("/*") {
                    var commentDepth = 0
                    while peek() != nil {
                        if matches("/*") { commentDepth += 1; index += 2 } else if matches("*/") {
                            commentDepth -= 1
                            index += 2
                            if commentDepth == 0 { break }
                        } else { advance() }
                    }
                } else if byte == UInt8(ascii: "#") || byte == UInt8(ascii: "\"") {
                    var hashes = 0
                    while peek(hashes) == UInt8(ascii: "#") { hashes += 1 }
                    guard peek(hashes) == UInt8(ascii: "\"") else { index += max(hashes, 1); continue }
                    let start = index
                    index += hashes
                    string(hashes: hashes, start: start)
                } else if nested && byte == UInt8(ascii: "(") {
                    depth += 1
                    index += 1
                } else if nested && byte == UInt8(ascii: ")") {
                    index += 1
                    if depth == 0 { return }
                    depth -= 1
                } else {
                    advance()
                }
            }
        }

        /// A literal whose opening quote is at `index`; `start` is where its `#`s begin.
        mutating func string(hashes: Int, start: Int) {
            let multiline = matches("\"\"\"")
            index += multiline ? 3 : 1
            let closing = Array((multiline ? "\"\"\"" : "\"").utf8) + Array(repeating: UInt8(ascii: "#"), count: hashes)
            let escape = [UInt8(ascii: "\\")] + Array(repeating: UInt8(ascii: "#"), count: hashes)
            var segments: [(line: Int, bytes: [UInt8])] = [(line, [])]
            while peek() != nil {
                if Array(bytes[index..<min(bytes.count, index + closing.count)]) == closing {
                    index += closing.count
                    break
                }
                if Array(bytes[index..<min(bytes.count, index + escape.count)]) == escape {
                    index += escape.count
                    guard let escaped = peek() else { break }
                    if escaped == UInt8(ascii: "(") {
                        index += 1
                        code(nested: true)
                        segments.append((line, []))
                    } else if escaped == UInt8(ascii: "u"), peek(1) == UInt8(ascii: "{") {
                        while let next = peek(), next != UInt8(ascii: "}") { _ = next; index += 1 }
                        index += 1
                        segments[segments.count - 1].bytes.append(UInt8(ascii: " "))
                    } else {
                        // \" \\ \' keep their character; \n \t \r \0 and a line continuation part words.
                        let kept = escaped == UInt8(ascii: "\"") || escaped == UInt8(ascii: "\\") || escaped == UInt8(ascii: "'")
                        segments[segments.count - 1].bytes.append(kept ? escaped : UInt8(ascii: " "))
                        advance()
                    }
                    continue
                }
                segments[segments.count - 1].bytes.append(bytes[index])
                advance()
            }
            let isKey = isDictionaryKey(start: start)
            for segment in segments where !segment.bytes.isEmpty {
                literals.append(Literal(line: segment.line, text: String(decoding: segment.bytes, as: UTF8.self), isDictionaryKey: isKey))
            }
        }

        /// `[` or `,` before the literal and `:` after it, or `metadataKey:` before it.
        func isDictionaryKey(start: Int) -> Bool {
            func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0a || byte == 0x09 || byte == 0x0d }
            var after = index
            while after < bytes.count, isSpace(bytes[after]) { after += 1 }
            var before = start - 1
            while before >= 0, isSpace(bytes[before]) { before -= 1 }
            guard before >= 0 else { return false }
            let labelled = String(decoding: bytes[max(0, before - 11)...before], as: UTF8.self) == "metadataKey:"
            let keyed = after < bytes.count && bytes[after] == UInt8(ascii: ":")
                && (bytes[before] == UInt8(ascii: "[") || bytes[before] == UInt8(ascii: ","))
            return labelled || keyed
        }
    }
}
