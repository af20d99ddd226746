import CurlHTTP
import Foundation
import Logging
import ObjectStorage
import Synchronization

/// One kind of work pgbackd does, run the same way from a command and from the daemon's
/// scheduler: ``JobRunner`` runs it and applies the one policy for its outcome (alerts, metrics,
/// its ``JobRecord``). A job only does its work and says what its result means.
public protocol Job: Sendable {
    associatedtype Output: Sendable
    var kind: JobKind { get }
    /// Jobs that write to the repository keep a ``JobRecord`` while they run, so that a killed
    /// run is reported; read-only ones (wal-check) need none.
    var keepsRecord: Bool { get }
    func run(in context: JobContext) async throws -> Output
    /// What a run that returned means: succeeded, or the data failed a check.
    func outcome(of output: Output) -> JobOutcome
    /// The alert a run that returned raises, if any.
    func event(for output: Output, in context: JobContext) -> AlertEvent?
    /// Metrics a run that returned updates (the daemon's; commands have none).
    func record(_ output: Output, in context: JobContext, metrics: DaemonMetrics) async
}

extension Job {
    public var keepsRecord: Bool { true }
    public func record(_ output: Output, in context: JobContext, metrics: DaemonMetrics) async {}
}

/// Where a job runs.
public struct JobContext: Sendable {
    public var configuration: Configuration
    public var repository: Repository
    public var logger: Logger
    /// The backup the run is about, once the job knows it (a drill of `latest` resolves it):
    /// named in the alert if the run then fails.
    public let subject = JobSubject()

    public var stanza: String { configuration.repository.stanza }
}

public final class JobSubject: Sendable {
    private let backup = Mutex<String?>(nil)
    public var backupId: String? { backup.withLock { $0 } }
    public func set(backupId: String) { backup.withLock { $0 = backupId } }
}

/// A run that ended because a stop was asked: it cleaned up and committed nothing.
public struct JobCancelled: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        /// SIGTERM or SIGINT to a command.
        case signal
        /// The daemon stopping, or any other cancellation of the task.
        case stop
    }
    public var code: Code
    public var job: JobKind?
    public var underlying: (any Error)?

    public init(_ code: Code, job: JobKind? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.job = job
        self.underlying = underlying
    }

    public var description: String {
        let what = job.map { "the \($0.rawValue) run" } ?? "the run"
        let cause = code == .signal ? "interrupted by a signal (SIGTERM or SIGINT)" : "stopped"
        return "\(what) was \(cause) and cancelled; nothing was committed"
    }

    /// Whether `error`, thrown while `Task.isCancelled` may be set, is the trace of a cancellation.
    static func isCancellation(_ error: any Error) -> Bool {
        if error is JobCancelled || error is CancellationError || Task.isCancelled { return true }
        if let error = error as? StorageError { return error.code == .cancelled }
        if let error = error as? CurlError { return error.code == .cancelled }
        return false
    }
}

/// A run that finished and found the data failing a check (a drill check, a WAL gap): the job
/// ran; the data is the problem. Commands exit 1 (3 for an unverifiable drill) for it.
public struct JobCheckFailed: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        /// A drill check failed.
        case drillFailed
        /// A drill could not verify everything on its host.
        case drillUnverifiable
        /// wal-check found gaps, missing history files or files archived twice.
        case walIncomplete
    }
    public var code: Code
    public var description: String

    public init(_ code: Code, description: String) {
        self.code = code
        self.description = description
    }

    public var outcome: JobOutcome { code == .drillUnverifiable ? .unverifiable : .checkFailed }
}
