import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Synchronization
import Testing

/// A storage that can be switched off: every call fails as a refused connection does.
final class SwitchableStorage: ObjectStorage {
    let inner = MemoryStorage()
    private let down = Mutex(false)
    private let calls = Mutex(0)

    func set(down value: Bool) { down.withLock { $0 = value } }
    var callCount: Int { calls.withLock { $0 } }

    private func check(_ key: String) throws {
        calls.withLock { $0 += 1 }
        if down.withLock({ $0 }) {
            throw StorageError(.unreachable, key: key, message: "cannot connect to the test storage (switched off)")
        }
    }

    func makeUpload(key: String, expectedSize: Int64?) async throws -> any ObjectUpload {
        try check(key)
        return try await inner.makeUpload(key: key, expectedSize: expectedSize)
    }
    func get(key: String, range: Range<Int64>?) async throws -> ObjectByteStream {
        try check(key)
        return try await inner.get(key: key, range: range)
    }
    func head(key: String) async throws -> ObjectInfo? {
        try check(key)
        return try await inner.head(key: key)
    }
    func list(prefix: String) async throws -> [ObjectInfo] {
        try check(prefix)
        return try await inner.list(prefix: prefix)
    }
    func delete(key: String) async throws {
        try check(key)
        try await inner.delete(key: key)
    }
    func abortIncompleteUploads(prefix: String, startedBefore date: Date) async throws -> Int {
        try check(prefix)
        return try await inner.abortIncompleteUploads(prefix: prefix, startedBefore: date)
    }
}

/// A clock the test moves by hand.
final class TestClock: Sendable {
    private let current = Mutex(Date())
    var now: Date { current.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 += seconds } }
}

/// Collects the events a watcher raises.
final class AlertSink: Sendable {
    private let events = Mutex<[AlertEvent]>([])
    func send(_ event: AlertEvent) { events.withLock { $0.append(event) } }
    var names: [String] { events.withLock { $0.map(\.event.rawValue) } }
    var all: [AlertEvent] { events.withLock { $0 } }
}

struct WatcherFixture {
    let directory: WALTestDirectory
    let spool: WALSpool
    let storage = SwitchableStorage()
    let clock = TestClock()
    let alerts = AlertSink()
    let watcher: WALWatcher

    init(maxLagSeconds: Int = 300, rescanInterval: Duration = .seconds(60), useInotify: Bool = false) throws {
        directory = try WALTestDirectory()
        try FileManager.default.createDirectory(atPath: directory.spool, withIntermediateDirectories: true)
        spool = WALSpool(directory: directory.spool, maxBytes: 1 << 30)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let shipper = WALShipper(
            spool: spool, archive: WALArchive(repository: Repository(storage: storage, stanza: "main"), level: 1, logger: logger),
            parallelUploads: 2, alerts: AlertDispatcher(configuration: AlertsConfiguration(), logger: logger), logger: logger)
        let clock = self.clock, alerts = self.alerts
        watcher = WALWatcher(
            shipper: shipper, stanza: "main", repositoryDescription: "test storage", maxLagSeconds: maxLagSeconds,
            rescanInterval: rescanInterval, useInotify: useInotify, now: { clock.now }, sendAlert: { alerts.send($0) }, logger: logger)
    }

    func push(_ name: String, seed: UInt8 = 1) async throws {
        _ = try await spool.push(source: try directory.walFile(name, bytes: walBytes(seed, count: 4096)))
    }

    /// The WAL file names archived (object names without the checksum and `.gz`).
    func archived() async throws -> [String] {
        try await storage.inner.list(prefix: "main/wal/").compactMap { RepositoryLayout(stanza: "main").walObjectName(ofKey: $0.key)?.file.name }
    }
}

@Suite struct WALAlertEpisodesTests {
    let file = WALFileName("000000010000000000000001")!
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func episodes() -> WALAlertEpisodes {
        WALAlertEpisodes(stanza: "main", spoolDirectory: "/spool", repositoryDescription: "S3 bucket b", maxLagSeconds: 300)
    }

    func view(modified: Date?) -> WALAlertEpisodes.SpoolView {
        WALAlertEpisodes.SpoolView(files: modified.map { [WALSpool.SpooledFile(file: file, size: 16 << 20, modified: $0)] } ?? [])
    }

