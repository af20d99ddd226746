import Foundation
import Logging
@testable import PGBackupCore
import ServiceLifecycle
import Testing

/// The daemon's alert delivery service: raisers go on at once, hooks still run, and a graceful
/// shutdown delivers what is queued before the service ends.
@Suite struct AlertServiceTests {
    let event = AlertEvent(event: .backupFailed, stanza: "main", summary: "backup FAILED: test")

    /// A hook that takes `seconds`, then appends the event's name to `out`.
    func slowHook(_ directory: String, seconds: Double) throws -> AlertsConfiguration {
        let path = "\(directory)/hook.sh"
        try "#!/bin/bash\nsleep \(seconds)\necho \"$PGBACKD_EVENT\" >> \(directory)/delivered\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return AlertsConfiguration(commands: [.init(id: "alerts.command[0]", events: .init([.backupFailed]), run: [path])])
    }

    func delivered(_ directory: String) -> [String] {
        ((try? String(contentsOfFile: "\(directory)/delivered", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func aRaiserDoesNotWaitForHooksAndAStopDeliversWhatIsQueued() async throws {
        let directory = try temporaryDirectory("alert-service")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logger = Logger(label: "test")
        let service = AlertService(logger: logger)
        let metrics = DaemonMetrics()
        let alerts = AlertDispatcher(configuration: try slowHook(directory, seconds: 2), logger: logger, metrics: metrics, outbox: service)
        let group = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: logger))
        try await withThrowingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            let clock = ContinuousClock()
            let start = clock.now
            let deliveries = await alerts.send(event)
            await alerts.send(event)
            // Handed over, not run: the hook takes 2 s.
            #expect(deliveries.isEmpty)
            #expect(clock.now - start < .seconds(1), "send waited \(clock.now - start)")
            #expect(delivered(directory).isEmpty)
            // A stop right away: both queued events are still delivered before the service ends.
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            #expect(delivered(directory) == ["backup.failed", "backup.failed"])
            #expect(clock.now - start >= .seconds(2))
        }
        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(exposition.contains(#"pgbackd_alert_deliveries_total{event="backup.failed",result="delivered"} 2"#), "\(exposition)")

        // After the stop, an event is delivered in place rather than lost.
        let late = await alerts.send(event)
        #expect(late.map(\.delivered) == [true])
        #expect(delivered(directory).count == 3)
    }
}
