import Foundation
import TOMLKit

/// `[[alerts.command]]` and `[[alerts.webhook]]`: who hears about which events.
///
/// Header values of webhooks are secrets: a header key ending in `_file` names a file whose
/// (trimmed) content is the value, read while loading, so a missing file is a configuration
/// error rather than a silent alert failure. No value ever appears in a description, a log
/// line or an error.
public struct AlertsConfiguration: Sendable, Equatable, CustomStringConvertible {
    public var commands: [CommandHook]
    public var webhooks: [Webhook]

    public init(commands: [CommandHook] = [], webhooks: [Webhook] = []) {
        self.commands = commands
        self.webhooks = webhooks
    }

    /// No hook at all.
    public var isEmpty: Bool { commands.isEmpty && webhooks.isEmpty }

    public var description: String {
        "alerts(commands: \(commands.map(\.description)), webhooks: \(webhooks.map(\.description)))"
    }

    /// The events a hook wants: a set of names, or all of them (`"*"`).
    public struct EventFilter: Sendable, Equatable, CustomStringConvertible {
        public var names: Set<AlertEventName>
        public var matchesAll: Bool

        public init(_ names: Set<AlertEventName>, matchesAll: Bool = false) {
            self.names = names
            self.matchesAll = matchesAll
        }

        public static let all = EventFilter([], matchesAll: true)

        public func matches(_ event: AlertEventName) -> Bool {
            matchesAll || names.contains(event)
        }

        public var description: String {
            matchesAll ? "*" : names.map(\.rawValue).sorted().joined(separator: ",")
        }
    }

    /// A program run without a shell: the event as JSON on stdin, `PGBACKD_*` in its environment.
    public struct CommandHook: Sendable, Equatable, CustomStringConvertible {
        /// Names the hook in logs: its place in the file, e.g. `alerts.command[0]`.
        public var id: String
        public var events: EventFilter
        /// The program's absolute path, then its arguments.
        public var run: [String]
        /// Past it the hook's process group gets SIGTERM, then SIGKILL. Default 30.
        public var timeoutSeconds: Int

        public static let defaultTimeoutSeconds = 30

        public init(id: String, events: EventFilter, run: [String], timeoutSeconds: Int = Self.defaultTimeoutSeconds) {
            self.id = id
            self.events = events
            self.run = run
            self.timeoutSeconds = timeoutSeconds
        }

        public var description: String { "\(id) (\(run.first ?? "?"))" }
    }

    /// An HTTP POST of the event as JSON.
    public struct Webhook: Sendable, Equatable, CustomStringConvertible {
        public var id: String
        public var events: EventFilter
        /// An http:// or https:// URL. Its path and query may hold a token (chat webhooks do),
        /// so logs name only its scheme, host and port (``endpoint``).
        public var url: String
        /// Sent with every request, after `Content-Type: application/json` (which a configured
        /// `Content-Type` replaces).
        public var headers: [Header]
        /// For each attempt, connection included. Default 10.
        public var timeoutSeconds: Int
        /// CA bundle to verify the server with; default the system's. TLS is always verified.
        public var caFile: String?

        public static let defaultTimeoutSeconds = 10

        public init(id: String, events: EventFilter, url: String, headers: [Header] = [],
                    timeoutSeconds: Int = Self.defaultTimeoutSeconds, caFile: String? = nil) {
            self.id = id
            self.events = events
            self.url = url
            self.headers = headers
            self.timeoutSeconds = timeoutSeconds
            self.caFile = caFile
        }

        /// `scheme://host[:port]`: the part of the URL that is safe to log.
        public var endpoint: String {
            guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else { return "?" }
            return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
        }

        public var description: String {
            "\(id) (\(endpoint), headers: \(headers.map(\.description).joined(separator: ", ")))"
        }
    }

