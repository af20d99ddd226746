import CurlHTTP
import Foundation
import Logging
import PGBackdSupport

/// What became of one hook for one event.
public struct AlertDelivery: Sendable, Equatable {
    /// The hook, e.g. `alerts.webhook[0]`.
    public var hook: String
    public var delivered: Bool
    /// Tries made: always 1 for a command, up to ``AlertDispatcher/webhookAttempts`` for a webhook.
    public var attempts: Int
    /// How it ended: `exit code 0`, `HTTP 204`, `killed after its 30 s timeout`, libcurl's error…
    public var detail: String
}

/// Sends events to the hooks that want them. `send` never throws and never fails the job that
/// raised the event: a hook that fails is logged (`alert.hook`, `alert.event`, `alert.error`)
/// and that is all.
public struct AlertDispatcher: Sendable {
    public let configuration: AlertsConfiguration
    let logger: Logger
    let pool: CurlHandlePool
    /// Pauses before the second and third webhook attempts.
    let retryDelays: [Duration]
    /// The daemon's metrics (`pgbackd_alerts_total`, `pgbackd_alert_deliveries_total`); nil in one-shot commands.
    let metrics: DaemonMetrics?
    /// In the daemon: hand events to the ``AlertService`` instead of running hooks in the caller.
    var outbox: AlertService?

    /// A webhook is tried at most this often (on connection errors, timeouts, 429 and 5xx).
    public static let webhookAttempts = 3

    public init(configuration: AlertsConfiguration, logger: Logger, metrics: DaemonMetrics? = nil, outbox: AlertService? = nil) {
        self.init(configuration: configuration, logger: logger, retryDelays: [.milliseconds(500), .seconds(1)], metrics: metrics, outbox: outbox)
    }

    init(configuration: AlertsConfiguration, logger: Logger, retryDelays: [Duration], metrics: DaemonMetrics? = nil, outbox: AlertService? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.pool = CurlHandlePool(capacity: 4)
        self.retryDelays = retryDelays
        self.metrics = metrics
        self.outbox = outbox
    }

    /// Runs every hook that wants `event`, all at once, and returns when each has finished,
    /// given up or been killed at its timeout. The result is for callers that want to show it;
    /// failures are logged already. With an ``outbox`` it only queues the event there and
    /// returns no deliveries: the daemon's ``AlertService`` runs the hooks.
    ///
    /// Hooks run in child tasks, so cancelling the caller stops them too (command hooks are torn
    /// down, webhooks aborted, no retry starts). To report a job that was itself cancelled,
    /// call this after leaving the cancelled scope (`withSignalCancellation`, say).
    @discardableResult
    public func send(_ event: AlertEvent) async -> [AlertDelivery] {
        if let outbox {
            var inPlace = self
            inPlace.outbox = nil
            if outbox.enqueue(event, for: inPlace) { return [] }
            return await inPlace.send(event)
        }
        let commands = configuration.commands.filter { $0.events.matches(event.event) }
        let webhooks = configuration.webhooks.filter { $0.events.matches(event.event) }
        guard !commands.isEmpty || !webhooks.isEmpty else {
            logger.debug("no alert hook wants this event", metadata: ["alert.event": "\(event.event)"])
            metrics?.alertSent(event.event, hooks: 0, failed: 0)
            return []
        }
        let json: [UInt8]
        do {
            json = try event.json()
        } catch {
            logger.error("alert event could not be encoded", metadata: ["alert.event": "\(event.event)", "alert.error": "\(error)"])
            return []
        }
        let deliveries = await withTaskGroup(of: (Int, AlertDelivery).self) { group in
            for (index, hook) in commands.enumerated() {
                group.addTask { (index, await self.run(hook, event: event, json: json)) }
            }
            for (index, hook) in webhooks.enumerated() {
                group.addTask { (commands.count + index, await self.post(hook, event: event, json: json)) }
            }
            var deliveries: [(Int, AlertDelivery)] = []
            for await delivery in group { deliveries.append(delivery) }
            return deliveries.sorted { $0.0 < $1.0 }.map(\.1)
        }
        metrics?.alertSent(event.event, hooks: deliveries.count, failed: deliveries.filter { !$0.delivered }.count)
        for delivery in deliveries {
            var metadata: Logger.Metadata = [
                "alert.hook": "\(delivery.hook)", "alert.event": "\(event.event)", "alert.attempts": "\(delivery.attempts)",
            ]
            if delivery.delivered {
                metadata["alert.result"] = "\(delivery.detail)"
                logger.info("alert delivered", metadata: metadata)
            } else {
                metadata["alert.error"] = "\(delivery.detail)"
                logger.error("alert hook failed", metadata: metadata)
            }
        }
        return deliveries
    }

    // MARK: command hooks

