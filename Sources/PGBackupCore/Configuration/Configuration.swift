import Compression
import Foundation
import ObjectStorage
import PostgresClient
import TOMLKit

/// Everything pgbackd reads from its TOML file, validated as a whole before any work starts.
public struct Configuration: Sendable {
    /// The file this was read from.
    public var file: String
    public var repository: RepositoryConfiguration
    public var postgres: PostgresConfiguration
    public var compression: CompressionConfiguration
    public var drill: DrillConfiguration
    public var checks: ChecksConfiguration
    public var alerts: AlertsConfiguration
    public var wal: WALConfiguration
    public var retention: RetentionConfiguration
    public var schedule = ScheduleConfiguration()
    public var daemon = DaemonConfiguration()
    public var metrics = MetricsConfiguration()
    /// nil: the repository is not encrypted.
    public var encryption: EncryptionConfiguration?
    /// The keys of this file that hold a secret in the file itself (an S3 secret, a password in
    /// a conninfo, an inline webhook header value), rather than in a file or variable of its own.
    public var inlineSecrets: [String] = []
    /// What is wrong but not fatal, found while loading (a file with secrets that other users
    /// can read): the CLI prints each on stderr, `check` lists each as `warn`.
    public var warnings: [String] = []

    /// `--config`, else `$PGBACKD_CONFIG`, else this.
    public static let defaultPath = "/etc/pgbackd/pgbackd.toml"

