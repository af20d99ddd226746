import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// SIGHUP: read the configuration file again, validate it, and apply it; an invalid file (or one
/// that changes what only a restart can) is logged and the running configuration kept.
struct ReloadService: Service {
    let scheduler: Scheduler
    let notifier: SystemdNotifier
    let path: String
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                notifier.reloading()
                reload()
                notifier.ready()
            }
        }
    }

    func reload() {
        let old = scheduler.configuration
        do {
            let new = try Configuration.load(path: path)
            if let reason = DaemonReload.restartRequired(old: old, new: new) {
                logger.error("configuration reload rejected; keeping the running configuration", metadata: ["config.file": "\(path)", "config.error": "\(reason)"])
                return
            }
            scheduler.apply(new)
            logger.notice("configuration reloaded", metadata: ["config.file": "\(path)"])
        } catch {
            logger.error("configuration reload rejected; keeping the running configuration", metadata: ["config.file": "\(path)", "config.error": "\(error)"])
        }
    }
}