    /// What a command hook finds in its environment: a few of ours (PATH, HOME, locale, time
    /// zone) and the `PGBACKD_*` variables; nothing else of the daemon's, which may hold secrets.
    static func environment(for event: AlertEvent, inherited: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        var environment: [String: String] = [:]
        for name in ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME"] {
            if let value = inherited[name] { environment[name] = value }
        }
        environment["PATH"] = environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        environment["PGBACKD_EVENT"] = event.event.rawValue
        environment["PGBACKD_SEVERITY"] = event.severity.rawValue
        environment["PGBACKD_STANZA"] = event.stanza
        environment["PGBACKD_BACKUP_ID"] = event.backupId ?? ""
        environment["PGBACKD_REPORT"] = event.reportKey ?? ""
        return environment
    }

    func run(_ hook: AlertsConfiguration.CommandHook, event: AlertEvent, json: [UInt8]) async -> AlertDelivery {
        guard let program = hook.run.first else {
            return AlertDelivery(hook: hook.id, delivered: false, attempts: 0, detail: "no program to run")
        }
        var stdin = json
        stdin.append(UInt8(ascii: "\n"))
        let outcome: ProgramOutcome
        do {
            outcome = try await runProgram(
                program: program, arguments: Array(hook.run.dropFirst()), environment: Self.environment(for: event),
                logger: logger, outputLimit: 64 << 10, input: stdin, timeout: .seconds(hook.timeoutSeconds),
                killGrace: .seconds(2), inheritEnvironment: false
            )
        } catch {
            return AlertDelivery(hook: hook.id, delivered: false, attempts: 1, detail: "\(error)")
        }
        if !outcome.stdout.isEmpty || !outcome.stderr.isEmpty {
            logger.debug("alert hook output", metadata: [
                "alert.hook": "\(hook.id)", "alert.stdout": "\(outcome.stdout.suffix(2000))", "alert.stderr": "\(outcome.stderr.suffix(2000))",
            ])
        }
        if outcome.timedOut {
            return AlertDelivery(hook: hook.id, delivered: false, attempts: 1,
                                 detail: "\((program as NSString).lastPathComponent) killed after its \(hook.timeoutSeconds) s timeout")
        }
        guard outcome.succeeded else {
            let lastLines = outcome.stderr.split(separator: "\n").suffix(3).joined(separator: " / ")
            return AlertDelivery(hook: hook.id, delivered: false, attempts: 1,
                                 detail: "\((program as NSString).lastPathComponent) failed (\(outcome.statusText))" + (lastLines.isEmpty ? "" : ": \(lastLines)"))
        }
        return AlertDelivery(hook: hook.id, delivered: true, attempts: 1, detail: outcome.statusText)
    }

    // MARK: webhooks

    func requestOptions(_ hook: AlertsConfiguration.Webhook, json: [UInt8]) -> CurlTransferOptions {
        var lines: [String] = []
        if !hook.headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            lines.append("Content-Type: application/json")
        }
        lines += hook.headers.map { "\($0.name): \($0.value)" }
        // No "Expect: 100-continue" round trip for bodies over 1 KiB: many receivers never answer it.
        lines.append("Expect:")
        lines.append("User-Agent: pgbackd")
        let timeout = hook.timeoutSeconds * 1000
        return CurlTransferOptions(
            method: "POST", url: hook.url, headers: lines, body: json,
            connectTimeoutMilliseconds: timeout, lowSpeedLimit: 0, lowSpeedTimeSeconds: 0,
            verifyTLS: true, caFile: hook.caFile, timeoutMilliseconds: timeout
        )
    }

    func post(_ hook: AlertsConfiguration.Webhook, event: AlertEvent, json: [UInt8]) async -> AlertDelivery {
        let options = requestOptions(hook, json: json)
        var attempt = 0
        while true {
            attempt += 1
            let detail: String
            let retryable: Bool
            do {
                let response = try await pool.send(options, maxBody: 4096)
                if (200..<300).contains(response.status) {
                    return AlertDelivery(hook: hook.id, delivered: true, attempts: attempt, detail: "HTTP \(response.status)")
                }
                retryable = response.status == 429 || response.status >= 500
                detail = "\(hook.endpoint) answered HTTP \(response.status)" + Self.excerpt(response.body, hiding: hook.headers)
            } catch let error as CurlError {
                retryable = error.isTransient
                detail = "\(hook.endpoint): \(error.message.isEmpty ? "\(error.code)" : error.message)"
            } catch {
                retryable = false
                detail = "\(hook.endpoint): \(error)"
            }
            guard retryable, attempt < Self.webhookAttempts, !Task.isCancelled else {
                return AlertDelivery(hook: hook.id, delivered: false, attempts: attempt, detail: detail)
            }
            let delay = retryDelays[min(attempt - 1, retryDelays.count - 1)]
            logger.warning("alert webhook failed; retrying", metadata: [
                "alert.hook": "\(hook.id)", "alert.event": "\(event.event)", "alert.attempt": "\(attempt)", "alert.error": "\(detail)",
            ])
            do {
                try await Task.sleep(for: delay)
            } catch {
                return AlertDelivery(hook: hook.id, delivered: false, attempts: attempt, detail: detail + " (cancelled before retrying)")
            }
        }
    }

    /// The start of an error response, for the log; a receiver that echoes our headers back
    /// must not put their secret values there.
    static func excerpt(_ body: [UInt8], hiding headers: [AlertsConfiguration.Header]) -> String {
        var text = String(decoding: body, as: UTF8.self)
        for header in headers where !header.value.isEmpty {
            text = text.replacingOccurrences(of: header.value, with: "<redacted>")
        }
        text = String(text.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces).prefix(300))
        return text.isEmpty ? "" : ": \(text)"
    }
}