    /// Resolves the file to read: the explicit path, `$PGBACKD_CONFIG`, or ``defaultPath``.
    public static func path(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        explicit ?? environment["PGBACKD_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultPath
    }

    /// Reads and validates the file.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read it (check its permissions)" : "no such file; pass --config or set PGBACKD_CONFIG (see config/pgbackd.toml for a commented example)"
            throw ConfigurationError(.unreadable, file: path, key: nil, message: reason)
        }
        var configuration = try parse(String(decoding: data, as: UTF8.self), file: path, environment: environment)
        if let warning = permissionWarning(path: path, inlineSecrets: configuration.inlineSecrets) {
            configuration.warnings.append(warning)
        }
        return configuration
    }

    /// No key of pgbackd has more than four parts (`alerts.webhook.headers.NAME`).
    static let maximumKeyParts = 64

    /// Refuses, before the TOML parser sees them, two inputs that crash it (fuzzing finds):
    /// - a dotted key or table header of more than ``maximumKeyParts`` parts: toml++ makes one
    ///   nested table per part and frees them recursively, so a header of 50,000 parts
    ///   (`[a.a.a…]`) overflowed the stack. Counted as the dots outside strings and comments
    ///   between `=`, brackets, braces, commas and line ends (a number has one at most);
    /// - a table header whose name starts with anything but a bare key character or a quote
    ///   (`[[[`, `[.a]`, `[[=]]`): toml++ asserts on it, which aborts pgbackd;
    /// - a `}` where an array expects a value (`s = [}`, `s = [1, }`): the same assertion.
    static func prescreen(_ text: String, file: String) throws {
        let bytes = Array(text.utf8)
        let newline = UInt8(ascii: "\n"), backslash = UInt8(ascii: "\\"), quote = UInt8(ascii: "\""), apostrophe = UInt8(ascii: "'")
        var index = 0, line = 1, dots = 0
        // Brackets and braces open in a value (after `=`), and whether this line has had its `=`.
        var open: [UInt8] = [], inValue = false
        var valueDepth: Int { open.count }
        // Right after an array's `[` or one of its commas: a value or `]` must come.
        var awaitingArrayValue = false
        func isKeyStart(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
                || byte == quote || byte == apostrophe
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case quote, apostrophe:
                awaitingArrayValue = false
                let triple = index + 2 < bytes.count && bytes[index + 1] == byte && bytes[index + 2] == byte
                index += triple ? 3 : 1
                while index < bytes.count {
                    if triple {
                        if index + 2 < bytes.count, bytes[index] == byte, bytes[index + 1] == byte, bytes[index + 2] == byte { index += 3; break }
                    } else if bytes[index] == byte {
                        index += 1
                        break
                    } else if bytes[index] == newline {
                        break
                    }
                    if bytes[index] == newline { line += 1 }
                    if byte == quote, bytes[index] == backslash { index += 1 }
                    index += 1
                }
                continue
            case UInt8(ascii: "#"):
                while index < bytes.count, bytes[index] != newline { index += 1 }
                continue
            case newline:
                line += 1
                dots = 0
                if valueDepth == 0 { inValue = false }
            case UInt8(ascii: "[") where !inValue && valueDepth == 0:
                // A table header: `[name]` or `[[name]]`.
                dots = 0
                var next = index + 1
                if next < bytes.count, bytes[next] == UInt8(ascii: "[") { next += 1 }
                while next < bytes.count, bytes[next] == UInt8(ascii: " ") || bytes[next] == UInt8(ascii: "\t") { next += 1 }
                guard next < bytes.count, isKeyStart(bytes[next]) else {
                    throw ConfigurationError(.syntax, file: file, key: nil,
                                             message: "line \(line): a table name must start with a letter, a digit, '_', '-' or a quote, as in [repository] or [[alerts.webhook]]")
                }
                index = next
                continue
            case UInt8(ascii: "="):
                dots = 0
                awaitingArrayValue = false
                if valueDepth == 0 { inValue = true }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                dots = 0
                open.append(byte)
                awaitingArrayValue = byte == UInt8(ascii: "[")
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                dots = 0
                if byte == UInt8(ascii: "}"), open.last == UInt8(ascii: "["), awaitingArrayValue {
                    throw ConfigurationError(.syntax, file: file, key: nil,
                                             message: "line \(line): a '}' where an array expects a value or ']'")
                }
                _ = open.popLast()
                awaitingArrayValue = false
            case UInt8(ascii: ","):
                dots = 0
                awaitingArrayValue = open.last == UInt8(ascii: "[")
            case UInt8(ascii: "."):
                awaitingArrayValue = false
                dots += 1
                if dots >= maximumKeyParts {
                    throw ConfigurationError(.syntax, file: file, key: nil,
                                             message: "line \(line): a dotted key or table name of more than \(maximumKeyParts) parts; pgbackd's keys have at most four (such as alerts.webhook.headers)")
                }
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                break
            default:
                awaitingArrayValue = false
            }
            index += 1
        }
    }

    /// A warning when other users may read a file that holds secrets: its mode lets "others"
    /// read it (group-readable is the documented 0640 root:pgbackd layout, and fine).
    static func permissionWarning(path: String, inlineSecrets: [String]) -> String? {
        guard !inlineSecrets.isEmpty else { return nil }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & 0o004 != 0 else { return nil }
        let mode = String(info.st_mode & 0o777, radix: 8)
        return "the configuration file \(path) is readable by other users (mode 0\(mode)) and holds secrets (\(inlineSecrets.joined(separator: ", "))): chmod 600 \(path) (or 640 with a group of its own), or move the secrets into files of their own (secret_access_key_file, a PGPASSFILE, NAME_file headers)"
    }

    /// Keys in `table` that hold a secret inline.
    static func inlineSecrets(_ table: TOMLTable, postgres: PostgresConfiguration, drill: DrillConfiguration) -> [String] {
        var keys: [String] = []
        if table["repository"]?.table?["s3"]?.table?["secret_access_key"] != nil { keys.append("repository.s3.secret_access_key") }
        for (key, conninfo) in [("postgres.conninfo", postgres.conninfo), ("drill.conninfo", drill.conninfo ?? "")] where !conninfo.isEmpty {
            if (try? Conninfo(conninfo))?.settings["password"] != nil { keys.append(key) }
        }
        for (index, hook) in (table["alerts"]?.table?["webhook"]?.array ?? TOMLArray()).enumerated() {
            let inline = hook.table?["headers"]?.table?.keys.filter { !$0.hasSuffix("_file") } ?? []
            keys += inline.sorted().map { "alerts.webhook[\(index)].headers.\($0)" }
        }
        return keys
    }

    public static func parse(_ text: String, file: String, environment: [String: String] = [:]) throws -> Configuration {
        try parse(text, file: file, environment: environment, asked: TOMLReader.AskedKeys())
    }

    /// `asked` collects every key the readers ask for, present in the file or not.
    static func parse(_ text: String, file: String, environment: [String: String], asked: TOMLReader.AskedKeys) throws -> Configuration {
        try prescreen(text, file: file)
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(.syntax, file: file, key: nil,
                                     message: "line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)")
        }
        let root = TOMLReader(table: table, path: "", file: file, asked: asked)
        let repository = try RepositoryConfiguration(root.table("repository"), root: root, environment: environment)
        let postgres = try PostgresConfiguration(root.table("postgres"))
        let compression = try CompressionConfiguration(root.table("compression"))
        let drill = try DrillConfiguration(root.table("drill"))
        let checks = try ChecksConfiguration(root.table("checks"))
        let alerts = try AlertsConfiguration(root.table("alerts"))
        let wal = try WALConfiguration(root.table("wal"))
        let retention = try RetentionConfiguration(root.table("retention"))
        let schedule = try ScheduleConfiguration(root.table("schedule")), daemon = try DaemonConfiguration(root.table("daemon")), metrics = try MetricsConfiguration(root.table("metrics"))
        let encryption = try EncryptionConfiguration(root.table("encryption"), environment: environment)
        try root.rejectUnknownKeys()
        return Configuration(file: file, repository: repository, postgres: postgres, compression: compression, drill: drill, checks: checks, alerts: alerts, wal: wal, retention: retention, schedule: schedule, daemon: daemon, metrics: metrics, encryption: encryption,
                             inlineSecrets: inlineSecrets(table, postgres: postgres, drill: drill))
    }
}

