import Foundation
import Logging
@testable import PGBackupCore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Alert hooks against real programs: bash scripts as command hooks and a python3 HTTP receiver
/// on 127.0.0.1 as the webhook's server. Needs no PostgreSQL or S3.
@Suite(.serialized)
struct AlertHookTests {
    static let event = AlertEvent.drill(
        DrillReport(
            drillId: "20261125T021500Z-d1", backupId: "20261125T020000Z-logical", stanza: "main", host: "db1",
            startedAt: Date(timeIntervalSince1970: 1_795_573_000), finishedAt: Date(timeIntervalSince1970: 1_795_573_247),
            passed: false, checks: [],
            databases: [.init(name: "daylog", scratchDatabase: "pgbackd_drill_x", kept: false, restoreSeconds: 1, checkSeconds: 1, checks: [
                CheckResult(name: "referential", passed: false, summary: "1 of 4 foreign keys has orphan rows (1 row)",
                            figures: ["orphan_rows": 1], evidence: [["constraint": "journal_journalentry_user_id_fkey", "id": "17", "user_id": "999"]]),
            ])]
        ),
        reportKey: "main/drills/20261125T020000Z-logical/20261125T021500Z-d1.json"
    )

    func script(_ directory: String, _ name: String, _ body: String) throws -> String {
        let path = "\(directory)/\(name)"
        try "#!/bin/bash\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func dispatcher(_ configuration: AlertsConfiguration, _ logs: LogCapture) -> AlertDispatcher {
        AlertDispatcher(configuration: configuration, logger: logs.logger)
    }

    func command(_ run: [String], events: AlertsConfiguration.EventFilter = .init([.drillFailed]), timeout: Int = 30, index: Int = 0) -> AlertsConfiguration.CommandHook {
        .init(id: "alerts.command[\(index)]", events: events, run: run, timeoutSeconds: timeout)
    }

