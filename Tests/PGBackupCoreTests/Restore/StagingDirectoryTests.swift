import Foundation
import Logging
@testable import PGBackupCore
import Testing

struct StagingDirectoryTests {
    let logger = Logger(label: "test")

    func makeParent() throws -> String {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-staging-test-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        return parent
    }

    /// A directory as a killed drill leaves it: its lock file (unlocked now) and a staged dump.
    func abandoned(_ parent: String, _ suffix: String, withLock: Bool, age: TimeInterval = 0) throws -> String {
        let directory = "\(parent)/\(StagingDirectory.prefix)\(suffix)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        if withLock { _ = FileManager.default.createFile(atPath: "\(directory)/\(StagingDirectory.lockName)", contents: nil) }
        _ = FileManager.default.createFile(atPath: "\(directory)/daylog.dump", contents: Data(repeating: 1, count: 4096))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: directory)
        return directory
    }

    @Test func aNewStagingDirectoryRemovesWhatKilledRunsLeftAndNothingInUse() throws {
        let parent = try makeParent()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let running = try StagingDirectory(in: parent, logger: logger)
        let killed = try abandoned(parent, "killed", withLock: true)
        let oldWithoutLock = try abandoned(parent, "old", withLock: false, age: 7200)
        let justCreated = try abandoned(parent, "new", withLock: false)
        let unrelated = "\(parent)/keep-me"
        try FileManager.default.createDirectory(atPath: unrelated, withIntermediateDirectories: false)

        let next = try StagingDirectory(in: parent, logger: logger)
        let exists = { FileManager.default.fileExists(atPath: $0) }
        #expect(!exists(killed))
        #expect(!exists(oldWithoutLock))
        #expect(exists(running.path), "a directory whose lock is held belongs to a running drill")
        #expect(exists(justCreated), "one without a lock may be between mkdtemp and its lock")
        #expect(exists(unrelated))
        #expect(exists(next.path))

        next.remove()
        running.remove()
        #expect(!exists(next.path) && !exists(running.path))
    }
}