public struct RepositoryConfiguration: Sendable {
    public enum Kind: Sendable {
        /// A local directory: the embedded default.
        case file(path: String)
        case s3(S3RepositorySettings)
    }
    public var kind: Kind
    /// Names the cluster inside the repository, so one bucket can hold several. Default `main`.
    public var stanza: String

    public static let defaultPath = "/var/lib/pgbackd/repo"

    init(_ reader: TOMLReader?, root: TOMLReader, environment: [String: String]) throws {
        let reader = reader ?? TOMLReader(table: TOMLTable(), path: "repository", file: root.file, asked: root.asked)
        let type = try reader.oneOf("type", ["file", "s3"], default: "file")
        stanza = try reader.string("stanza", default: "main")
        guard !stanza.isEmpty, stanza.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), !stanza.hasPrefix(".") else {
            throw reader.error(.invalidValue, "stanza", "expected letters, digits, '-', '_' or '.', got \"\(stanza)\"")
        }
        let path = try reader.string("path", default: Self.defaultPath)
        let s3Table = try reader.table("s3")
        switch type {
        case "s3":
            guard let s3Table else {
                throw reader.error(.missingKey, "s3", "type = \"s3\" needs a [repository.s3] table with endpoint and bucket")
            }
            kind = .s3(try S3RepositorySettings(s3Table, environment: environment))
        default:
            guard path.hasPrefix("/") else {
                throw reader.error(.invalidValue, "path", "expected an absolute directory path, got \"\(path)\"")
            }
            if let s3Table { try _ = S3RepositorySettings(s3Table, environment: environment, validateOnly: true) }
            kind = .file(path: path)
        }
        try reader.rejectUnknownKeys()
    }
}

/// `[repository.s3]`. The secret is resolved while loading, so a missing secret file is a
/// configuration error, not a failure halfway through a backup.
public struct S3RepositorySettings: Sendable, CustomStringConvertible {
    public var endpoint: String
    public var bucket: String
    /// Default `us-east-1`.
    public var region: String
    /// Key prefix inside the bucket. Default `pgbackd`.
    public var prefix: String
    /// `path` (default; works with every S3-compatible server) or `virtual`.
    public var virtualHosted: Bool
    public var accessKeyID: String
    /// Never printed: ``description`` redacts it.
    public var secretAccessKey: String
    /// Default true. Only turn off for a test server with a self-signed certificate.
    public var verifyTLS: Bool
    /// CA bundle for TLS verification; default: the system's.
    public var caFile: String?
    /// Default 8 MiB (``S3Configuration/defaultPartSize``); grown automatically so an upload never
    /// needs more than 10,000 parts. Objects of a known size up to 16 MiB (WAL) are one PUT.
    public var partSizeMiB: Int
    /// Parts uploaded at once. Default 2 (``S3Configuration/defaultParallelParts``).
    /// Memory ≈ part size × (this + 1).
    public var parallelParts: Int
    /// A transfer that moves less than 1 KiB/s for this long is dropped and retried (a GET
    /// resumes where it stopped). Default 60 s.
    public var stallTimeoutSeconds: Int

