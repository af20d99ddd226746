import Foundation
import Logging
import ObjectStorage

/// A running job's record in the repository, `<stanza>/jobs/<job>/<run-id>.json`: written when
/// the job starts, removed when it ends however it ends, except when its process dies. The next
/// run of the same job (from the CLI or the daemon, on any host) then finds a record whose
/// process is gone and reports that run as ``JobOutcome/interrupted``: a SIGKILL, an OOM kill or
/// a power cut never passes silently.
///
/// A record is judged by the process it names: on this host (same boot), dead when no process
/// with that pid and start time exists; from another boot of this host, dead; from another host,
/// dead once older than ``foreignHostTimeout`` (pgbackd cannot see other hosts' processes).
public struct JobRecord: Codable, Sendable, Equatable {
    public static let foreignHostTimeout: TimeInterval = 7 * 86_400

    public var job: JobKind
    public var runId: String
    public var host: String
    /// /proc/sys/kernel/random/boot_id: a pid means nothing across a reboot.
    public var bootId: String
    public var pid: Int32
    /// The process's start time in clock ticks since boot (/proc/<pid>/stat, field 22): a pid
    /// reused by another process does not look alive.
    public var processStart: UInt64
    public var startedAt: Date

    /// The record of this process running `job` now.
    public static func current(_ job: JobKind, now: Date = Date()) -> JobRecord {
        let pid = ProcessInfo.processInfo.processIdentifier
        return JobRecord(job: job, runId: UUID().uuidString.lowercased(), host: ProcessInfo.processInfo.hostName,
                         bootId: ProcessIdentity.bootId, pid: pid, processStart: ProcessIdentity.startTicks(of: pid) ?? 0,
                         startedAt: now)
    }

    /// Whether the process that wrote this record may still be running it.
    public func ownerMayBeAlive(now: Date = Date(), host: String = ProcessInfo.processInfo.hostName,
                                bootId: String = ProcessIdentity.bootId,
                                startTicks: (Int32) -> UInt64? = ProcessIdentity.startTicks(of:)) -> Bool {
        guard self.host == host else { return now.timeIntervalSince(startedAt) < Self.foreignHostTimeout }
        guard self.bootId == bootId else { return false }
        return startTicks(pid) == processStart
    }

    /// Why the run did not finish, for the alert that reports it.
    public var interruption: JobInterrupted { JobInterrupted(record: self) }
}

/// The error an interrupted run is reported with.
public struct JobInterrupted: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable { case processDied }
    public var code: Code { .processDied }
    public var record: JobRecord
    public var description: String {
        "the \(record.job.rawValue) run started at \(record.startedAt.formatted(.iso8601)) by pid \(record.pid) on \(record.host) "
            + "never finished: its process died (killed, crashed, or the host restarted); nothing of it was committed"
    }
}

/// This host's boot and a process's start, from /proc.
public enum ProcessIdentity {
    public static let bootId: String = {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }()

    /// Field 22 of /proc/<pid>/stat, or nil when there is no such process.
    public static func startTicks(of pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)" come the fields from 3 (state) on; the start time is field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }
}

/// The records of one job in one repository.
struct JobJournal: Sendable {
    let repository: Repository
    let job: JobKind
    let logger: Logger

    /// Records of runs whose process is gone; unreadable records count as gone once a day old.
    func interruptedRuns(now: Date = Date()) async throws -> [(key: String, record: JobRecord)] {
        var found: [(key: String, record: JobRecord)] = []
        for object in try await repository.storage.list(prefix: repository.jobRecordsPrefix(job)) where repository.layout.jobRecord(ofKey: object.key) != nil {
            let bytes: [UInt8]
            do {
                bytes = try await repository.storage.getAll(key: object.key)
            } catch let error as StorageError where error.code == .notFound {
                continue // its run ended between list and get
            }
            guard let record = try? RepositoryJSON.decoder().decode(JobRecord.self, from: Data(bytes)) else {
                logger.warning("unreadable job record", metadata: ["job.record": "\(object.key)"])
                continue
            }
            if !record.ownerMayBeAlive(now: now) { found.append((object.key, record)) }
        }
        return found
    }

    func begin(_ record: JobRecord) async throws -> String {
        let key = repository.jobRecordKey(job, runId: record.runId)
        try await repository.storage.put(key: key, bytes: Array(try RepositoryJSON.encoder().encode(record)))
        return key
    }

    /// Removes a record; a stop that cancelled the job must not stop this, or the next run would
    /// call a cancelled run interrupted. Failures are logged: the record then reports itself.
    func end(_ key: String) async {
        let storage = repository.storage
        let result = await uncancelled { () -> (any Error)? in
            do { try await storage.delete(key: key); return nil } catch { return error }
        }
        if let result {
            logger.warning("could not remove the job record", metadata: ["job.record": "\(key)", "job.error": "\(result)"])
        }
    }
}
