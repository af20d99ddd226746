import Foundation
import Logging
import ObjectStorage
import ServiceLifecycle
import Synchronization

/// The WAL watcher as a long-running `Service`: ships the spool whenever inotify reports a new
/// file, and at least every `wal.rescan_seconds`; watches the lag of the oldest unshipped file
/// and the reachability of the storage, raising each alert once per episode and a resolved event
/// when it ends. `pgbackd wal-watch` runs it alone in a `ServiceGroup`; the daemon runs it next to
/// its scheduler.
///
/// Graceful shutdown starts no new upload and aborts the ones in flight (their files stay
/// spooled: a later run ships them); alerts already raised are still delivered before `run()`
/// returns.
public final class WALWatcher: Service, Sendable {
    public let shipper: WALShipper
    let rescanInterval: Duration
    let useInotify: Bool
    let now: @Sendable () -> Date
    let sendAlert: @Sendable (AlertEvent) async -> Void
    let logger: Logger

    private struct State {
        var status = WALWatcherStatus()
        var episodes: WALAlertEpisodes
        /// Spool listings are numbered when they start; the pass and the lag check list the
        /// spool concurrently, and a listing older than the last one applied is dropped, so a
        /// stale view never reopens an episode that a fresher one closed.
        var listingsStarted = 0
        var lastListingApplied = 0
    }
    private let state: Mutex<State>

    /// The watcher for `configuration`'s `[wal]` section, shipping into `repository`.
    public convenience init(configuration: Configuration, repository: Repository, alerts: AlertDispatcher, logger: Logger) {
        let shipper = WALShipper(
            spool: WALSpool(configuration.wal),
            archive: WALArchive(repository: repository, level: configuration.compression.level, logger: logger),
            parallelUploads: configuration.wal.parallelUploads, alerts: alerts, logger: logger)
        self.init(
            shipper: shipper, stanza: configuration.repository.stanza,
            repositoryDescription: RepositoryFactory.describe(configuration),
            maxLagSeconds: configuration.wal.maxLagSeconds, rescanInterval: .seconds(configuration.wal.rescanSeconds),
            useInotify: true, now: { Date() }, sendAlert: { await alerts.send($0) }, logger: logger)
    }

    /// For tests: a clock and an alert sink of their own, and inotify optional.
    init(shipper: WALShipper, stanza: String, repositoryDescription: String, maxLagSeconds: Int, rescanInterval: Duration,
         useInotify: Bool, now: @escaping @Sendable () -> Date, sendAlert: @escaping @Sendable (AlertEvent) async -> Void, logger: Logger) {
        self.shipper = shipper
        self.rescanInterval = rescanInterval
        self.useInotify = useInotify
        self.now = now
        self.sendAlert = sendAlert
        self.logger = logger
        state = Mutex(State(episodes: WALAlertEpisodes(
            stanza: stanza, spoolDirectory: shipper.spool.directory,
            repositoryDescription: repositoryDescription, maxLagSeconds: maxLagSeconds)))
    }

    /// A snapshot of what the watcher knows now (for `pgbackd status` and metrics).
    public var status: WALWatcherStatus { state.withLock { $0.status } }

    // MARK: Service

    public func run() async throws {
        let (events, sink) = AsyncStream.makeStream(of: AlertEvent.self)
        logger.info("WAL watcher started", metadata: [
            "wal.spool": "\(shipper.spool.directory)", "wal.rescan_seconds": "\(rescanInterval.components.seconds)",
        ])
        await withTaskGroup(of: Void.self) { group in
            // Outside the graceful-shutdown scope: a resolved event raised just before the stop
            // is still delivered, and a slow hook never holds up shipping.
            group.addTask {
                for await event in events { await self.sendAlert(event) }
            }
            await cancelWhenGracefulShutdown {
                await self.watch { event in sink.yield(event) }
            }
            sink.finish()
        }
        logger.notice("WAL watcher stopped; files not yet shipped stay in the spool", metadata: ["wal.spool": "\(shipper.spool.directory)"])
    }

    /// `wal-watch --once`: one pass with the same bookkeeping and alerts (sent before it returns).
    /// - Throws: when the spool cannot be listed.
    public func runOnce() async throws -> WALShipper.PassResult {
        let collected = Mutex<[AlertEvent]>([])
        let result = try await pass { event in collected.withLock { $0.append(event) } }
        for event in collected.withLock({ $0 }) { await sendAlert(event) }
        return result
    }

    // MARK: loops