    @Test func lagIsRaisedOncePerEpisodeAndResolved() {
        var episodes = episodes()
        #expect(episodes.observeLag(view(modified: start), now: start + 300) == nil, "at the limit is not over it")
        let raised = episodes.observeLag(view(modified: start), now: start + 301)
        #expect(raised?.event == .walLag)
        #expect(raised?.severity == .warning)
        #expect(raised?.summary.contains(file.name) == true)
        #expect(raised?.summary.contains("301 s") == true)
        for minute in 1...10 {
            #expect(episodes.observeLag(view(modified: start), now: start + 301 + Double(minute * 60)) == nil, "throttled: one alert per episode")
        }
        let resolved = episodes.observeLag(view(modified: nil), now: start + 1000)
        #expect(resolved?.event == .walLagResolved)
        #expect(resolved?.severity == .info)
        #expect(episodes.observeLag(view(modified: nil), now: start + 1001) == nil)
        // A new episode raises again.
        #expect(episodes.observeLag(view(modified: start + 1000), now: start + 1400)?.event == .walLag)
        // Back under the limit with files still spooled also ends it.
        #expect(episodes.observeLag(view(modified: start + 1390), now: start + 1400)?.event == .walLagResolved)
    }

    @Test func unreachableIsRaisedOnceAndResolvedByASuccess() {
        var episodes = episodes()
        #expect(episodes.observeStorage(.untested, spooledFiles: 0, now: start) == nil)
        #expect(episodes.observeStorage(.reachable, spooledFiles: 0, now: start) == nil)
        let raised = episodes.observeStorage(.unreachable("connection refused"), spooledFiles: 3, now: start)
        #expect(raised?.event == .storageUnreachable)
        #expect(raised?.error == "connection refused")
        #expect(raised?.summary.contains("3 files") == true)
        #expect(episodes.observeStorage(.unreachable("timeout"), spooledFiles: 5, now: start + 10) == nil)
        #expect(episodes.observeStorage(.untested, spooledFiles: 5, now: start + 20) == nil, "nothing tried proves nothing")
        #expect(episodes.unreachable)
        let resolved = episodes.observeStorage(.reachable, spooledFiles: 0, now: start + 75)
        #expect(resolved?.event == .storageReachable)
        #expect(resolved?.severity == .info)
        #expect(resolved?.summary.contains("75 s") == true)
        #expect(!episodes.unreachable)
    }

    @Test func passesAreClassifiedByWhatTheStorageAnswered() {
        var result = WALShipper.PassResult()
        #expect({ if case .untested = WALAlertEpisodes.storageOutcome(of: result) { true } else { false } }())
        result.failures = [(file, WALError(.io, message: "local disk"))]
        #expect({ if case .untested = WALAlertEpisodes.storageOutcome(of: result) { true } else { false } }())
        result.shipped = [file]
        #expect({ if case .reachable = WALAlertEpisodes.storageOutcome(of: result) { true } else { false } }())
        for code in [StorageError.Code.unreachable, .timeout, .serverError] {
            result.failures = [(file, StorageError(code, message: "down"))]
            #expect({ if case .unreachable = WALAlertEpisodes.storageOutcome(of: result) { true } else { false } }(), "\(code)")
        }
        for code in [StorageError.Code.accessDenied, .invalidCredentials, .notFound] {
            #expect(!WALShipper.isUnreachable(StorageError(code, message: "refused")), "\(code) is an answer, not an outage")
        }
    }

    @Test func conflictsAreRaisedOncePerFileWhileSpooled() {
        var episodes = episodes()
        let other = WALFileName("000000010000000000000002")!
        let error = WALError(.conflict, message: "different content")
        #expect(episodes.observeConflicts([(file, error)], spooled: [file], now: start).map(\.event) == [.walConflict])
        #expect(episodes.observeConflicts([(file, error)], spooled: [file], now: start + 5).isEmpty)
        #expect(episodes.observeConflicts([(file, error), (other, error)], spooled: [file, other], now: start + 10).count == 1)
        #expect(episodes.observeConflicts([], spooled: [file, other], now: start + 15).isEmpty, "a pass that did not try them forgets nothing")
        #expect(episodes.observeConflicts([], spooled: [], now: start + 20).isEmpty)
        // Moved away by an operator, then spooled again with the same conflict: a new episode.
        #expect(episodes.observeConflicts([(file, error)], spooled: [file], now: start + 30).count == 1)
    }
}

@Suite struct WALWatcherTests {
    @Test func storageOutageRaisesOnceAndResolvesWhenShippingWorksAgain() async throws {
        let fixture = try WatcherFixture()
        try await fixture.push("000000010000000000000001")
        fixture.storage.set(down: true)
        for _ in 0..<3 {
            let result = try await fixture.watcher.runOnce()
            #expect(result.failures.count == 1)
        }
        #expect(fixture.alerts.names == ["storage.unreachable"])
        var status = fixture.watcher.status
        #expect(status.storageUnreachable)
        #expect(status.spooledFiles == 1)
        #expect(status.lastError?.contains("switched off") == true)
        #expect(status.lastShipped == nil)

        fixture.storage.set(down: false)
        let result = try await fixture.watcher.runOnce()
        #expect(result.shipped.map(\.name) == ["000000010000000000000001"])
        #expect(fixture.alerts.names == ["storage.unreachable", "storage.reachable"])
        status = fixture.watcher.status
        #expect(!status.storageUnreachable)
        #expect(status.spooledFiles == 0)
        #expect(status.spoolBytes == 0)
        #expect(status.oldestUnshipped == nil)
        #expect(status.lastShipped?.name == "000000010000000000000001")
    }

