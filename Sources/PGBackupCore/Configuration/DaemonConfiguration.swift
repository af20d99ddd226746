import Foundation

/// The jobs `pgbackd run` schedules.
public enum JobKind: String, Sendable, Codable, CaseIterable, Comparable {
    case backup
    case baseBackup = "base_backup"
    case drill
    case retention
    /// `pgbackd wal-check`: gaps in the WAL archive found before a restore needs it.
    case walCheck = "wal_check"

    /// Jobs that work against the database run one at a time.
    public var usesDatabase: Bool { self == .backup || self == .baseBackup || self == .drill }

    public static func < (a: JobKind, b: JobKind) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// `[schedule]`: when `pgbackd run` starts each job. Every job is optional.
public struct ScheduleConfiguration: Sendable, Equatable {
    /// Default: the system's (`TZ`, else /etc/localtime).
    public var timeZone: TimeZone
    public var jobs: [JobKind: CronExpression]
    /// A run missed while the daemon was down runs once at start. Default true.
    public var catchUp: Bool

    public init(timeZone: TimeZone = .current, jobs: [JobKind: CronExpression] = [:], catchUp: Bool = true) {
        self.timeZone = timeZone
        self.jobs = jobs
        self.catchUp = catchUp
    }

    init(_ reader: TOMLReader?) throws {
        self.init()
        guard let reader else { return }
        if let name = try reader.string("time_zone") {
            guard let zone = TimeZone(identifier: name) else {
                throw reader.error(.invalidValue, "time_zone", "unknown time zone \"\(name)\"; expected an IANA name such as \"Europe/Berlin\" or \"UTC\"")
            }
            timeZone = zone
        }
        for kind in JobKind.allCases {
            guard let text = try reader.string(kind.rawValue) else { continue }
            do {
                jobs[kind] = try CronExpression(text)
            } catch let error as CronExpression.ParseError {
                throw reader.error(.invalidValue, kind.rawValue, "\(error.description); expected a cron expression like \"0 2 * * *\"")
            }
        }
        catchUp = try reader.bool("catch_up", default: true)
        try reader.rejectUnknownKeys()
    }
}

/// `[daemon]`: how `pgbackd run` behaves.
public struct DaemonConfiguration: Sendable, Equatable {
    /// Jobs running at a stop get this long to finish, then are cancelled (and clean up). Default 60.
    public var stopTimeoutSeconds: Int
    /// state.json and the repository lock. Default /var/lib/pgbackd (systemd `StateDirectory=`).
    public var stateDirectory: String
    /// Run the WAL watcher inside the daemon (when `wal.mode = "spool"`). Default true.
    public var walWatcher: Bool
    /// `backup.stale` when no backup (logical or base) succeeded for this long. nil: never.
    public var maxBackupAge: Duration?
    /// `drill.stale` when no drill passed for this long. nil: never.
    public var maxUnverifiedAge: Duration?

    public static let defaultStateDirectory = "/var/lib/pgbackd"

    public init(stopTimeoutSeconds: Int = 60, stateDirectory: String = Self.defaultStateDirectory, walWatcher: Bool = true,
                maxBackupAge: Duration? = nil, maxUnverifiedAge: Duration? = nil) {
        self.stopTimeoutSeconds = stopTimeoutSeconds
        self.stateDirectory = stateDirectory
        self.walWatcher = walWatcher
        self.maxBackupAge = maxBackupAge
        self.maxUnverifiedAge = maxUnverifiedAge
    }

    init(_ reader: TOMLReader?) throws {
        self.init()
        guard let reader else { return }
        stopTimeoutSeconds = try reader.int("stop_timeout_seconds", in: 1...86_400, default: 60)
        stateDirectory = try reader.string("state_dir", default: Self.defaultStateDirectory)
        guard stateDirectory.hasPrefix("/") else {
            throw reader.error(.invalidValue, "state_dir", "expected an absolute directory path, got \"\(stateDirectory)\"")
        }
        walWatcher = try reader.bool("wal_watcher", default: true)
        maxBackupAge = try Self.age(reader, "max_backup_age")
        maxUnverifiedAge = try Self.age(reader, "max_unverified_age")
        try reader.rejectUnknownKeys()
    }

    static func age(_ reader: TOMLReader, _ key: String) throws -> Duration? {
        guard let text = try reader.string(key) else { return nil }
        guard let seconds = parseAge(text) else {
            throw reader.error(.invalidValue, key, "expected a duration such as \"26h\", \"90m\", \"8d\" or \"3600s\", got \"\(text)\"")
        }
        return .seconds(seconds)
    }

    /// `<n>s`, `<n>m`, `<n>h` or `<n>d`, n a positive integer.
    public static func parseAge(_ text: String) -> Int? {
        guard let unit = text.last, let multiplier = ["s": 1, "m": 60, "h": 3600, "d": 86_400][String(unit)],
              let number = Int(text.dropLast()), number > 0, number <= 3650 * 86_400 / multiplier else { return nil }
        return number * multiplier
    }
}

/// `[metrics]`: the Prometheus endpoint of `pgbackd run`.
public struct MetricsConfiguration: Sendable, Equatable {
    /// `host:port` to listen on; nil (absent or empty): no endpoint.
    public var listen: (host: String, port: Int)?

    public init(listen: (host: String, port: Int)? = nil) { self.listen = listen }

    public static func == (a: MetricsConfiguration, b: MetricsConfiguration) -> Bool {
        a.listen?.host == b.listen?.host && a.listen?.port == b.listen?.port
    }

    init(_ reader: TOMLReader?) throws {
        self.init()
        guard let reader else { return }
        let text = try reader.string("listen", default: "")
        if !text.isEmpty {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
                throw reader.error(.invalidValue, "listen", "expected host:port such as \"127.0.0.1:9187\", got \"\(text)\"")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else {
                throw reader.error(.invalidValue, "listen", "expected host:port such as \"127.0.0.1:9187\" (a host is required), got \"\(text)\"")
            }
            guard host == "localhost" || Self.isIPAddress(host) else {
                throw reader.error(.invalidValue, "listen", "\"\(host)\" is not an IP address; use one such as \"127.0.0.1:9187\", \"[::1]:9187\" or \"0.0.0.0:9187\"")
            }
            listen = (host, port)
        }
        try reader.rejectUnknownKeys()
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
