import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// What a finished job reports.
public struct JobResult: Sendable, Equatable {
    public var backupId: String?
    public var drillId: String?
    public var summary: String
    public init(backupId: String? = nil, drillId: String? = nil, summary: String) {
        self.backupId = backupId
        self.drillId = drillId
        self.summary = summary
    }
}

/// Runs one job with the configuration in force when it starts. The daemon's is ``DaemonJobs``;
/// tests use their own.
public protocol ScheduledJobRunner: Sendable {
    func run(_ kind: JobKind, configuration: Configuration) async throws -> JobResult
}

/// The scheduler's decisions, without clocks or tasks: when each job runs next, and which missed
/// runs to catch up at start.
public struct SchedulePlan: Sendable {
    public var schedule: ScheduleConfiguration

    public init(_ schedule: ScheduleConfiguration) { self.schedule = schedule }

    /// The next run of every scheduled job strictly after `now`.
    public func nextRuns(after now: Date) -> [JobKind: Date] {
        schedule.jobs.compactMapValues { $0.next(after: now, in: schedule.timeZone) }
    }

    /// Jobs that missed a run while the daemon was down: a fire time lies after their last
    /// recorded start and at or before `now`. Each runs once, however many runs it missed. A job
    /// with no recorded run has nothing to catch up. Empty when `catch_up = false`.
    public func missedRuns(state: DaemonState, now: Date) -> [JobKind] {
        guard schedule.catchUp else { return [] }
        return schedule.jobs.keys.sorted().filter { kind in
            guard let last = state.history(kind).lastRun?.start,
                  let due = schedule.jobs[kind]!.next(after: last, in: schedule.timeZone) else { return false }
            return due <= now
        }
    }
}

/// Hands the database to one job at a time, in the order they asked.
final class DatabaseGate: Sendable {
    private struct State {
        var busy = false
        var queue: [Int] = []
        var nextTicket = 0
    }
    private let state = Mutex(State())

    func acquire() async throws {
        let ticket = state.withLock { state -> Int in
            defer { state.nextTicket += 1 }
            state.queue.append(state.nextTicket)
            return state.nextTicket
        }
        while true {
            let granted = state.withLock { state -> Bool in
                guard !state.busy, state.queue.first == ticket else { return false }
                state.busy = true
                state.queue.removeFirst()
                return true
            }
            if granted { return }
            do {
                try await Task.sleep(for: .milliseconds(50))
            } catch {
                state.withLock { $0.queue.removeAll { $0 == ticket } }
                throw error
            }
        }
    }

    func release() { state.withLock { $0.busy = false } }
}

/// The daemon's scheduler, a `Service`: starts each job at its cron times, never two runs of one
/// job at once (a run still going when the next is due skips that one), and the database jobs
/// (backup, base_backup, drill) one at a time. Missed runs are caught up once at start. Every
/// finished run is recorded in the state file.
///
/// Graceful shutdown starts nothing new; running jobs get `daemon.stop_timeout_seconds` to
/// finish, then are cancelled (a cancelled backup removes what it stored and commits nothing).
public final class Scheduler: Service, Sendable {
    public struct Status: Sendable {
        public var running: [JobKind: Date] = [:]
        public var waitingForDatabase: Set<JobKind> = []
        public var next: [JobKind: Date] = [:]
        /// When the loop last went round: the watchdog's sign of life.
        public var heartbeat: Date = Date()
    }

    private struct Shared {
        var configuration: Configuration
        var generation = 0
        var status = Status()
    }

    let runner: any ScheduledJobRunner
    let store: StateStore
    let metrics: DaemonMetrics?
    let logger: Logger
    let now: @Sendable () -> Date
    private let shared: Mutex<Shared>
    private let gate = DatabaseGate()

    public init(configuration: Configuration, runner: any ScheduledJobRunner, store: StateStore, metrics: DaemonMetrics? = nil,
                logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) {
        self.runner = runner
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.now = now
        shared = Mutex(Shared(configuration: configuration))
    }

