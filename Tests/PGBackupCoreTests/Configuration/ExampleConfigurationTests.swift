import Foundation
import Testing

/// config/pgbackd.toml is the reference of every option: each key the configuration readers
/// ask for must be there, with its default, commented or not.
struct ExampleConfigurationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `reader.int("jobs", …)`, `rule.string("table")`, `root.table("drill")`… in the sources.
    static func keysAskedFor() throws -> Set<String> {
        let pattern = try NSRegularExpression(pattern: #"\.(?:string|int|strings|oneOf|table|tables|bool|duration)\("([a-z_]+)""#)
        var keys: Set<String> = []
        let sources = root.appendingPathComponent("Sources/PGBackupCore").path
        for case let file as String in FileManager.default.enumerator(atPath: sources)! where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: "\(sources)/\(file)", encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                keys.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
        return keys
    }

    @Test func everyOptionIsListed() throws {
        let example = try String(contentsOfFile: Self.root.appendingPathComponent("config/pgbackd.toml").path, encoding: .utf8)
        let keys = try Self.keysAskedFor()
        #expect(keys.contains("staging_dir") && keys.contains("measure") && keys.count > 50, "the scan found \(keys.sorted())")
        let missing = keys.filter { key in
            !example.contains("\(key) =") && !example.contains("[\(key)]") && !example.contains(".\(key)]") && !example.contains("[\(key).")
        }
        #expect(missing.isEmpty, "config/pgbackd.toml does not list: \(missing.sorted())")
    }
}
