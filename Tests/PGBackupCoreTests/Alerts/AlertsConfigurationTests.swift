import Foundation
@testable import PGBackupCore
import Testing

@Suite struct AlertsConfigurationTests {
    let file = "/etc/pgbackd/test.toml"

    func parse(_ text: String) throws -> AlertsConfiguration {
        try Configuration.parse(text, file: file).alerts
    }

    func failure(_ text: String) -> ConfigurationError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error as? ConfigurationError
        }
    }

    /// A token file in a fresh temporary directory; removed by the caller.
    func tokenFile(_ content: String) throws -> (directory: String, path: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alerts-config-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/webhook.token"
        try content.write(toFile: path, atomically: true, encoding: .utf8)
        return (directory, path)
    }

    static func issueExample(tokenPath: String) -> String {
        """
        [[alerts.command]]
        events = ["backup.failed", "drill.failed"]
        run = ["/usr/local/bin/page-oncall", "--team", "db"]
        timeout_seconds = 30

        [[alerts.webhook]]
        events = ["drill.failed"]
        url = "https://hooks.example.com/pgbackd"
        headers = { Authorization_file = "\(tokenPath)" }
        """
    }

    @Test func noAlertsSectionMeansNoHooks() throws {
        let alerts = try parse("")
        #expect(alerts.isEmpty)
        #expect(alerts.commands.isEmpty && alerts.webhooks.isEmpty)
    }

    @Test func theIssueExampleParsesAsWritten() throws {
        let token = try tokenFile("  Bearer abc.def-123 \n")
        defer { try? FileManager.default.removeItem(atPath: token.directory) }
        let alerts = try parse(Self.issueExample(tokenPath: token.path))

        #expect(alerts.commands.count == 1)
        let command = try #require(alerts.commands.first)
        #expect(command.id == "alerts.command[0]")
        #expect(command.run == ["/usr/local/bin/page-oncall", "--team", "db"])
        #expect(command.timeoutSeconds == 30)
        #expect(command.events == AlertsConfiguration.EventFilter([.backupFailed, .drillFailed]))

        #expect(alerts.webhooks.count == 1)
        let webhook = try #require(alerts.webhooks.first)
        #expect(webhook.id == "alerts.webhook[0]")
        #expect(webhook.url == "https://hooks.example.com/pgbackd")
        #expect(webhook.events == AlertsConfiguration.EventFilter([.drillFailed]))
        // `Authorization_file` becomes the header `Authorization`, its value the trimmed file.
        #expect(webhook.headers == [AlertsConfiguration.Header(name: "Authorization", value: "Bearer abc.def-123")])
        #expect(webhook.timeoutSeconds == AlertsConfiguration.Webhook.defaultTimeoutSeconds)
        #expect(webhook.endpoint == "https://hooks.example.com")
    }

    @Test func defaultsOfOptionalKeys() throws {
        let alerts = try parse("""
            [[alerts.command]]
            events = ["*"]
            run = ["/bin/true"]

            [[alerts.webhook]]
            events = ["backup.succeeded"]
            url = "http://127.0.0.1:8080/x"
            """)
        #expect(alerts.commands[0].timeoutSeconds == 30)
        #expect(alerts.webhooks[0].timeoutSeconds == 10)
        #expect(alerts.webhooks[0].headers.isEmpty)
        #expect(alerts.webhooks[0].caFile == nil)
        #expect(alerts.webhooks[0].endpoint == "http://127.0.0.1:8080")
    }

    @Test func headerValuesNeverShowInDescriptions() throws {
        let token = try tokenFile("Bearer very-secret-token\n")
        defer { try? FileManager.default.removeItem(atPath: token.directory) }
        let configuration = try Configuration.parse(Self.issueExample(tokenPath: token.path) + """

            [[alerts.webhook]]
            events = ["*"]
            url = "https://chat.example.com/hooks/T000/B000/secretpath?token=q"
            headers = { X-Api-Key = "inline-secret" }
            """, file: file)
        let text = "\(configuration.alerts) \(configuration.alerts.webhooks) \(configuration.alerts.webhooks.map(\.headers))"
        #expect(!text.contains("very-secret-token"))
        #expect(!text.contains("inline-secret"))
        #expect(!text.contains("secretpath"))
        #expect(text.contains("Authorization: <redacted>"))
        #expect(text.contains("X-Api-Key: <redacted>"))
        #expect(configuration.alerts.webhooks[1].headers == [AlertsConfiguration.Header(name: "X-Api-Key", value: "inline-secret")])
    }

    @Test func aMissingTokenFileIsAConfigurationErrorNamingTheKey() throws {
        let error = try #require(failure(Self.issueExample(tokenPath: "/nonexistent/pgbackd/webhook.token")))
        #expect(error.code == .secret)
        #expect(error.key == "alerts.webhook[0].headers.Authorization_file")
        #expect(error.message.contains("/nonexistent/pgbackd/webhook.token"))
        #expect(error.message.contains("does not exist"))
        #expect(error.description.hasPrefix(file + ": alerts.webhook[0].headers.Authorization_file: "))
    }

    @Test func anEmptyTokenFileIsRejected() throws {
        let token = try tokenFile(" \n\n")
        defer { try? FileManager.default.removeItem(atPath: token.directory) }
        let error = try #require(failure(Self.issueExample(tokenPath: token.path)))
        #expect(error.code == .secret)
        #expect(error.message.contains("is empty"))
    }

    @Test func aValueWithALineBreakIsRejectedWithoutShowingIt() throws {
        let token = try tokenFile("Bearer first-line\nX-Injected: evil-second-line\n")
        defer { try? FileManager.default.removeItem(atPath: token.directory) }
        let error = try #require(failure(Self.issueExample(tokenPath: token.path)))
        #expect(error.code == .invalidValue)
        #expect(error.key == "alerts.webhook[0].headers.Authorization_file")
        #expect(!error.description.contains("first-line"))
        #expect(!error.description.contains("evil"))
    }

    @Test func unknownEventNamesSuggestTheClosestKnownOne() throws {
        let error = try #require(failure("""
            [[alerts.command]]
            events = ["backup.failed", "drill.fail"]
            run = ["/usr/local/bin/page-oncall"]
            """))
        #expect(error.code == .invalidValue)
        #expect(error.key == "alerts.command[0].events")
        #expect(error.message.contains("unknown event \"drill.fail\""))
        #expect(error.message.contains("did you mean \"drill.failed\"?"))
        #expect(error.message.contains("backup.succeeded"))

        let far = try #require(failure("""
            [[alerts.webhook]]
            events = ["everything"]
            url = "https://hooks.example.com/x"
            """))
        #expect(far.key == "alerts.webhook[0].events")
        #expect(!far.message.contains("did you mean"))
        #expect(far.message.contains("or \"*\" for all"))
    }

    @Test func everyKnownEventNameIsAccepted() throws {
        let names = AlertEventName.known.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        let alerts = try parse("""
            [[alerts.command]]
            events = [\(names)]
            run = ["/bin/true"]
            """)
        #expect(alerts.commands[0].events.names == Set(AlertEventName.known))
        #expect(AlertEventName.known.map(\.rawValue) == [
            "backup.succeeded", "backup.failed", "drill.succeeded", "drill.failed", "retention.failed", "wal_check.failed",
            "wal.lag", "wal.lag.resolved", "wal.gap",
            "wal.conflict", "storage.unreachable", "storage.reachable", "spool.full", "backup.stale", "drill.stale",
            "daemon.started", "daemon.stopping",
        ])
    }

    @Test func starMatchesEveryEventAndNamesOnlyThemselves() throws {
        let alerts = try parse("""
            [[alerts.command]]
            events = ["*"]
            run = ["/bin/true"]

            [[alerts.command]]
            events = ["drill.failed", "backup.failed"]
            run = ["/bin/true"]
            """)
        let all = alerts.commands[0].events
        let some = alerts.commands[1].events
        #expect(all.matchesAll)
        for name in AlertEventName.known {
            #expect(all.matches(name))
            #expect(some.matches(name) == (name == .drillFailed || name == .backupFailed))
        }
    }

    @Test func hooksAreValidated() throws {
        func expectFailure(_ text: String, _ code: ConfigurationError.Code, key: String, containing: String,
                           sourceLocation: SourceLocation = #_sourceLocation) {
            let error = failure(text)
            #expect(error?.code == code, sourceLocation: sourceLocation)
            #expect(error?.key == key, sourceLocation: sourceLocation)
            #expect(error?.message.contains(containing) == true, "\(String(describing: error))", sourceLocation: sourceLocation)
        }
        expectFailure("""
            [[alerts.command]]
            run = ["/bin/true"]
            """, .missingKey, key: "alerts.command[0].events", containing: "needs events")
        expectFailure("""
            [[alerts.command]]
            events = []
            run = ["/bin/true"]
            """, .invalidValue, key: "alerts.command[0].events", containing: "at least one")
        expectFailure("""
            [[alerts.command]]
            events = ["*"]
            """, .missingKey, key: "alerts.command[0].run", containing: "needs run")
        expectFailure("""
            [[alerts.command]]
            events = ["*"]
            run = []
            """, .invalidValue, key: "alerts.command[0].run", containing: "empty array")
        expectFailure("""
            [[alerts.command]]
            events = ["*"]
            run = ["page-oncall", "--team", "db"]
            """, .invalidValue, key: "alerts.command[0].run", containing: "absolute path")
        expectFailure("""
            [[alerts.command]]
            events = ["*"]
            run = "/usr/local/bin/page-oncall --team db"
            """, .wrongType, key: "alerts.command[0].run", containing: "array of strings")
        expectFailure("""
            [[alerts.command]]
            events = ["*"]
            run = ["/bin/true"]
            timeout_seconds = 0
            """, .invalidValue, key: "alerts.command[0].timeout_seconds", containing: "from 1")
        expectFailure("""
            [[alerts.command]]
            events = ["*"]
            run = ["/bin/true"]
            timeout_second = 5
            """, .unknownKey, key: "alerts.command[0].timeout_second", containing: "did you mean 'timeout_seconds'")
        expectFailure("""
            [[alerts.webhook]]
            events = ["*"]
            url = "ftp://hooks.example.com/x"
            """, .invalidValue, key: "alerts.webhook[0].url", containing: "http:// or https://")
        expectFailure("""
            [[alerts.webhook]]
            events = ["*"]
            url = "hooks.example.com/x"
            """, .invalidValue, key: "alerts.webhook[0].url", containing: "http:// or https://")
        expectFailure("""
            [[alerts.webhook]]
            events = ["*"]
            """, .missingKey, key: "alerts.webhook[0].url", containing: "needs url")
        expectFailure("""
            [[alerts.webhook]]
            events = ["*"]
            url = "https://hooks.example.com/x"
            headers = { "Bad Name" = "v" }
            """, .invalidValue, key: "alerts.webhook[0].headers.Bad Name", containing: "not a valid HTTP header name")
        expectFailure("""
            [[alerts.webhook]]
            events = ["*"]
            url = "https://hooks.example.com/x"
            headers = { Authorization_file = "relative/token" }
            """, .invalidValue, key: "alerts.webhook[0].headers.Authorization_file", containing: "absolute path")
        expectFailure("""
            [[alerts.slack]]
            events = ["*"]
            """, .unknownKey, key: "alerts.slack", containing: "unknown key")
    }

    @Test func aHeaderSetTwiceIsRejected() throws {
        let token = try tokenFile("Bearer x")
        defer { try? FileManager.default.removeItem(atPath: token.directory) }
        let error = try #require(failure("""
            [[alerts.webhook]]
            events = ["*"]
            url = "https://hooks.example.com/x"
            headers = { Authorization = "Bearer y", Authorization_file = "\(token.path)" }
            """))
        #expect(error.code == .invalidValue)
        #expect(error.message.contains("set twice"))
        #expect(!error.description.contains("Bearer"))
    }
}