    public var description: String {
        "S3(endpoint: \(endpoint), bucket: \(bucket), region: \(region), prefix: \(prefix), access key: \(accessKeyID), secret: <redacted>)"
    }

    init(_ reader: TOMLReader, environment: [String: String], validateOnly: Bool = false) throws {
        endpoint = try reader.string("endpoint", default: "")
        bucket = try reader.string("bucket", default: "")
        region = try reader.string("region", default: "us-east-1")
        prefix = try reader.string("prefix", default: "pgbackd")
        virtualHosted = try reader.oneOf("uri_style", ["path", "virtual"], default: "path") == "virtual"
        let keyID = try reader.string("access_key_id")
        let secret = try reader.string("secret_access_key")
        let secretFile = try reader.string("secret_access_key_file")
        verifyTLS = try reader.bool("verify_tls", default: true)
        caFile = try reader.string("ca_file")
        partSizeMiB = try reader.int("part_size_mib", in: 5...5120, default: S3Configuration.defaultPartSize >> 20)
        parallelParts = try reader.int("parallel_parts", in: 1...64, default: S3Configuration.defaultParallelParts)
        stallTimeoutSeconds = try reader.int("stall_timeout_seconds", in: 1...3600, default: 60)
        if reader.table["signing"] != nil {
            // Removed (docs/decisions.md, issue #14): said before it can pass for a typo.
            throw reader.error(.unknownKey, "signing", "removed (requests are always signed as the AWS SigV4 specification says); delete this line")
        }
        try reader.rejectUnknownKeys()
        accessKeyID = ""
        secretAccessKey = ""
        if validateOnly { return }

        guard let url = URL(string: endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw reader.error(endpoint.isEmpty ? .missingKey : .invalidValue, "endpoint",
                               "expected an http:// or https:// URL such as \"https://s3.eu-west-1.amazonaws.com\", got \"\(endpoint)\"")
        }
        guard bucket.count >= 3, bucket.count <= 63,
              bucket.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." }) else {
            throw reader.error(bucket.isEmpty ? .missingKey : .invalidValue, "bucket",
                               "expected an S3 bucket name (3-63 lowercase letters, digits, '-' or '.'), got \"\(bucket)\"")
        }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw reader.error(.invalidValue, "ca_file", "cannot read \(caFile)")
        }
        guard let keyID = keyID ?? environment["AWS_ACCESS_KEY_ID"], !keyID.isEmpty else {
            throw reader.error(.missingKey, "access_key_id", "no access key id: set access_key_id or AWS_ACCESS_KEY_ID")
        }
        accessKeyID = keyID
        if secret != nil && secretFile != nil {
            throw reader.error(.invalidValue, "secret_access_key_file", "set either secret_access_key or secret_access_key_file, not both")
        }
        if let configured = secretFile {
            let secretFile = Self.secretFilePath(configured, configurationFile: reader.file, environment: environment)
            do {
                secretAccessKey = try SecretFile.read(secretFile)
            } catch {
                let relative = configured.hasPrefix("/") ? "" : " (\"\(configured)\" is relative: it is read from $CREDENTIALS_DIRECTORY, which systemd's LoadCredential= sets, else from the configuration file's directory)"
                throw reader.error(.secret, "secret_access_key_file", "the secret file \(secretFile) \(error.reason)\(relative); create it (mode 0600) with the secret access key, or fix the path")
            }
            guard !secretAccessKey.isEmpty else {
                throw reader.error(.secret, "secret_access_key_file", "the secret file \(secretFile) is empty")
            }
        } else if let secret, !secret.isEmpty {
            secretAccessKey = secret
        } else if let fromEnvironment = environment["AWS_SECRET_ACCESS_KEY"], !fromEnvironment.isEmpty {
            secretAccessKey = fromEnvironment
        } else {
            throw reader.error(.missingKey, "secret_access_key_file", "no secret access key: set secret_access_key_file (preferred), secret_access_key, or AWS_SECRET_ACCESS_KEY")
        }
    }
}