    public var status: Status { shared.withLock { $0.status } }
    public var configuration: Configuration { shared.withLock { $0.configuration } }

    /// A reloaded configuration: new schedules apply from now; running jobs keep theirs.
    public func apply(_ configuration: Configuration) {
        shared.withLock {
            $0.configuration = configuration
            $0.generation += 1
        }
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            var plan = SchedulePlan(configuration.schedule)
            var generation = shared.withLock { $0.generation }
            let started = now()
            let missed = plan.missedRuns(state: store.state, now: started)
            for kind in missed {
                logger.notice("catching up a run missed while the daemon was down", metadata: ["job": "\(kind.rawValue)"])
                start(kind, in: &group)
            }
            var next = plan.nextRuns(after: started)
            publish(next)
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let current = now()
                let reloaded = shared.withLock { $0.generation != generation ? ($0.generation, $0.configuration.schedule) : nil }
                if let (newGeneration, schedule) = reloaded {
                    generation = newGeneration
                    plan = SchedulePlan(schedule)
                    next = plan.nextRuns(after: current)
                    logger.notice("schedules reloaded", metadata: ["schedule.next": "\(Self.describe(next, in: schedule.timeZone))"])
                }
                for (kind, due) in next.sorted(by: { $0.key < $1.key }) where due <= current {
                    start(kind, in: &group)
                    next[kind] = plan.schedule.jobs[kind]?.next(after: max(current, due), in: plan.schedule.timeZone)
                }
                publish(next)
                let wake = next.values.min().map { min($0.timeIntervalSince(now()), 0.25) } ?? 0.25
                try? await Task.sleep(for: .milliseconds(max(Int(wake * 1000), 10)))
            }
            await drain(group: &group)
        }
        logger.notice("scheduler stopped")
    }

    private func publish(_ next: [JobKind: Date]) {
        let current = now()
        shared.withLock {
            $0.status.next = next
            $0.status.heartbeat = current
        }
    }

    private func start(_ kind: JobKind, in group: inout DiscardingTaskGroup) {
        let current = now()
        let alreadyRunning = shared.withLock { shared -> Bool in
            if shared.status.running[kind] != nil { return true }
            shared.status.running[kind] = current
            return false
        }
        if alreadyRunning {
            logger.warning("job still running from its previous start; skipping this run", metadata: ["job": "\(kind.rawValue)"])
            return
        }
        group.addTask { await self.execute(kind) }
    }

    private func execute(_ kind: JobKind) async {
        defer { _ = shared.withLock { $0.status.running.removeValue(forKey: kind) } }
        var logger = self.logger
        logger[metadataKey: "job"] = "\(kind.rawValue)"
        let start = now()
        let configuration = self.configuration
        var run = JobRun(start: start, end: start, outcome: .succeeded)
        do {
            if kind.usesDatabase {
                shared.withLock { _ = $0.status.waitingForDatabase.insert(kind) }
                defer { shared.withLock { _ = $0.status.waitingForDatabase.remove(kind) } }
                try await gate.acquire()
            }
            defer { if kind.usesDatabase { gate.release() } }
            logger.info("job started")
            let result = try await runner.run(kind, configuration: configuration)
            run.backupId = result.backupId
            run.drillId = result.drillId
            logger.notice("job succeeded", metadata: ["job.summary": "\(result.summary)"])
        } catch {
            run.outcome = (error as? JobCheckFailed)?.outcome ?? (JobCancelled.isCancellation(error) ? .cancelled : .failed)
            run.error = String(describing: error).replacingOccurrences(of: "\n", with: " ")
            if run.outcome == .cancelled {
                logger.warning("job cancelled", metadata: ["job.error": "\(run.error!)"])
            } else {
                logger.error("job failed", metadata: ["job.error": "\(run.error!)"])
            }
        }
        run.end = now()
        metrics?.jobFinished(kind, run)
        await store.record(kind, run, logger: logger)
        ProcessMemory.releaseFreePages()
    }

    /// Waits up to `stop_timeout_seconds` for running jobs, then cancels them and waits for
    /// their cleanup.
    private func drain(group: inout DiscardingTaskGroup) async {
        let timeout = TimeInterval(configuration.daemon.stopTimeoutSeconds)
        let deadline = now().addingTimeInterval(timeout)
        var running = status.running.keys.sorted()
        if !running.isEmpty {
            logger.notice("waiting for running jobs to finish", metadata: [
                "jobs": "\(running.map(\.rawValue).joined(separator: ","))", "daemon.stop_timeout_seconds": "\(Int(timeout))",
            ])
        }
        while !running.isEmpty, now() < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            running = status.running.keys.sorted()
        }
        if !running.isEmpty {
            logger.warning("stop timeout reached; cancelling running jobs (they remove what they stored and commit nothing)", metadata: [
                "jobs": "\(running.map(\.rawValue).joined(separator: ","))",
            ])
            group.cancelAll()
        }
    }

    /// `backup at 2026-11-26 02:00 CET, drill at …`, soonest first.
    public static func describe(_ next: [JobKind: Date], in timeZone: TimeZone) -> String {
        guard !next.isEmpty else { return "nothing scheduled" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = timeZone
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
        return next.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.map { "\($0.key.rawValue) at \(formatter.string(from: $0.value))" }.joined(separator: ", ")
    }

    /// The systemd STATUS= line.
    public func statusLine() -> String {
        let status = self.status
        let zone = configuration.schedule.timeZone
        var parts: [String] = []
        let running = status.running.keys.sorted().filter { !status.waitingForDatabase.contains($0) }
        if !running.isEmpty { parts.append("running " + running.map(\.rawValue).joined(separator: ", ")) }
        if !status.waitingForDatabase.isEmpty { parts.append("waiting for the database: " + status.waitingForDatabase.sorted().map(\.rawValue).joined(separator: ", ")) }
        if parts.isEmpty { parts.append("idle") }
        parts.append("next: " + Self.describe(status.next, in: zone))
        return parts.joined(separator: "; ")
    }
}