    @Test func anOutageStopsThePassAfterTheFirstUnreachableFailure() async throws {
        let fixture = try WatcherFixture()
        for index in 1...8 { try await fixture.push("00000001000000000000000\(index)", seed: UInt8(index)) }
        fixture.storage.set(down: true)
        let result = try await fixture.watcher.runOnce()
        // parallelUploads is 2: at most the two started together fail; the rest wait for the next pass.
        #expect(result.failures.count <= 2)
        #expect(fixture.storage.callCount <= 2)
        #expect(try fixture.directory.spooled().count == 8)
    }

    @Test func anEmptySpoolProbesTheStorageToEndAnOutage() async throws {
        let fixture = try WatcherFixture()
        try await fixture.push("000000010000000000000001")
        fixture.storage.set(down: true)
        _ = try await fixture.watcher.runOnce()
        try FileManager.default.removeItem(atPath: "\(fixture.directory.spool)/000000010000000000000001")
        _ = try await fixture.watcher.runOnce()
        #expect(fixture.alerts.names == ["storage.unreachable"], "still down: the probe fails too")
        fixture.storage.set(down: false)
        _ = try await fixture.watcher.runOnce()
        #expect(fixture.alerts.names == ["storage.unreachable", "storage.reachable"])
    }

    @Test func lagFollowsTheOldestFilesMtimeOnTheWatchersClock() async throws {
        let fixture = try WatcherFixture(maxLagSeconds: 120)
        try await fixture.push("000000010000000000000001")
        fixture.storage.set(down: true)
        _ = try await fixture.watcher.runOnce()
        #expect(fixture.alerts.names == ["storage.unreachable"])
        #expect((fixture.watcher.status.oldestUnshippedAge ?? 999) < 60)

        fixture.clock.advance(121)
        await fixture.watcher.checkLag { [alerts = fixture.alerts] in alerts.send($0) }
        _ = try await fixture.watcher.runOnce()
        fixture.clock.advance(600)
        await fixture.watcher.checkLag { [alerts = fixture.alerts] in alerts.send($0) }
        #expect(fixture.alerts.names == ["storage.unreachable", "wal.lag"], "one wal.lag for the whole episode")
        let status = fixture.watcher.status
        #expect(status.lagging)
        #expect((status.oldestUnshippedAge ?? 0) > 700)
        #expect(status.oldestUnshipped?.name == "000000010000000000000001")
        #expect(status.spoolBytes == 4096)

        fixture.storage.set(down: false)
        _ = try await fixture.watcher.runOnce()
        #expect(fixture.alerts.names == ["storage.unreachable", "wal.lag", "storage.reachable", "wal.lag.resolved"])
        #expect(!fixture.watcher.status.lagging)
    }

    @Test func conflictIsRaisedOncePerFileAcrossPasses() async throws {
        let fixture = try WatcherFixture()
        let file = WALFileName("000000010000000000000001")!
        let archive = WALArchive(repository: Repository(storage: fixture.storage, stanza: "main"), level: 1, logger: Logger(label: "test"))
        _ = try await archive.push(file, bytes: walBytes(9, count: 4096))
        try await fixture.push(file.name, seed: 1)
        for _ in 0..<3 { _ = try await fixture.watcher.runOnce() }
        #expect(fixture.alerts.names == ["wal.conflict"])
        #expect(fixture.watcher.status.lastError?.contains("different content") == true)
    }

