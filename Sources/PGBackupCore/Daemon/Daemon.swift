import Foundation
import Logging
import ObjectStorage
import ServiceLifecycle
import UnixSignals

/// `pgbackd run`: every long-running part as a `Service` in one `ServiceGroup`. Takes the
/// repository's lock, checks the repository answers, then runs until SIGTERM or SIGINT.
public enum Daemon {
    public static func run(configuration: Configuration, logger: Logger) async throws {
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
        // the others stop (a cancelled job's) are still delivered.
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

    /// `pgbackd wal-watch`: the WAL watcher alone, in the foreground, until SIGTERM or SIGINT;
    /// uploads in flight get `grace` to abort.
    public static func runWALWatcher(_ watcher: WALWatcher, logger: Logger, grace: Duration) async throws {
        var group = ServiceGroupConfiguration(services: [.init(service: watcher)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = grace
        try await ServiceGroup(configuration: group).run()
    }
}