    private func watch(_ emit: @escaping @Sendable (AlertEvent) -> Void) async {
        let notifier = makeNotifier()
        await withTaskGroup(of: Void.self) { group in
            // The lag is checked on its own schedule: a pass can take minutes while the storage
            // times out, and the lag alert must not wait for it.
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.rescanInterval)
                    if Task.isCancelled { break }
                    await self.checkLag(emit)
                }
            }
            while !Task.isCancelled {
                do {
                    _ = try await pass(emit)
                } catch {
                    if Task.isCancelled { break }
                    logger.error("WAL spool scan failed; retrying", metadata: ["wal.spool": "\(shipper.spool.directory)", "wal.error": "\(error)"])
                }
                if let notifier {
                    let wake = await notifier.wait(timeout: rescanInterval)
                    if wake == .fileEvent { logger.trace("WAL spool changed", metadata: ["wal.spool": "\(shipper.spool.directory)"]) }
                } else {
                    try? await Task.sleep(for: rescanInterval)
                }
            }
            group.cancelAll()
        }
    }

    private func makeNotifier() -> SpoolNotifier? {
        guard useInotify else { return nil }
        do {
            let notifier = try SpoolNotifier(directory: shipper.spool.directory)
            state.withLock { $0.status.wakeups = .inotify }
            return notifier
        } catch {
            logger.warning("inotify is unavailable: new WAL files are found by the rescan only", metadata: [
                "wal.spool": "\(shipper.spool.directory)", "wal.rescan_seconds": "\(rescanInterval.components.seconds)", "wal.error": "\(error)",
            ])
            return nil
        }
    }

    /// One pass, then the bookkeeping: status, storage and conflict episodes, the lag.
    func pass(_ emit: @Sendable (AlertEvent) -> Void) async throws -> WALShipper.PassResult {
        let result: WALShipper.PassResult
        do {
            result = try await shipper.pass()
        } catch {
            if !Task.isCancelled { record(error: "cannot list the spool: \(error)") }
            throw error
        }
        if Task.isCancelled { return result }
        var outcome = WALAlertEpisodes.storageOutcome(of: result)
        if case .untested = outcome, state.withLock({ $0.episodes.unreachable }) {
            outcome = await probeStorage()
        }
        let view = try? await spoolView()
        let now = self.now()
        let events: [AlertEvent] = state.withLock { state in
            var events: [AlertEvent] = []
            let confirmed = (result.shipped + result.alreadyArchived).filter { $0.kind == .segment }
            if let newest = confirmed.max(), state.status.lastShipped.map({ $0 < newest }) ?? true {
                state.status.lastShipped = newest
                state.status.lastShippedAt = now
            }
            if let failure = result.failures.first {
                state.status.lastError = "\(failure.file.name): \(failure.error)"
                state.status.lastErrorAt = now
            } else if let conflict = result.conflicts.first {
                state.status.lastError = "\(conflict.file.name): \(conflict.error)"
                state.status.lastErrorAt = now
            }
            state.status.lastPassAt = now
            if let event = state.episodes.observeStorage(outcome, spooledFiles: view?.files.count ?? 0, now: now) { events.append(event) }
            state.status.storageUnreachable = state.episodes.unreachable
            events += state.episodes.observeConflicts(result.conflicts, spooled: view.map { Set($0.files.map(\.file)) }, now: now)
            if let view { events += Self.update(&state, with: view, now: now) }
            return events
        }
        events.forEach { raise($0, emit) }
        return result
    }

    /// Looks at the spool and updates the lag episode.
    func checkLag(_ emit: @Sendable (AlertEvent) -> Void) async {
        let view: WALAlertEpisodes.SpoolView
        do {
            view = try await spoolView()
        } catch {
            if !Task.isCancelled { record(error: "cannot list the spool: \(error)") }
            return
        }
        let now = self.now()
        let events = state.withLock { Self.update(&$0, with: view, now: now) }
        events.forEach { raise($0, emit) }
    }

    private static func update(_ state: inout State, with view: WALAlertEpisodes.SpoolView, now: Date) -> [AlertEvent] {
        guard view.number > state.lastListingApplied else { return [] }
        state.lastListingApplied = view.number
        state.status.spooledFiles = view.files.count
        state.status.spoolBytes = view.bytes
        let oldest = view.oldest
        state.status.oldestUnshipped = oldest?.file
        state.status.oldestUnshippedAge = oldest.map { max(0, now.timeIntervalSince($0.modified)) }
        let event = state.episodes.observeLag(view, now: now)
        state.status.lagging = state.episodes.lagging
        return event.map { [$0] } ?? []
    }

    private func spoolView() async throws -> WALAlertEpisodes.SpoolView {
        let number = state.withLock { state in
            state.listingsStarted += 1
            return state.listingsStarted
        }
        return WALAlertEpisodes.SpoolView(files: try await shipper.spool.pending(), number: number)
    }

    /// While storage is down and nothing is spooled, a pass asks the storage nothing; a HEAD of
    /// the repository marker tells whether it is back.
    private func probeStorage() async -> WALAlertEpisodes.StorageOutcome {
        let repository = shipper.archive.repository
        do {
            _ = try await repository.storage.head(key: repository.markerKey)
            return .reachable
        } catch {
            return WALShipper.isUnreachable(error) ? .unreachable("\(error)") : .untested
        }
    }

    private func record(error: String) {
        let now = self.now()
        state.withLock {
            $0.status.lastError = error
            $0.status.lastErrorAt = now
        }
    }

    private func raise(_ event: AlertEvent, _ emit: @Sendable (AlertEvent) -> Void) {
        let metadata: Logger.Metadata = ["alert.event": "\(event.event)", "wal.spool": "\(shipper.spool.directory)"]
        if event.severity == .info {
            logger.notice("\(event.summary)", metadata: metadata)
        } else {
            logger.warning("\(event.summary)", metadata: metadata)
        }
        emit(event)
    }
}
