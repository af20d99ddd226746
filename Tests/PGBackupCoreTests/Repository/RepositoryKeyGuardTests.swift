import Foundation
import Testing

/// "Nothing else concatenates key strings": outside `RepositoryLayout.swift`, no string literal in
/// Sources/ names a repository directory (`backups/`, `wal/`, `drills/`, `locks/`, `leases/`,
/// `jobs/`, `check/`), one of the repository's fixed file names, or an object name's suffix
/// (`.json`, `.gz`, `.dump.gz`). A key built or taken apart by hand elsewhere shows up here with
/// its file and line. It reads literals only: a bare `"/"` join of two variables is not caught.
@Suite struct RepositoryKeyGuardTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let layoutFile = "Sources/PGBackupCore/Repository/RepositoryLayout.swift"

    /// What a literal must not hold. U+0001 stands for an interpolation (`"\(stanza)/wal/"`).
    static var forbidden: Regex<AnyRegexOutput> {
        try! Regex(#"(^|[/\s\x{1}])(backups|wal|drills|locks|leases|jobs|check)/"#
            + #"|(^|[/\x{1}])(repository\.json|manifest\.json|globals\.sql\.gz|base\.tar\.gz)$"#
            + #"|\x{1}(\.dump\.gz|\.json|\.gz)$|^(\.dump\.gz|\.json|\.gz)$"#)
    }

    @Test func onlyTheLayoutBuildsKeys() throws {
        var offenders: [String] = []
        let sources = Self.root.appendingPathComponent("Sources")
        let files = try FileManager.default.subpathsOfDirectory(atPath: sources.path).filter { $0.hasSuffix(".swift") }.sorted()
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(Self.layoutFile).path), "the guard looks in the wrong place")
        for file in files where "Sources/\(file)" != Self.layoutFile {
            let source = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for literal in InterpolatedStringLiterals(source).literals {
                guard let match = literal.text.firstMatch(of: Self.forbidden) else { continue }
                let line = literal.line + literal.text[..<match.range.lowerBound].count(where: { $0 == "\n" })
                offenders.append("Sources/\(file):\(line): \"\(literal.text.replacingOccurrences(of: "\u{1}", with: "\\(…)"))\"")
            }
        }
        #expect(offenders.isEmpty, "repository keys built outside \(Self.layoutFile); use RepositoryLayout:\n\(offenders.joined(separator: "\n"))")
    }

    @Test func theScannerSeesLiteralsAndInterpolations() {
        let source = """
            let a = "\\(stanza)/drills/" // "wal/ in a comment"
            /* "backups/ in a block comment" */
            let b = "x\\(f("y/"))z", c = ""
            let d = \"\"\"
                first
                jobs/\\(kind)
                \"\"\"
            """
        let literals = InterpolatedStringLiterals(source).literals
        #expect(literals.map(\.text) == ["\u{1}/drills/", "x\u{1}z", "y/", "", "    first\n    jobs/\u{1}\n    "])
        #expect(literals.map(\.line) == [1, 3, 3, 3, 4])
        #expect(literals.filter { $0.text.contains(Self.forbidden) }.map(\.line) == [1, 4])
    }
}

/// The string literals of Swift source, each with the line it starts on; comments are skipped and
/// an interpolation becomes U+0001 (literals inside it are listed on their own). Raw strings are
/// read as plain ones, which is enough here.
struct InterpolatedStringLiterals {
    private let scalars: [Unicode.Scalar]
    private var index = 0
    private var line = 1
    private(set) var literals: [(line: Int, text: String)] = []

    init(_ source: String) {
        scalars = Array(source.unicodeScalars)
        code(untilClosingParenthesis: false)
    }

    private func at(_ offset: Int) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    private mutating func step() {
        if scalars[index] == "\n" { line += 1 }
        index += 1
    }

    private mutating func code(untilClosingParenthesis: Bool) {
        var depth = 0
        while index < scalars.count {
            switch (scalars[index], at(1)) {
            case ("/", "/"):
                while index < scalars.count, scalars[index] != "\n" { index += 1 }
            case ("/", "*"):
                index += 2
                while index < scalars.count, !(scalars[index] == "*" && at(1) == "/") { step() }
                index += 2
            case ("\"", _):
                literal()
            case ("(", _) where untilClosingParenthesis:
                depth += 1
                step()
            case (")", _) where untilClosingParenthesis:
                step()
                if depth == 0 { return }
                depth -= 1
            default:
                step()
            }
        }
    }

    private mutating func literal() {
        let startLine = line
        let multiline = at(1) == "\"" && at(2) == "\""
        index += multiline ? 3 : 1
        if multiline, index < scalars.count, scalars[index] == "\n" { step() }
        let slot = literals.count
        literals.append((startLine, ""))
        var text = String.UnicodeScalarView()
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "\\", at(1) == "(" {
                index += 2
                text.append("\u{1}")
                code(untilClosingParenthesis: true)
            } else if scalar == "\\" {
                text.append(scalar)
                index += 1
                if index < scalars.count { text.append(scalars[index]); step() }
            } else if scalar == "\"", !multiline || (at(1) == "\"" && at(2) == "\"") {
                index += multiline ? 3 : 1
                break
            } else if scalar == "\n", !multiline {
                break
            } else {
                text.append(scalar)
                step()
            }
        }
        literals[slot].text = String(text)
    }
}