    /// Elapsed seconds of `body`.
    func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await body()
        let elapsed = start.duration(to: clock.now)
        return (result, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    // MARK: command hooks

    @Test func aScriptHookGetsTheEventAsJSONOnStdinAndThePGBACKDVariables() async throws {
        let directory = try temporaryDirectory("alert-hook")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hook = try script(directory, "hook.sh", """
            out=$1; shift
            cat > "$out/stdin.json"
            env > "$out/env.txt"
            printf '%s\\n' "$@" > "$out/args.txt"
            """)
        let logs = LogCapture()
        let configuration = AlertsConfiguration(commands: [command([hook, directory, "--team", "db"])])
        let deliveries = await dispatcher(configuration, logs).send(Self.event)

        #expect(deliveries == [AlertDelivery(hook: "alerts.command[0]", delivered: true, attempts: 1, detail: "exit code 0")])
        // Exactly the JSON document, newline-terminated, and it decodes to the event.
        let stdin = try #require(FileManager.default.contents(atPath: "\(directory)/stdin.json"))
        #expect(Array(stdin) == (try Self.event.json()) + [UInt8(ascii: "\n")])
        #expect(try AlertEvent.decode(Array(stdin)) == Self.event)
        #expect(try String(contentsOfFile: "\(directory)/args.txt", encoding: .utf8) == "--team\ndb\n")

        var environment: [String: String] = [:]
        for line in try String(contentsOfFile: "\(directory)/env.txt", encoding: .utf8).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { environment[String(parts[0])] = String(parts[1]) }
        }
        #expect(environment["PGBACKD_EVENT"] == "drill.failed")
        #expect(environment["PGBACKD_BACKUP_ID"] == "20261125T020000Z-logical")
        #expect(environment["PGBACKD_REPORT"] == "main/drills/20261125T020000Z-logical/20261125T021500Z-d1.json")
        #expect(environment["PGBACKD_SEVERITY"] == "critical")
        #expect(environment["PGBACKD_STANZA"] == "main")
        // Nothing of the test process's environment but the few allowed variables (bash adds PWD, SHLVL, _).
        let allowed: Set<String> = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "PWD", "OLDPWD", "SHLVL", "_"]
        let pgbackd: Set<String> = ["PGBACKD_EVENT", "PGBACKD_BACKUP_ID", "PGBACKD_REPORT", "PGBACKD_SEVERITY", "PGBACKD_STANZA"]
        #expect(Set(environment.keys).subtracting(allowed) == pgbackd)
        #expect(logs.records.contains { $0.level == .info && $0.message == "alert delivered" && $0.metadata["alert.hook"] == "alerts.command[0]" })
    }

    @Test func onlyHooksThatWantTheEventRun() async throws {
        let directory = try temporaryDirectory("alert-hook")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hook = try script(directory, "hook.sh", "touch \"$1/$2\"")
        let configuration = AlertsConfiguration(commands: [
            command([hook, directory, "drill-only"], events: .init([.drillFailed]), index: 0),
            command([hook, directory, "backup-only"], events: .init([.backupFailed]), index: 1),
            command([hook, directory, "everything"], events: .all, index: 2),
        ])
        let deliveries = await dispatcher(configuration, LogCapture()).send(Self.event)
        #expect(deliveries.map(\.hook) == ["alerts.command[0]", "alerts.command[2]"])
        #expect(deliveries.allSatisfy { $0.delivered })
        #expect(FileManager.default.fileExists(atPath: "\(directory)/drill-only"))
        #expect(FileManager.default.fileExists(atPath: "\(directory)/everything"))
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/backup-only"))
    }

    @Test func hooksRunConcurrently() async throws {
        let directory = try temporaryDirectory("alert-hook")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A barrier, not a stopwatch (a 7 s bound failed at 7.1 s on a loaded CI machine): each
        // hook marks its start and succeeds only once all three have started. Run one after
        // another, the first never sees the others and fails after 30 s.
        let hook = try script(directory, "barrier.sh", """
            touch "\(directory)/started.$$"
            for _ in $(seq 300); do
              [ "$(ls "\(directory)" | grep -c '^started\\.')" -ge 3 ] && exit 0
              sleep 0.1
            done
            exit 1
            """)
        let configuration = AlertsConfiguration(commands: (0..<3).map { command([hook], index: $0) })
        let deliveries = await dispatcher(configuration, LogCapture()).send(Self.event)
        #expect(deliveries.count == 3)
        #expect(deliveries.allSatisfy { $0.delivered }, "the hooks did not run at once: \(deliveries.map(\.delivered))")
    }

    /// PID of a process the hook started, once it wrote it; and whether it is gone (or a zombie).
    func isGone(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        let state = stat.split(separator: ")").last?.split(separator: " ").first
        return state == "Z" || state == "X"
    }

    func waitForPID(_ file: String) async throws -> pid_t {
        for _ in 0..<100 {
            if let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return pid
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw CancellationError()
    }

    @Test func aHangingHookIsKilledAtItsTimeout() async throws {
        let directory = try temporaryDirectory("alert-hook")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hook = try script(directory, "hang.sh", """
            sleep 300 &
            echo $! > "$1/sleep.pid"
            wait
            """)
        let logs = LogCapture()
        let configuration = AlertsConfiguration(commands: [command([hook, directory], timeout: 1)])
        let (deliveries, elapsed) = await timed { await dispatcher(configuration, logs).send(Self.event) }

        #expect(elapsed >= 0.9)
        // What this rules out is waiting for the hook's 300 s sleep; a bound near the timeout
        // plus the 2 s kill grace failed at 3.18 s on a loaded CI machine.
        #expect(elapsed < 30, "send returned after \(elapsed) s")
        #expect(deliveries.count == 1)
        #expect(deliveries.first?.delivered == false)
        #expect(deliveries.first?.detail == "hang.sh killed after its 1 s timeout")
        // The whole process group went: the script's own child too.
        let sleeper = try await waitForPID("\(directory)/sleep.pid")
        try await Task.sleep(for: .milliseconds(100))
        #expect(isGone(sleeper), "the hook's sleep \(sleeper) is still running")
        let failure = try #require(logs.records.first { $0.level == .error })
        #expect(failure.message == "alert hook failed")
        #expect(failure.metadata["alert.hook"] == "alerts.command[0]")
        #expect(failure.metadata["alert.event"] == "drill.failed")
        #expect(failure.metadata["alert.error"]?.contains("timeout") == true)
    }

    @Test func aHookThatIgnoresSIGTERMIsKilledWithSIGKILL() async throws {
        let directory = try temporaryDirectory("alert-hook")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hook = try script(directory, "stubborn.sh", """
            trap '' TERM
            sleep 300 &
            echo $! > "$1/sleep.pid"
            while true; do wait; done
            """)
        let configuration = AlertsConfiguration(commands: [command([hook, directory], timeout: 1)])
        let (deliveries, elapsed) = await timed { await dispatcher(configuration, LogCapture()).send(Self.event) }
        // 1 s timeout, then 2 s of grace after SIGTERM, then SIGKILL.
        #expect(elapsed >= 2.8)
        // Rules out waiting for the 300 s sleep, with room for a loaded machine.
        #expect(elapsed < 30, "send returned after \(elapsed) s")
        #expect(deliveries.first?.delivered == false)
        #expect(deliveries.first?.detail.contains("timeout") == true)
        let sleeper = try await waitForPID("\(directory)/sleep.pid")
        try await Task.sleep(for: .milliseconds(100))
        #expect(isGone(sleeper), "the hook's sleep \(sleeper) survived SIGKILL of its group")
    }

    @Test func failingAndMissingProgramsAreReportedNotThrown() async throws {
        let directory = try temporaryDirectory("alert-hook")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let failing = try script(directory, "fail.sh", "cat > /dev/null; echo 'pager: no route to on-call' >&2; exit 3")
        let logs = LogCapture()
        let configuration = AlertsConfiguration(commands: [
            command([failing], index: 0),
            command(["\(directory)/no-such-program"], index: 1),
        ])
        let deliveries = await dispatcher(configuration, logs).send(Self.event)
        #expect(deliveries.count == 2)
        #expect(deliveries[0] == AlertDelivery(hook: "alerts.command[0]", delivered: false, attempts: 1,
                                               detail: "fail.sh failed (exit code 3): pager: no route to on-call"))
        #expect(deliveries[1].delivered == false)
        #expect(deliveries[1].detail.hasPrefix("could not start no-such-program"))
        #expect(logs.records.filter { $0.level == .error }.compactMap { $0.metadata["alert.hook"] }.sorted() == ["alerts.command[0]", "alerts.command[1]"])
    }

    // MARK: webhooks

    @Test func aWebhookPostsTheEventWithTheTokenFromItsFile() async throws {
        let receiver = try await Receiver.start()
        defer { receiver.stop() }
        let directory = try temporaryDirectory("alert-webhook")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "Bearer hook-token-4711\n".write(toFile: "\(directory)/webhook.token", atomically: true, encoding: .utf8)
        // Through the configuration file, as an operator writes it.
        let configuration = try Configuration.parse("""
            [[alerts.webhook]]
            events = ["drill.failed"]
            url = "http://127.0.0.1:\(receiver.port)/pgbackd?source=test"
            headers = { Authorization_file = "\(directory)/webhook.token", X-Team = "db" }
            """, file: "\(directory)/pgbackd.toml")
        let logs = LogCapture()
        let deliveries = await dispatcher(configuration.alerts, logs).send(Self.event)

        #expect(deliveries == [AlertDelivery(hook: "alerts.webhook[0]", delivered: true, attempts: 1, detail: "HTTP 200")])
        let requests = try receiver.requests()
        #expect(requests.count == 1)
        let request = try #require(requests.first)
        #expect(request.method == "POST")
        #expect(request.path == "/pgbackd?source=test")
        #expect(request.header("Authorization") == "Bearer hook-token-4711")
        #expect(request.header("X-Team") == "db")
        #expect(request.header("Content-Type") == "application/json")
        #expect(try AlertEvent.decode(Array(request.body.utf8)) == Self.event)
        #expect(request.body == String(decoding: try Self.event.json(), as: UTF8.self))
        // The token is in no log line.
        #expect(!logs.text.contains("hook-token-4711"))
        #expect(logs.records.contains { $0.message == "alert delivered" && $0.metadata["alert.hook"] == "alerts.webhook[0]" })
    }

    @Test func aWebhookIsRetriedOn500AndSucceedsOnTheThirdAttempt() async throws {
        let receiver = try await Receiver.start(answers: [500, 500])
        defer { receiver.stop() }
        let logs = LogCapture()
        let hook = AlertsConfiguration.Webhook(id: "alerts.webhook[0]", events: .all, url: "http://127.0.0.1:\(receiver.port)/hook")
        let (deliveries, elapsed) = await timed { await dispatcher(AlertsConfiguration(webhooks: [hook]), logs).send(Self.event) }

        #expect(deliveries == [AlertDelivery(hook: "alerts.webhook[0]", delivered: true, attempts: 3, detail: "HTTP 200")])
        let requests = try receiver.requests()
        #expect(requests.map(\.status) == [500, 500, 200])
        // Every attempt carries the same document.
        #expect(Set(requests.map(\.body)).count == 1)
        #expect(elapsed >= 1.4, "the back-off is 0.5 s, then 1 s")
        #expect(logs.records.filter { $0.level == .warning && $0.message == "alert webhook failed; retrying" }.count == 2)
        #expect(!logs.records.contains { $0.level == .error })
    }

    @Test func aWebhookIsRetriedOn429ButNotOnOther4xx() async throws {
        let limited = try await Receiver.start(answers: [429])
        defer { limited.stop() }
        let rejecting = try await Receiver.start(answers: [401, 401, 401])
        defer { rejecting.stop() }
        let logs = LogCapture()
        let configuration = AlertsConfiguration(webhooks: [
            .init(id: "alerts.webhook[0]", events: .all, url: "http://127.0.0.1:\(limited.port)/"),
            .init(id: "alerts.webhook[1]", events: .all, url: "http://127.0.0.1:\(rejecting.port)/",
                  headers: [.init(name: "Authorization", value: "Bearer wrong-token-1234")]),
        ])
        let deliveries = await dispatcher(configuration, logs).send(Self.event)
        #expect(deliveries.count == 2)
        #expect(deliveries[0] == AlertDelivery(hook: "alerts.webhook[0]", delivered: true, attempts: 2, detail: "HTTP 200"))
        #expect(deliveries[1].delivered == false)
        #expect(deliveries[1].attempts == 1)
        #expect(deliveries[1].detail.hasPrefix("http://127.0.0.1:\(rejecting.port) answered HTTP 401"))
        #expect(try rejecting.requests().count == 1)
        // The receiver echoes the Authorization header in its error body; the log must not.
        #expect(deliveries[1].detail.contains("<redacted>"))
        #expect(!logs.text.contains("wrong-token-1234"))
    }

    @Test func anUnreachableWebhookIsLoggedAndSendStillReturns() async throws {
        let port = try closedPort()
        let logs = LogCapture()
        let hook = AlertsConfiguration.Webhook(id: "alerts.webhook[0]", events: .all, url: "http://127.0.0.1:\(port)/hook", timeoutSeconds: 2)
        let (deliveries, elapsed) = await timed { await dispatcher(AlertsConfiguration(webhooks: [hook]), logs).send(Self.event) }

        #expect(deliveries.count == 1)
        let delivery = try #require(deliveries.first)
        #expect(!delivery.delivered)
        #expect(delivery.attempts == AlertDispatcher.webhookAttempts)
        #expect(delivery.detail.hasPrefix("http://127.0.0.1:\(port): "))
        #expect(elapsed < 5, "send took \(elapsed) s")
        let failure = try #require(logs.records.first { $0.level == .error })
        #expect(failure.message == "alert hook failed")
        #expect(failure.metadata["alert.hook"] == "alerts.webhook[0]")
        #expect(failure.metadata["alert.event"] == "drill.failed")
        #expect(failure.metadata["alert.attempts"] == "3")
        #expect(failure.metadata["alert.error"] == delivery.detail)
    }

    @Test func commandAndWebhookHooksForOneEventBothRun() async throws {
        let receiver = try await Receiver.start()
        defer { receiver.stop() }
        let directory = try temporaryDirectory("alert-both")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hook = try script(directory, "hook.sh", "cat > \"$1/stdin.json\"")
        let configuration = AlertsConfiguration(
            commands: [command([hook, directory])],
            webhooks: [.init(id: "alerts.webhook[0]", events: .init([.drillFailed]), url: "http://127.0.0.1:\(receiver.port)/")]
        )
        let deliveries = await dispatcher(configuration, LogCapture()).send(Self.event)
        #expect(deliveries.map(\.hook) == ["alerts.command[0]", "alerts.webhook[0]"])
        #expect(deliveries.allSatisfy { $0.delivered })
        let stdin = try #require(FileManager.default.contents(atPath: "\(directory)/stdin.json"))
        #expect(try receiver.requests().first?.body == String(decoding: stdin.dropLast(), as: UTF8.self))
    }
}