/// The state file, owned by the daemon: every finished run is recorded and saved at once.
public final class StateStore: Sendable {
    let directory: String
    private let current: Mutex<DaemonState>
    private let queue = DispatchQueue(label: "pgbackd.state")

    public init(directory: String, state: DaemonState) {
        self.directory = directory
        current = Mutex(state)
    }

    public var state: DaemonState { current.withLock { $0 } }

    /// The state file of `configuration`, rebuilt from the repository when missing or unreadable.
    public static func open(configuration: Configuration, repository: Repository, logger: Logger) async throws -> StateStore {
        let directory = configuration.daemon.stateDirectory
        do {
            if let state = try DaemonState.load(stateDirectory: directory) {
                return StateStore(directory: directory, state: state)
            }
            logger.notice("no state file; rebuilding it from the repository", metadata: ["state.path": "\(DaemonState.path(stateDirectory: directory))"])
        } catch {
            logger.warning("state file unreadable; rebuilding it from the repository", metadata: [
                "state.path": "\(DaemonState.path(stateDirectory: directory))", "state.error": "\(error)",
            ])
        }
        let state = try await DaemonState.rebuild(from: repository)
        try state.save(stateDirectory: directory)
        return StateStore(directory: directory, state: state)
    }

    func record(_ kind: JobKind, _ run: JobRun, logger: Logger) async {
        current.withLock { $0.record(kind, run) }
        let directory = self.directory
        do {
            // The snapshot is taken on the serial queue, so the newest state is saved last.
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                queue.async {
                    let snapshot = self.state
                    continuation.resume(with: Result { try snapshot.save(stateDirectory: directory) })
                }
            }
        } catch {
            logger.error("cannot save the state file", metadata: ["state.error": "\(error)"])
        }
    }
}
