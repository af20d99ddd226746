import Foundation
import Logging
import ServiceLifecycle

/// What can go stale: backups (`daemon.max_backup_age`) and their proof (`daemon.max_unverified_age`).
public enum StaleSubject: String, Sendable, CaseIterable {
    case backup
    case drill
}

/// When to raise a staleness alert: once when an episode starts, then a reminder every `maxAge`
/// while it lasts, so a pager that missed the first one hears again, but not every minute.
public struct StalenessEpisode: Sendable, Equatable {
    /// When the current episode last raised (its start or its latest reminder); nil: not stale.
    public private(set) var raisedAt: Date?

    public init() {}

    public var isStale: Bool { raisedAt != nil }

    /// `lastGood`: the newest success (or, with none, when watching began). True when an alert
    /// is due now.
    public mutating func evaluate(lastGood: Date, maxAge: Duration, now: Date) -> Bool {
        let limit = TimeInterval(maxAge.components.seconds)
        guard now.timeIntervalSince(lastGood) > limit else {
            raisedAt = nil
            return false
        }
        if let raisedAt, now.timeIntervalSince(raisedAt) < limit { return false }
        raisedAt = now
        return true
    }
}

/// The daemon's own events, as a `Service`: `daemon.started` when it runs, `backup.stale` and
/// `drill.stale` while nothing succeeded within the configured ages, `daemon.stopping` when a
/// graceful shutdown begins.
///
/// The scheduler's state says when a job last succeeded, but a backup taken by hand or by another
/// host is only in the repository, so before raising, the monitor asks the repository too.
public struct HealthMonitor: Service {
    let scheduler: Scheduler
    let store: StateStore
    let repository: Repository
    let metrics: DaemonMetrics?
    let outbox: AlertService?
    let logger: Logger
    let now: @Sendable () -> Date

    public init(scheduler: Scheduler, store: StateStore, repository: Repository, metrics: DaemonMetrics?, outbox: AlertService?,
                logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) {
        self.outbox = outbox
        self.scheduler = scheduler
        self.store = store
        self.repository = repository
        self.metrics = metrics
        self.logger = logger
        self.now = now
    }

    public func run() async throws {
        let startedAt = now()
        let stanza = scheduler.configuration.repository.stanza
        await alerts().send(AlertEvent(event: .daemonStarted, stanza: stanza,
                                       summary: "pgbackd run started: \(scheduler.statusLine())", time: startedAt))
        // The loop sleeps up to a minute: a graceful shutdown cancels it rather than waiting.
        await cancelWhenGracefulShutdown {
            await watchStaleness(since: startedAt)
        }
        await alerts().send(AlertEvent(event: .daemonStopping, stanza: stanza,
                                       summary: "pgbackd run is stopping: \(scheduler.statusLine())"))
    }

