import CLibPQ

/// A libpq conninfo string, parsed by libpq itself so every keyword and URI form it accepts works.
public struct Conninfo: Sendable {
    /// Keyword → value, for the keywords the string sets.
    public let settings: [String: String]
    /// Keyword → the libpq environment variable that carries it (`host` → `PGHOST`).
    private let environmentNames: [String: String]

    public init(_ text: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(text, &errorMessage) else {
            let message = errorMessage.map { String(cString: $0).trimmingWhitespace() } ?? "cannot parse"
            if let errorMessage { PQfreemem(errorMessage) }
            throw PostgresError(.invalidConninfo, message: "invalid conninfo: \(message)")
        }
        defer { PQconninfoFree(options) }
        var settings: [String: String] = [:]
        var environmentNames: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            let name = String(cString: keyword)
            if let value = option.pointee.val { settings[name] = String(cString: value) }
            if let envvar = option.pointee.envvar { environmentNames[name] = String(cString: envvar) }
            option += 1
        }
        self.settings = settings
        self.environmentNames = environmentNames
    }

    /// The same settings with `dbname` replaced, as a conninfo string.
    public func with(database: String) -> String {
        var copy = settings
        copy["dbname"] = database
        return copy.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.quote($0.value))" }.joined(separator: " ")
    }

    /// The settings as libpq environment variables, for child processes such as pg_dump: passing
    /// them this way keeps a password out of the child's argument list, which any user can read.
    public func environment() -> [String: String] {
        var result: [String: String] = [:]
        for (keyword, value) in settings {
            if let name = environmentNames[keyword] { result[name] = value }
        }
        return result
    }

    /// Quotes a conninfo value: single quotes, with backslash escapes.
    public static func quote(_ value: String) -> String {
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        return "'\(escaped)'"
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
