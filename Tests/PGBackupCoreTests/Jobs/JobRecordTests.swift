import Foundation
import Testing
@testable import PGBackupCore

/// Whose job record counts as interrupted: a record is only as alive as the process it names.
struct JobRecordTests {
    let now = Date()

    func record(host: String = "db1", boot: String = "boot-a", pid: Int32 = 4242, start: UInt64 = 100, age: TimeInterval = 60) -> JobRecord {
        JobRecord(job: .backup, runId: "r1", host: host, bootId: boot, pid: pid, processStart: start, startedAt: now - age)
    }

    @Test func aRecordOfThisProcessIsAlive() {
        let mine = JobRecord.current(.backup)
        #expect(mine.processStart > 0, "the start time comes from /proc/self/stat")
        #expect(mine.ownerMayBeAlive())
    }

    @Test func aDeadOrReusedPidOrAnotherBootIsGone() {
        let alive: (Int32) -> UInt64? = { $0 == 4242 ? 100 : nil }
        #expect(record().ownerMayBeAlive(now: now, host: "db1", bootId: "boot-a", startTicks: alive))
        #expect(!record(pid: 4243).ownerMayBeAlive(now: now, host: "db1", bootId: "boot-a", startTicks: alive), "no such process")
        #expect(!record(start: 99).ownerMayBeAlive(now: now, host: "db1", bootId: "boot-a", startTicks: alive), "the pid now belongs to another process")
        #expect(!record(boot: "boot-b").ownerMayBeAlive(now: now, host: "db1", bootId: "boot-a", startTicks: alive), "the host restarted since")
    }

    @Test func anotherHostsRecordIsTrustedForAWeek() {
        let none: (Int32) -> UInt64? = { _ in nil }
        #expect(record(host: "db2", age: 86_400).ownerMayBeAlive(now: now, host: "db1", bootId: "boot-a", startTicks: none))
        #expect(!record(host: "db2", age: 8 * 86_400).ownerMayBeAlive(now: now, host: "db1", bootId: "boot-a", startTicks: none))
    }

    @Test func aProcessThatExitedIsGone() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        var record = JobRecord.current(.drill)
        record.pid = process.processIdentifier
        #expect(!record.ownerMayBeAlive())
    }
}
