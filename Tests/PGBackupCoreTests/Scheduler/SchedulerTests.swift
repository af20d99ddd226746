import Foundation
import Logging
@testable import PGBackupCore
import Synchronization
import Testing

struct SchedulePlanTests {
    static func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    func schedule(_ jobs: [JobKind: String], catchUp: Bool = true) throws -> ScheduleConfiguration {
        ScheduleConfiguration(timeZone: TimeZone(identifier: "Europe/Berlin")!, jobs: try jobs.mapValues { try CronExpression($0) }, catchUp: catchUp)
    }

    func state(_ starts: [JobKind: String]) -> DaemonState {
        var state = DaemonState()
        for (kind, start) in starts {
            state.record(kind, JobRun(start: Self.date(start), end: Self.date(start).addingTimeInterval(60), outcome: .succeeded))
        }
        return state
    }

    @Test func nextRunsAreInTheScheduleTimeZone() throws {
        let plan = SchedulePlan(try schedule([.backup: "0 2 * * *", .drill: "30 3 * * *"]))
        let next = plan.nextRuns(after: Self.date("2026-11-25T12:00:00Z"))
        #expect(next[.backup] == Self.date("2026-11-26T01:00:00Z"))
        #expect(next[.drill] == Self.date("2026-11-26T02:30:00Z"))
        #expect(next[.baseBackup] == nil)
    }

    @Test func aMissedRunIsCaughtUpOnceHoweverManyWereMissed() throws {
        let plan = SchedulePlan(try schedule([.backup: "0 2 * * *", .drill: "30 3 * * *", .retention: "0 5 * * *"]))
        // Down from the 20th to the 25th at noon: backup missed five runs, drill ran this morning,
        // retention never ran (nothing to catch up).
        let state = state([.backup: "2026-11-20T01:00:00Z", .drill: "2026-11-25T02:30:00Z"])
        #expect(plan.missedRuns(state: state, now: Self.date("2026-11-25T12:00:00Z")) == [.backup])
    }

    @Test func noCatchUpWhenTurnedOff() throws {
        let plan = SchedulePlan(try schedule([.backup: "0 2 * * *"], catchUp: false))
        #expect(plan.missedRuns(state: state([.backup: "2026-11-20T01:00:00Z"]), now: Self.date("2026-11-25T12:00:00Z")).isEmpty)
    }

    @Test func aRunExactlyDueNowCountsAsMissed() throws {
        let plan = SchedulePlan(try schedule([.backup: "0 2 * * *"]))
        #expect(plan.missedRuns(state: state([.backup: "2026-11-24T01:00:00Z"]), now: Self.date("2026-11-25T01:00:00Z")) == [.backup])
        #expect(plan.missedRuns(state: state([.backup: "2026-11-24T01:00:00Z"]), now: Self.date("2026-11-25T00:59:59Z")).isEmpty)
    }
}

/// Scheduler runs against a recording runner and `@every 1s` schedules.
@Suite(.serialized) struct SchedulerServiceTests {
    final class Recorder: ScheduledJobRunner {
        struct Event: Sendable { var kind: JobKind; var start: Date; var end: Date }
        let events = Mutex<[Event]>([])
        let active = Mutex<[JobKind: Int]>([:])
        let maxSelfOverlap = Mutex(0)
        let maxDatabaseOverlap = Mutex(0)
        let duration: Duration
        let failing: Set<JobKind>

        init(duration: Duration, failing: Set<JobKind> = []) {
            self.duration = duration
            self.failing = failing
        }

        func run(_ kind: JobKind, configuration: Configuration) async throws -> JobResult {
            let start = Date()
            active.withLock { active in
                active[kind, default: 0] += 1
                let selfCount = active[kind]!
                let database = active.filter { $0.key.usesDatabase }.values.reduce(0, +)
                maxSelfOverlap.withLock { $0 = max($0, selfCount) }
                maxDatabaseOverlap.withLock { $0 = max($0, database) }
            }
            defer { active.withLock { $0[kind]! -= 1 } }
            if failing.contains(kind) {
                events.withLock { $0.append(Event(kind: kind, start: start, end: Date())) }
                throw SimulatedJobFailure()
            }
            try await Task.sleep(for: duration)
            events.withLock { $0.append(Event(kind: kind, start: start, end: Date())) }
            return JobResult(backupId: "\(kind.rawValue)-id", summary: "ok")
        }
    }