    private func watchStaleness(since startedAt: Date) async {
        var episodes: [StaleSubject: StalenessEpisode] = [:]
        // What the repository showed last time it was asked: backups taken by hand count.
        var seenInRepository: [StaleSubject: Date] = [:]
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let daemon = scheduler.configuration.daemon
            for subject in StaleSubject.allCases {
                guard let maxAge = subject == .backup ? daemon.maxBackupAge : daemon.maxUnverifiedAge else {
                    episodes[subject] = nil
                    metrics?.setStale(subject, false)
                    continue
                }
                await check(subject, maxAge: maxAge, since: startedAt, episode: &episodes[subject, default: StalenessEpisode()],
                            seenInRepository: &seenInRepository[subject])
            }
            let ages = [daemon.maxBackupAge, daemon.maxUnverifiedAge].compactMap { $0 }
            // Often enough to raise within a tenth of the age; at most once a minute.
            let pause = min(ages.map { $0 / 10 }.min() ?? .seconds(60), .seconds(60))
            try? await Task.sleep(for: max(pause, .seconds(1)))
        }
    }

    private func alerts() -> AlertDispatcher {
        AlertDispatcher(configuration: scheduler.configuration.alerts, logger: logger, metrics: metrics, outbox: outbox)
    }

    private func check(_ subject: StaleSubject, maxAge: Duration, since startedAt: Date, episode: inout StalenessEpisode,
                       seenInRepository: inout Date?) async {
        let recorded = max(lastRecordedSuccess(subject) ?? startedAt, seenInRepository ?? .distantPast)
        var trial = episode
        guard trial.evaluate(lastGood: recorded, maxAge: maxAge, now: now()) else {
            episode = trial
            metrics?.setStale(subject, episode.isStale)
            return
        }
        // Stale by the daemon's own record: ask the repository before raising.
        let newest: (id: String, at: Date)?
        do {
            newest = try await newestInRepository(subject)
        } catch {
            logger.warning("cannot read the repository to confirm staleness; deciding on the daemon's own record", metadata: [
                "stale.subject": "\(subject.rawValue)", "stale.error": "\(error)",
            ])
            newest = nil
        }
        if let newest { seenInRepository = max(seenInRepository ?? .distantPast, newest.at) }
        let lastGood = max(recorded, newest?.at ?? .distantPast)
        guard episode.evaluate(lastGood: lastGood, maxAge: maxAge, now: now()) else {
            metrics?.setStale(subject, episode.isStale)
            return
        }
        metrics?.setStale(subject, true)
        let event = staleEvent(subject, maxAge: maxAge, newest: newest, lastGood: lastGood, startedAt: startedAt)
        logger.warning("\(event.summary)", metadata: ["alert.event": "\(event.event)"])
        await alerts().send(event)
    }

    private func lastRecordedSuccess(_ subject: StaleSubject) -> Date? {
        let state = store.state
        let kinds: [JobKind] = subject == .backup ? [.backup, .baseBackup] : [.drill]
        return kinds.compactMap { state.history($0).lastSuccess?.end }.max()
    }

    private func newestInRepository(_ subject: StaleSubject) async throws -> (id: String, at: Date)? {
        switch subject {
        case .backup:
            return try await repository.backups().max { $0.finishedAt < $1.finishedAt }.map { ($0.backupId, $0.finishedAt) }
        case .drill:
            return try await repository.newestPassedDrill().map { ($0.backupId, $0.finishedAt) }
        }
    }

    func staleEvent(_ subject: StaleSubject, maxAge: Duration, newest: (id: String, at: Date)?, lastGood: Date, startedAt: Date) -> AlertEvent {
        let age = Self.describe(seconds: now().timeIntervalSince(lastGood))
        let limit = Self.describe(seconds: TimeInterval(maxAge.components.seconds))
        let stanza = scheduler.configuration.repository.stanza
        switch subject {
        case .backup:
            let detail = newest.map { "the newest is \($0.id), \(age) old" } ?? "there is none, and the daemon started \(age) ago"
            return AlertEvent(event: .backupStale, stanza: stanza,
                              summary: "no backup succeeded within daemon.max_backup_age (\(limit)): \(detail); check the backup job's last failure in `pgbackd status`",
                              backupId: newest?.id)
        case .drill:
            let detail = newest.map { "the newest passing drill restored \($0.id) and finished \(age) ago" } ?? "no drill has passed, and the daemon started \(age) ago"
            return AlertEvent(event: .drillStale, stanza: stanza,
                              summary: "no drill passed within daemon.max_unverified_age (\(limit)): \(detail); the newer backups are unproven",
                              backupId: newest?.id)
        }
    }

    /// `26h 5m`, `90s`: ages for people.
    static func describe(seconds: TimeInterval) -> String {
        let total = Int(seconds.rounded())
        if total < 120 { return "\(total)s" }
        let days = total / 86_400, hours = total % 86_400 / 3600, minutes = total % 3600 / 60
        return [(days, "d"), (hours, "h"), (minutes, "m")].filter { $0.0 > 0 }.map { "\($0.0)\($0.1)" }.joined(separator: " ")
    }
}
