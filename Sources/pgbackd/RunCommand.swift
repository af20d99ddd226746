import ArgumentParser
import Foundation
import Logging
import ObjectStorage
import PGBackupCore
import ServiceLifecycle
import UnixSignals

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: scheduled backups, drills and retention, the WAL watcher; for systemd Type=notify.",
        discussion: """
            Takes the repository's lock (one daemon per repository on this host), tells systemd \
            READY=1 once the repository is reachable, runs [schedule]'s jobs and ships the WAL \
            spool. SIGHUP reloads the configuration (an invalid one is rejected and the old one \
            kept); SIGTERM or SIGINT stops: running jobs get daemon.stop_timeout_seconds to \
            finish, then are cancelled and commit nothing.
            """)

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try await runReportingErrors {
            let configuration = try common.loadConfiguration()
            let logger = common.makeLogger()
            let lock = try DaemonLock(configuration: configuration)
            let repository = try await RepositoryFactory.open(configuration, logger: logger)
            // Reachable: a listing answers (an empty or new repository is fine).
            _ = try await repository.storage.list(prefix: repository.markerKey)
            let store = try await StateStore.open(configuration: configuration, repository: repository, logger: logger)
            let metrics = DaemonMetrics()
            await metrics.prime(state: store.state, repository: repository, logger: logger)
            let outbox = AlertService(logger: logger)
            let jobs = DaemonJobs(repository: repository, metrics: metrics, outbox: outbox, logger: logger)
            let scheduler = Scheduler(configuration: configuration, runner: jobs, store: store, metrics: metrics, logger: logger)
            let notifier = SystemdNotifier()
            // First: a graceful shutdown stops services in reverse order, so alerts raised while
            // the others stop are still delivered.
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: outbox)]
            if configuration.daemon.walWatcher && configuration.wal.mode == .spool {
                let alerts = AlertDispatcher(configuration: configuration.alerts, logger: logger, metrics: metrics, outbox: outbox)
                services.append(.init(service: WALWatcher(configuration: configuration, repository: repository, alerts: alerts, logger: logger)))
            }
            services.append(.init(service: scheduler))
            services.append(.init(service: ReloadService(scheduler: scheduler, notifier: notifier, path: configuration.file, logger: logger)))
            if let listen = configuration.metrics.listen {
                let spool = configuration.wal.mode == .spool ? WALSpool(configuration.wal) : nil
                services.append(.init(service: MetricsEndpoint(host: listen.host, port: listen.port, metrics: metrics, scheduler: scheduler,
                                                               spool: spool, logger: logger)))
            }
            services.append(.init(service: HealthMonitor(scheduler: scheduler, store: store, repository: repository, metrics: metrics, outbox: outbox, logger: logger)))
            // Last: a graceful shutdown stops services in reverse order, so STOPPING=1 goes out first.
            services.append(.init(service: SystemdService(notifier: notifier, scheduler: scheduler, logger: logger)))
            var group = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            group.maximumGracefulShutdownDuration = .seconds(configuration.daemon.stopTimeoutSeconds + 30)
            logger.notice("daemon starting", metadata: [
                "repository": "\(RepositoryFactory.describe(configuration))", "daemon.lock": "\(lock.path)",
            ])
            try await ServiceGroup(configuration: group).run()
            withExtendedLifetime(lock) {}
        }
    }
}

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