    func configuration(_ directory: String, jobs: String, stopTimeout: Int = 60) throws -> Configuration {
        try Configuration.parse("""
            [repository]
            path = "\(directory)/repo"
            [schedule]
            \(jobs)
            [daemon]
            state_dir = "\(directory)/state"
            stop_timeout_seconds = \(stopTimeout)
            """, file: "test.toml")
    }

    func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-sched-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    var logger: Logger { Logger(label: "test") }

    @Test(.timeLimit(.minutes(2))) func jobsNeverOverlapThemselvesAndDatabaseJobsRunOneAtATime() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try configuration(dir, jobs: """
            backup = "@every 1s"
            drill = "@every 1s"
            base_backup = "@every 1s"
            retention = "@every 1s"
            """)
        // Each job takes longer than its interval.
        let recorder = Recorder(duration: .milliseconds(1300), failing: [.retention])
        let store = StateStore(directory: config.daemon.stateDirectory, state: DaemonState())
        let scheduler = Scheduler(configuration: config, runner: recorder, store: store, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await scheduler.run() }
            // Until every kind ran at least once (at most 40 s: the whole suite shares two cores).
            for _ in 0..<400 where Set(recorder.events.withLock { $0.map(\.kind) }).count < 4 {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await Task.sleep(for: .seconds(2))
            group.cancelAll()
        }
        #expect(recorder.maxSelfOverlap.withLock { $0 } == 1)
        #expect(recorder.maxDatabaseOverlap.withLock { $0 } == 1)
        let kinds = Set(recorder.events.withLock { $0.map(\.kind) })
        #expect(kinds.contains(.retention))
        #expect(kinds.count >= 3)
        // Recorded in the state file, failures with their reason.
        let saved = try #require(try DaemonState.load(stateDirectory: config.daemon.stateDirectory))
        #expect(saved.history(.retention).lastFailure?.error == "SimulatedJobFailure()")
        #expect(saved.history(.retention).lastSuccess == nil)
        #expect(kinds.filter(\.usesDatabase).allSatisfy { saved.history($0).lastSuccess?.backupId == "\($0.rawValue)-id" })
    }

    @Test(.timeLimit(.minutes(1))) func catchUpRunsAMissedJobAtStart() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try configuration(dir, jobs: """
            backup = "0 2 * * *"
            drill = "0 3 * * *"
            catch_up = true
            """)
        var state = DaemonState()
        state.record(.backup, JobRun(start: Date().addingTimeInterval(-3 * 86_400), end: Date().addingTimeInterval(-3 * 86_400 + 60), outcome: .succeeded))
        let recorder = Recorder(duration: .milliseconds(10))
        let scheduler = Scheduler(configuration: config, runner: recorder, store: StateStore(directory: config.daemon.stateDirectory, state: state), logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await scheduler.run() }
            // Until the catch-up ran (a fixed second was too short under CI's load), then a
            // little longer for anything that should not run.
            for _ in 0..<300 where recorder.events.withLock({ $0.isEmpty }) {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await Task.sleep(for: .milliseconds(500))
            group.cancelAll()
        }
        #expect(recorder.events.withLock { $0.map(\.kind) } == [.backup])
    }

    @Test func stateFileRoundTripsAndIsReplacedAtomically() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try DaemonState.load(stateDirectory: dir) == nil)
        var state = DaemonState()
        let start = Date(timeIntervalSince1970: 1_790_000_000)
        state.record(.backup, JobRun(start: start, end: start + 10, outcome: .succeeded, backupId: "b1"))
        state.record(.backup, JobRun(start: start + 100, end: start + 110, outcome: .failed, error: "pg_dump failed"))
        try state.save(stateDirectory: dir)
        let loaded = try #require(try DaemonState.load(stateDirectory: dir))
        #expect(loaded == state)
        #expect(loaded.history(.backup).lastSuccess?.backupId == "b1")
        #expect(loaded.history(.backup).lastFailure?.error == "pg_dump failed")
        #expect(loaded.history(.backup).lastRun?.outcome == .failed)
        // No temp file left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["state.json"])
    }
}

struct SimulatedJobFailure: Error {}