// MARK: helpers

/// A loopback port nothing listens on: bound, read, closed.
func closedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Log records, kept for assertions.
final class LogCapture: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let storage = Mutex<[Record]>([])

    var records: [Record] { storage.withLock { $0 } }
    /// Every message and metadata value, for "never logged" checks.
    var text: String { records.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n") }

    var logger: Logger {
        var logger = Logger(label: "pgbackd.test.alerts") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    fileprivate func append(_ record: Record) { storage.withLock { $0.append(record) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.append(Record(level: event.level, message: event.message.description, metadata: merged.mapValues { "\($0)" }))
        }
    }
}

/// A small HTTP server on 127.0.0.1 (python3's http.server) that answers POSTs with the
/// statuses it is told, then 200, and writes every request it gets (method, path, headers,
/// body, the status it answered) as a JSON line to a file.
final class Receiver: Sendable {
    static let script = #"""
    import sys, json, threading
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
    out = sys.argv[1]
    answers = [int(s) for s in sys.argv[2].split(",") if s] if len(sys.argv) > 2 else []
    lock = threading.Lock()
    count = [0]
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args): pass
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                n = count[0]
                count[0] += 1
                status = answers[n] if n < len(answers) else 200
                with open(out, "a") as f:
                    f.write(json.dumps({"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                                        "body": body.decode("utf-8"), "status": status}) + "\n")
            if status == 200:
                reply = b'{"ok":true}'
            else:
                reply = json.dumps({"error": "injected", "authorization": self.headers.get("Authorization")}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """#

    struct Request: Decodable, Sendable {
        var method: String
        var path: String
        var headers: [[String]]
        var body: String
        var status: Int

        func header(_ name: String) -> String? {
            headers.first { $0.first?.lowercased() == name.lowercased() }?.last
        }
    }

    let process: Process
    let port: Int
    let directory: String
    var log: String { "\(directory)/requests.jsonl" }

    private init(process: Process, port: Int, directory: String) {
        self.process = process
        self.port = port
        self.directory = directory
    }

    static func start(answers: [Int] = []) async throws -> Receiver {
        let directory = try temporaryDirectory("alert-receiver")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", script, "\(directory)/requests.jsonl", answers.map(String.init).joined(separator: ",")]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = output.fileHandleForReading
        let line: String = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var data = Data()
                while !data.contains(UInt8(ascii: "\n")) {
                    let chunk = reader.availableData
                    if chunk.isEmpty { break }
                    data.append(chunk)
                }
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: directory)
            throw ReceiverFailed(output: line)
        }
        return Receiver(process: process, port: port, directory: directory)
    }

    struct ReceiverFailed: Error, CustomStringConvertible {
        var output: String
        var description: String { "the HTTP receiver did not start (python3 missing?): \(output)" }
    }

    func requests() throws -> [Request] {
        guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { try JSONDecoder().decode(Request.self, from: Data($0.utf8)) }
    }

    /// SIGKILL: a child started from a dispatch thread inherits that thread's blocked signals,
    /// SIGTERM among them, so `terminate()` could leave it running.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
