import TOMLKit

/// Reads one TOML table key by key, remembering which keys were asked for, so that whatever is
/// left over is an unknown key, reported with the closest known one.
final class TOMLReader {
    let table: TOMLTable
    let path: String
    let file: String
    /// Shared by a file's root reader and every reader made from it.
    let asked: AskedKeys
    /// `path` without the positions in arrays of tables: `checks.sql`, not `checks.sql[0]`.
    private let schemaPath: String
    private var known: [String] = []

    /// Every dotted key the readers of one file asked for, whether the file holds it or not, with
    /// array positions left out (`checks.sql.name`): the keys the configuration knows, as the code
    /// reads them. The tests compare the keys that messages and documents name against it.
    final class AskedKeys {
        private(set) var keys: Set<String> = []
        /// The subset asked for as a table or an array of tables (`repository.s3`, `checks.sql`).
        private(set) var tables: Set<String> = []

        fileprivate func record(_ key: String, table: Bool) {
            keys.insert(key)
            if table { tables.insert(key) }
        }
    }

    convenience init(table: TOMLTable, path: String, file: String, asked: AskedKeys = AskedKeys()) {
        self.init(table: table, path: path, schemaPath: path, file: file, asked: asked)
    }

    private init(table: TOMLTable, path: String, schemaPath: String, file: String, asked: AskedKeys) {
        self.table = table
        self.path = path
        self.schemaPath = schemaPath
        self.file = file
        self.asked = asked
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    private func schemaKey(_ key: String) -> String { schemaPath.isEmpty ? key : schemaPath + "." + key }

    func error(_ code: ConfigurationError.Code, _ key: String, _ message: String) -> ConfigurationError {
        ConfigurationError(code, file: file, key: keyPath(key), message: message)
    }

    private func value(_ key: String, isTable: Bool = false) -> (any TOMLValueConvertible)? {
        known.append(key)
        asked.record(schemaKey(key), table: isTable)
        return table[key]
    }

    private func wrongType(_ key: String, expected: String, got value: any TOMLValueConvertible) -> ConfigurationError {
        error(.wrongType, key, "expected \(expected), got \(Self.describe(value))")
    }

    static func describe(_ value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: "the string \"\(value.string ?? "")\""
        case .int: "the integer \(value.int ?? 0)"
        case .double: "the number \(value.double ?? 0)"
        case .bool: "the boolean \(value.bool ?? false)"
        case .table: "a table"
        case .array: "an array"
        default: "a \(value.type)"
        }
    }

    func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.string else { throw wrongType(key, expected: "a string", got: value) }
        return string
    }

    func string(_ key: String, default fallback: String) throws -> String {
        try string(key) ?? fallback
    }

    func oneOf(_ key: String, _ choices: [String], default fallback: String) throws -> String {
        let text = try string(key, default: fallback)
        guard choices.contains(text) else {
            throw error(.invalidValue, key, "expected one of \(choices.map { "\"\($0)\"" }.joined(separator: ", ")), got \"\(text)\"")
        }
        return text
    }

    /// A string that must name one of `Choice`'s cases; nil when absent.
    func oneOf<Choice: RawRepresentable & CaseIterable>(_ key: String, _: Choice.Type) throws -> Choice? where Choice.RawValue == String {
        guard let text = try string(key) else { return nil }
        guard let choice = Choice(rawValue: text) else {
            throw error(.invalidValue, key, "expected one of \(Choice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(text)\"")
        }
        return choice
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let value = value(key) else { return nil }
        guard let number = value.int else { throw wrongType(key, expected: "an integer from \(range.lowerBound) to \(range.upperBound)", got: value) }
        guard range.contains(number) else {
            throw error(.invalidValue, key, "expected an integer from \(range.lowerBound) to \(range.upperBound), got \(number)")
        }
        return number
    }

    func int(_ key: String, in range: ClosedRange<Int>, default fallback: Int) throws -> Int {
        try int(key, in: range) ?? fallback
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = value(key) else { return fallback }
        guard let bool = value.bool else { throw wrongType(key, expected: "true or false", got: value) }
        return bool
    }

    func strings(_ key: String) throws -> [String]? {
        guard let value = value(key) else { return nil }
        guard let array = value.array else { throw wrongType(key, expected: "an array of strings", got: value) }
        return try array.map { element in
            guard let string = element.string else { throw wrongType(key, expected: "an array of strings", got: element) }
            return string
        }
    }

    /// A sub-table; nil when absent.
    func table(_ key: String) throws -> TOMLReader? {
        guard let value = value(key, isTable: true) else { return nil }
        guard let table = value.table else { throw wrongType(key, expected: "a table ([\(keyPath(key))])", got: value) }
        return TOMLReader(table: table, path: keyPath(key), schemaPath: schemaKey(key), file: file, asked: asked)
    }

    /// An array of tables (`[[checks.sql]]`); empty when absent.
    func tables(_ key: String) throws -> [TOMLReader] {
        guard let value = value(key, isTable: true) else { return [] }
        guard let array = value.array else { throw wrongType(key, expected: "an array of tables ([[\(keyPath(key))]])", got: value) }
        return try array.enumerated().map { index, element in
            guard let table = element.table else { throw wrongType(key, expected: "an array of tables ([[\(keyPath(key))]])", got: element) }
            return TOMLReader(table: table, path: "\(keyPath(key))[\(index)]", schemaPath: schemaKey(key), file: file, asked: asked)
        }
    }

    /// Fails on the first key that nothing asked for.
    func rejectUnknownKeys() throws {
        for key in table.keys.sorted() where !known.contains(key) {
            var message = "unknown key"
            if let suggestion = Self.closest(to: key, in: known) {
                message += "; did you mean '\(suggestion)'?"
            } else {
                message += "; known keys here: \(known.sorted().joined(separator: ", "))"
            }
            throw error(.unknownKey, key, message)
        }
    }

    static func closest(to key: String, in candidates: [String]) -> String? {
        let limit = max(2, key.count / 3)
        // The distance is at least the difference in length: candidates that cannot be close are
        // not compared (a 70,000-character event name took seconds against every known one).
        let scored = candidates.filter { abs($0.count - key.count) <= limit }.map { ($0, editDistance(key.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= limit else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