    /// The rescan is a minute apart; only inotify can make the file leave the spool this fast.
    @Test func inotifyWakesTheWatcherLongBeforeTheRescan() async throws {
        let fixture = try WatcherFixture(rescanInterval: .seconds(60), useInotify: true)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [watcher = fixture.watcher] in try await watcher.run() }
            #expect(try await eventually { fixture.watcher.status.lastPassAt != nil }, "the first pass ran")
            #expect(fixture.watcher.status.wakeups == .inotify)
            let pushed = ContinuousClock.now
            try await fixture.push("000000010000000000000001")
            // Half the rescan interval: only inotify can ship it before that. (A 5 s bound failed
            // twice at 5.6–5.8 s on two loaded cores while the whole suite started.)
            #expect(try await eventually(attempts: 600, interval: .milliseconds(50)) { try await fixture.archived() == ["000000010000000000000001"] })
            let elapsed = ContinuousClock.now - pushed
            #expect(elapsed < .seconds(30), "shipped after \(elapsed)")
            #expect(try await eventually { try fixture.directory.spooled().isEmpty })
            // The status is updated when the pass ends, just after the file left the spool.
            #expect(try await eventually { fixture.watcher.status.lastShipped?.name == "000000010000000000000001" })
            group.cancelAll()
        }
    }

    /// The spool directory appears after the watcher started (wal-push creates it): the rescan
    /// that finds it also puts the inotify watch on it, and from then on a new file wakes the
    /// watcher at once. The rescan is 20 s apart and the second file must be shipped within 10 s
    /// of its push, so only the inotify watch can ship it: with a 1 s rescan (as this test once
    /// had) it passed whether the watch was ever added or not.
    @Test func inotifyWatchesASpoolThatAppearsLater() async throws {
        let fixture = try WatcherFixture(rescanInterval: .seconds(20), useInotify: true)
        try FileManager.default.removeItem(atPath: fixture.directory.spool)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [watcher = fixture.watcher] in try await watcher.run() }
            #expect(try await eventually { fixture.watcher.status.lastPassAt != nil })
            try await fixture.push("000000010000000000000001") // creates the spool directory
            // Found by the next rescan (nothing watches a directory that does not exist yet).
            #expect(try await eventually(attempts: 1200, interval: .milliseconds(50)) { try await fixture.archived().count == 1 })
            #expect(try await eventually { fixture.watcher.status.lastShipped?.name == "000000010000000000000001" })
            // The pass is over; the watcher's next wait adds the watch before it sleeps. 2 s for
            // it to get there on loaded cores (a file pushed before the watch exists gives no
            // event); the next rescan is still 18 s away.
            try await Task.sleep(for: .seconds(2))
            try await fixture.push("000000010000000000000002")
            // 10 s: shipped before the rescan (8 s later at the earliest) only through inotify.
            #expect(try await eventually(attempts: 200, interval: .milliseconds(50)) { try await fixture.archived().count == 2 },
                    "the second file was not shipped before the rescan: the spool that appeared later is not watched")
            group.cancelAll()
        }
    }

    /// The same at the notifier's level, without any timing: no watch while the directory is
    /// missing, the watch on the first wait after it appears, and that watch reports a new file.
    @Test func notifierWatchesADirectoryOnceItAppears() async throws {
        let directory = try WALTestDirectory()
        let notifier = try SpoolNotifier(directory: directory.spool)
        try? FileManager.default.removeItem(atPath: directory.spool)
        #expect(await notifier.wait(timeout: .milliseconds(20)) == .timeout)
        #expect(!notifier.isWatching)
        try FileManager.default.createDirectory(atPath: directory.spool, withIntermediateDirectories: true)
        #expect(await notifier.wait(timeout: .milliseconds(20)) == .timeout, "an empty directory has no file event")
        #expect(notifier.isWatching, "the wait after the directory appeared did not watch it")
        _ = FileManager.default.createFile(atPath: "\(directory.spool)/000000010000000000000001", contents: Data([1]))
        // 60 s: a lost event would sit out the whole timeout and report .timeout.
        #expect(await notifier.wait(timeout: .seconds(60)) == .fileEvent)
    }

    @Test func withoutInotifyTheRescanShips() async throws {
        let fixture = try WatcherFixture(rescanInterval: .milliseconds(200), useInotify: false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [watcher = fixture.watcher] in try await watcher.run() }
            #expect(try await eventually { fixture.watcher.status.lastPassAt != nil })
            #expect(fixture.watcher.status.wakeups == .rescanOnly)
            try await fixture.push("000000010000000000000001")
            #expect(try await eventually(attempts: 50, interval: .milliseconds(100)) { try await fixture.archived().count == 1 })
            group.cancelAll()
        }
    }

    @Test func cancellationStopsTheWatcherPromptly() async throws {
        let fixture = try WatcherFixture(rescanInterval: .seconds(60), useInotify: true)
        let cancelledAt = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [watcher = fixture.watcher] in try await watcher.run() }
            #expect(try await eventually { fixture.watcher.status.lastPassAt != nil })
            // Timed from the cancellation, not from the start: the first pass, like every other
            // test's work, waits for the cooperative pool while the suite loads both cores
            // (a clean CI run once measured 39.6 s from the start).
            let cancelledAt = ContinuousClock.now
            group.cancelAll()
            try await group.waitForAll()
            return cancelledAt
        }
        // Well under the 60 s rescan the watcher would otherwise sit out.
        #expect(ContinuousClock.now - cancelledAt < .seconds(30), "the inotify wait is interrupted, not sat out")
    }
}

/// Polls `condition` until it holds or `attempts` run out.
func eventually(attempts: Int = 100, interval: Duration = .milliseconds(50), _ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<attempts {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return false
}