extension S3RepositorySettings {
    /// Where a `secret_access_key_file` is read. An absolute path as written. A relative one names a
    /// systemd credential: `LoadCredential=s3.secret:/etc/pgbackd/s3.secret` puts a copy in
    /// `$CREDENTIALS_DIRECTORY`, readable by the service whatever the original's owner and mode.
    /// Without that variable (wal-push and wal-fetch run by PostgreSQL, commands run by hand) it
    /// is read next to the configuration file, so one file serves the service and the CLI.
    static func secretFilePath(_ path: String, configurationFile: String, environment: [String: String]) -> String {
        if path.hasPrefix("/") { return path }
        if let credentials = environment["CREDENTIALS_DIRECTORY"], !credentials.isEmpty {
            return credentials + "/" + path
        }
        let directory = (configurationFile as NSString).deletingLastPathComponent
        return (directory.isEmpty ? "." : directory) + "/" + path
    }
}

public struct PostgresConfiguration: Sendable {
    /// libpq conninfo of the server to back up. Default empty: libpq's defaults and PG* variables.
    /// Put passwords in a PGPASSFILE, not here.
    public var conninfo: String
    /// Databases to back up. Empty (default): every database that accepts connections, templates excluded.
    public var databases: [String]
    /// Where pg_dump and friends live. Default: the binaries matching the server's major version.
    public var binDirectory: String?
    /// The configuration key `conninfo` came from, for messages: `postgres.conninfo`, or
    /// `drill.conninfo` for the server scratch databases are made on.
    public var conninfoSetting = "postgres.conninfo"
    /// Likewise for `binDirectory`.
    public var binDirectorySetting = "postgres.bin_dir"

    public init(conninfo: String, databases: [String] = [], binDirectory: String? = nil, conninfoSetting: String = "postgres.conninfo") {
        self.conninfo = conninfo
        self.databases = databases
        self.binDirectory = binDirectory
        self.conninfoSetting = conninfoSetting
    }

    init(_ reader: TOMLReader?) throws {
        conninfo = try reader?.string("conninfo", default: "") ?? ""
        databases = try reader?.strings("databases") ?? []
        binDirectory = try reader?.string("bin_dir")
        if let reader {
            if let empty = databases.firstIndex(where: { $0.isEmpty }) {
                throw reader.error(.invalidValue, "databases", "entry \(empty + 1) is an empty database name")
            }
            if let binDirectory, !binDirectory.hasPrefix("/") {
                throw reader.error(.invalidValue, "bin_dir", "expected an absolute directory path, got \"\(binDirectory)\"")
            }
            try reader.rejectUnknownKeys()
        }
    }
}

public struct CompressionConfiguration: Sendable {
    /// Level 0-9 of the engine (1 fastest, 9 smallest). Default 1: see docs/decisions.md for the
    /// measurements behind it.
    public var level: Int
    /// Compression threads; default 0 means one per core.
    public var threads: Int
    /// The compressor of every backup artifact; nil (the default) means ``defaultEngine``.
    public var engine: GzipEngine?

    public static let defaultLevel = 1

    init(_ reader: TOMLReader?) throws {
        level = try reader?.int("level", in: 0...9, default: Self.defaultLevel) ?? Self.defaultLevel
        threads = try reader?.int("threads", in: 0...256, default: 0) ?? 0
        engine = try reader?.oneOf("engine", GzipEngine.self)
        try reader?.rejectUnknownKeys()
    }

    /// The compressor artifacts are written with: the configured `engine`, else the default.
    public var effectiveEngine: GzipEngine { engine ?? Self.defaultEngine }

    /// libdeflate for dumps and base backups alike (docs/decisions.md, "One compressor by
    /// default"): a third to a half of zlib's CPU at every level. At the same level it stores
    /// more than zlib on relation files from level 5 up (+0.6 % at 6); one level or two higher
    /// it stores less and is still faster (level 8: 0.07 % less than zlib's 6, in 0.7× the CPU).
    public static let defaultEngine = GzipEngine.libdeflate
}
