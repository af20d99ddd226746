import CurlHTTP
import Foundation
import Logging
@testable import PGBackupCore
import Testing

/// The dispatcher's parts that need no process or server; tests/IntegrationTests/Alerts runs
/// real hooks.
@Suite struct AlertDispatcherTests {
    let event = AlertEvent(
        event: .drillFailed, stanza: "main", summary: "drill failed", backupId: "20261125T020000Z-logical",
        reportKey: "main/drills/20261125T020000Z-logical/d1.json", host: "db1", time: Date(timeIntervalSince1970: 1_795_573_247)
    )

    @Test func commandHooksGetThePGBACKDVariablesAndNoSecretsOfOurs() {
        let inherited = [
            "PATH": "/usr/bin:/bin", "HOME": "/var/lib/pgbackd", "LANG": "C.UTF-8",
            "AWS_SECRET_ACCESS_KEY": "s3cr3t", "PGPASSWORD": "pw", "PGBACKD_CONFIG": "/etc/pgbackd/pgbackd.toml",
        ]
        let environment = AlertDispatcher.environment(for: event, inherited: inherited)
        #expect(environment == [
            "PATH": "/usr/bin:/bin", "HOME": "/var/lib/pgbackd", "LANG": "C.UTF-8",
            "PGBACKD_EVENT": "drill.failed", "PGBACKD_SEVERITY": "critical", "PGBACKD_STANZA": "main",
            "PGBACKD_BACKUP_ID": "20261125T020000Z-logical", "PGBACKD_REPORT": "main/drills/20261125T020000Z-logical/d1.json",
        ])
        let sparse = AlertEvent(event: .daemonStarted, stanza: "main", summary: "started")
        let minimal = AlertDispatcher.environment(for: sparse, inherited: [:])
        #expect(minimal["PGBACKD_BACKUP_ID"] == "")
        #expect(minimal["PGBACKD_REPORT"] == "")
        #expect(minimal["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    }

    @Test func webhookRequestsAreJSONPostsWithTheConfiguredHeadersAndVerifiedTLS() throws {
        let hook = AlertsConfiguration.Webhook(
            id: "alerts.webhook[0]", events: .all, url: "https://hooks.example.com/pgbackd",
            headers: [.init(name: "Authorization", value: "Bearer t")], timeoutSeconds: 7
        )
        let dispatcher = AlertDispatcher(configuration: AlertsConfiguration(webhooks: [hook]), logger: Logger(label: "test"))
        let json = try event.json()
        let options = dispatcher.requestOptions(hook, json: json)
        #expect(options.method == "POST")
        #expect(options.url == "https://hooks.example.com/pgbackd")
        #expect(options.body == json)
        #expect(options.headers.contains("Content-Type: application/json"))
        #expect(options.headers.contains("Authorization: Bearer t"))
        #expect(options.verifyTLS)
        #expect(options.timeoutMilliseconds == 7000)

        var custom = hook
        custom.headers.append(.init(name: "content-type", value: "application/vnd.pgbackd+json"))
        let replaced = dispatcher.requestOptions(custom, json: json).headers
        #expect(!replaced.contains("Content-Type: application/json"))
        #expect(replaced.contains("content-type: application/vnd.pgbackd+json"))
    }

    @Test func errorBodiesAreLoggedWithoutOurHeaderValues() {
        let headers = [AlertsConfiguration.Header(name: "Authorization", value: "Bearer abc123")]
        let body = Array("{\"error\":\"bad token\",\"got\":\"Bearer abc123\"}\n".utf8)
        let excerpt = AlertDispatcher.excerpt(body, hiding: headers)
        #expect(!excerpt.contains("abc123"))
        #expect(excerpt.contains("<redacted>"))
        #expect(AlertDispatcher.excerpt([], hiding: headers) == "")
    }

    @Test func anEventNoHookWantsRunsNothing() async {
        let configuration = AlertsConfiguration(commands: [
            .init(id: "alerts.command[0]", events: .init([.backupFailed]), run: ["/nonexistent/hook"]),
        ])
        let deliveries = await AlertDispatcher(configuration: configuration, logger: Logger(label: "test")).send(event)
        #expect(deliveries.isEmpty)
    }
}