    /// A header whose value is a secret: its description shows the name only.
    public struct Header: Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }

        public var description: String { "\(name): <redacted>" }
    }

    // MARK: parsing

    init(_ reader: TOMLReader?) throws {
        guard let reader else {
            self.init()
            return
        }
        let commands = try reader.tables("command").map(Self.commandHook)
        let webhooks = try reader.tables("webhook").map(Self.webhook)
        try reader.rejectUnknownKeys()
        self.init(commands: commands, webhooks: webhooks)
    }

    static func commandHook(_ reader: TOMLReader) throws -> CommandHook {
        let events = try eventFilter(reader)
        guard let run = try reader.strings("run") else {
            throw reader.error(.missingKey, "run", "a command hook needs run = [\"/absolute/path/to/program\", \"argument\", ...]")
        }
        guard let program = run.first, !program.isEmpty else {
            throw reader.error(.invalidValue, "run", "expected the program's absolute path first, e.g. [\"/usr/local/bin/page-oncall\", \"--team\", \"db\"]; got an empty array")
        }
        guard program.hasPrefix("/") else {
            throw reader.error(.invalidValue, "run", "expected the program's absolute path first (hooks run without a shell and without a PATH search), got \"\(program)\"")
        }
        let timeout = try reader.int("timeout_seconds", in: 1...86_400, default: CommandHook.defaultTimeoutSeconds)
        try reader.rejectUnknownKeys()
        return CommandHook(id: reader.path, events: events, run: run, timeoutSeconds: timeout)
    }

    static func webhook(_ reader: TOMLReader) throws -> Webhook {
        let events = try eventFilter(reader)
        guard let url = try reader.string("url") else {
            throw reader.error(.missingKey, "url", "a webhook needs url = \"https://...\"")
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = components.host, !host.isEmpty else {
            throw reader.error(.invalidValue, "url", "expected an http:// or https:// URL such as \"https://hooks.example.com/pgbackd\"")
        }
        let timeout = try reader.int("timeout_seconds", in: 1...300, default: Webhook.defaultTimeoutSeconds)
        let caFile = try reader.string("ca_file")
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw reader.error(.invalidValue, "ca_file", "cannot read \(caFile)")
        }
        let headers = try reader.table("headers").map(Self.headers) ?? []
        try reader.rejectUnknownKeys()
        return Webhook(id: reader.path, events: events, url: url, headers: headers, timeoutSeconds: timeout, caFile: caFile)
    }

    static func eventFilter(_ reader: TOMLReader) throws -> EventFilter {
        guard let events = try reader.strings("events") else {
            throw reader.error(.missingKey, "events", "a hook needs events = [...], e.g. [\"backup.failed\", \"drill.failed\"], or [\"*\"] for every event")
        }
        guard !events.isEmpty else {
            throw reader.error(.invalidValue, "events", "expected at least one event name, or [\"*\"] for every event")
        }
        var filter = EventFilter([])
        let known = AlertEventName.known.map(\.rawValue)
        for name in events {
            if name == "*" {
                filter.matchesAll = true
            } else if known.contains(name) {
                filter.names.insert(AlertEventName(rawValue: name))
            } else {
                var message = "unknown event \"\(name)\""
                if let suggestion = TOMLReader.closest(to: name, in: known) {
                    message += "; did you mean \"\(suggestion)\"?"
                }
                message += " Known events: \(known.joined(separator: ", ")), or \"*\" for all"
                throw reader.error(.invalidValue, "events", message)
            }
        }
        return filter
    }

    /// `headers = { Name = "value", Name_file = "/path" }`. Errors name the key and the file,
    /// never a value.
    static func headers(_ reader: TOMLReader) throws -> [Header] {
        var headers: [Header] = []
        for key in reader.table.keys.sorted() {
            guard let text = try reader.string(key) else { continue }
            let name: String
            let value: String
            if key.hasSuffix("_file") {
                name = String(key.dropLast("_file".count))
                guard text.hasPrefix("/") else {
                    throw reader.error(.invalidValue, key, "expected the absolute path of a file holding the value of header \(name), got \"\(text)\"")
                }
                do {
                    value = try SecretFile.read(text)
                } catch {
                    throw reader.error(.secret, key, "the file \(text) for header \(name) \(error.reason); create it (mode 0600) with the header's value, or fix the path")
                }
                guard !value.isEmpty else {
                    throw reader.error(.secret, key, "the file \(text) for header \(name) is empty")
                }
            } else {
                name = key
                value = text
            }
            guard !name.isEmpty, name.unicodeScalars.allSatisfy(isHeaderNameCharacter) else {
                throw reader.error(.invalidValue, key, "\"\(name)\" is not a valid HTTP header name")
            }
            guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                throw reader.error(.invalidValue, key, "the value of header \(name) contains a line break or NUL (the value is not shown: it may be a secret)")
            }
            if headers.contains(where: { $0.name.lowercased() == name.lowercased() }) {
                throw reader.error(.invalidValue, key, "header \(name) is set twice")
            }
            headers.append(Header(name: name, value: value))
        }
        try reader.rejectUnknownKeys()
        return headers
    }

    /// RFC 9110 `token` characters.
    static func isHeaderNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "!#$%&'*+-.^_`|~".unicodeScalars.contains(scalar))
    }
}
