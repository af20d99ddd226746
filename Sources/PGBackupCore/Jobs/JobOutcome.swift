import Foundation

/// How one run of a job ended. The same values appear in alerts (`outcome`), the daemon's state
/// file and metrics (`outcome` label), and decide a command's exit status; docs/alerts.md has the
/// policy table.
public enum JobOutcome: String, Codable, Sendable, CaseIterable {
    /// The job did what it was asked: a backup committed, a drill passed, the archive complete.
    case succeeded
    /// The job ran and the data failed a check: a drill check failed, the WAL archive has a gap.
    case checkFailed = "check_failed"
    /// A drill ran, nothing failed, but the drill host could not verify everything.
    case unverifiable
    /// The job could not run or could not finish: nothing was committed.
    case failed
    /// A stop was asked (SIGTERM/SIGINT, the daemon stopping): it cleaned up and committed nothing.
    case cancelled
    /// The process running it died (SIGKILL, a crash, a reboot) and left its job record behind;
    /// the next run of the same job reports it.
    case interrupted

    /// True when the job's work stands: the outcome is not a failure of any kind.
    public var isSuccess: Bool { self == .succeeded }
}
