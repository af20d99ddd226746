import Foundation
import Logging
import ServiceLifecycle

/// The daemon's conversation with systemd, as a `Service`: `READY=1` when it starts (the daemon
/// adds it to its group only once the configuration is loaded, the lock taken and the repository
/// reached), `STATUS=` whenever the scheduler's line changes, `WATCHDOG=1` every half
/// `WATCHDOG_USEC` while the scheduler's loop is alive, and `STOPPING=1` when a stop begins.
///
/// It is the last service of the group, so a graceful shutdown (which stops services in reverse
/// order) reaches it first: STOPPING=1 goes out before any job is waited for.
public struct SystemdService: Service {
    let notifier: SystemdNotifier
    let scheduler: Scheduler
    let logger: Logger

    public init(notifier: SystemdNotifier, scheduler: Scheduler, logger: Logger) {
        self.notifier = notifier
        self.scheduler = scheduler
        self.logger = logger
    }

    public func run() async throws {
        notifier.ready()
        logger.notice("daemon ready", metadata: ["daemon.status": "\(scheduler.statusLine())"])
        var lastStatus = ""
        var lastWatchdog = ContinuousClock.now
        let watchdog = notifier.watchdogInterval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let line = scheduler.statusLine()
            if line != lastStatus {
                notifier.status(line)
                lastStatus = line
            }
            if let watchdog, ContinuousClock.now - lastWatchdog >= watchdog {
                // Healthy: the scheduler's loop went round recently (it ticks at least every 250 ms).
                let age = Date().timeIntervalSince(scheduler.status.heartbeat)
                if age < max(Double(watchdog.components.seconds) * 2, 5) {
                    notifier.watchdog()
                    lastWatchdog = .now
                } else {
                    logger.error("scheduler loop stalled; withholding the watchdog keep-alive", metadata: ["daemon.stalled_seconds": "\(Int(age))"])
                }
            }
            let pause: Duration = watchdog.map { min($0 / 4, .milliseconds(500)) } ?? .milliseconds(500)
            try? await Task.sleep(for: max(pause, .milliseconds(20)))
        }
        notifier.stopping()
        notifier.status("stopping: " + scheduler.statusLine())
        logger.notice("daemon stopping")
    }
}
