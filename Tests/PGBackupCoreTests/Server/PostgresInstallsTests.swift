import Foundation
@testable import PGBackupCore
import Testing

struct PostgresInstallsTests {
    func directory(_ script: String, name: String = "pg_dump") throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-installs-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Written beside, then copied by cp: the executed file is never open in this process,
        // whose other tests fork children that could inherit it ("Text file busy").
        try "#!/bin/sh\n\(script)\n".write(toFile: "\(directory)/source", atomically: true, encoding: .utf8)
        let copy = Process()
        copy.executableURL = URL(fileURLWithPath: "/bin/cp")
        copy.arguments = ["\(directory)/source", "\(directory)/\(name)"]
        try copy.run()
        copy.waitUntilExit()
        chmod("\(directory)/\(name)", 0o755)
        return directory
    }

    @Test func theServersMajorOrANewerOneWhereThatWorks() async throws {
        let seventeen = try directory("echo 'pg_dump (PostgreSQL) 17.11'")
        defer { try? FileManager.default.removeItem(atPath: seventeen) }
        #expect(try await PostgresInstalls.program("pg_dump", forServerMajor: 17, configured: seventeen, setting: "postgres.bin_dir") == "\(seventeen)/pg_dump")
        #expect(try await PostgresInstalls.program("pg_dump", forServerMajor: 15, configured: seventeen, setting: "postgres.bin_dir") == "\(seventeen)/pg_dump")
        await #expect(throws: BackupError.self) {
            _ = try await PostgresInstalls.program("pg_dump", forServerMajor: 18, configured: seventeen, setting: "postgres.bin_dir")
        }
    }

    @Test func pgRestoreMustMatchTheTargetServer() async throws {
        let seventeen = try directory("echo 'pg_restore (PostgreSQL) 17.11'", name: "pg_restore")
        defer { try? FileManager.default.removeItem(atPath: seventeen) }
        do {
            _ = try await PostgresInstalls.program("pg_restore", forServerMajor: 16, configured: seventeen, setting: "drill.bin_dir")
            Issue.record("pg_restore 17 must not serve a PostgreSQL 16 server")
        } catch let error as BackupError {
            #expect(error.code == .toolMissing)
            #expect(error.message.contains("\(seventeen)/pg_restore (17.11)") && error.message.contains("drill.bin_dir"), "\(error.message)")
        }
    }

    /// A program that cannot answer `--version` the first time (just written, still busy) is
    /// asked again; one that never answers is named as such, not "none was found".
    @Test func aFailedVersionQuestionIsAskedAgainAndNamed() async throws {
        let flaky = try directory("[ -f \"$0.asked\" ] || { touch \"$0.asked\"; exit 1; }\necho 'pg_dump (PostgreSQL) 15.18'")
        defer { try? FileManager.default.removeItem(atPath: flaky) }
        #expect(try await PostgresInstalls.program("pg_dump", forServerMajor: 15, configured: flaky, setting: "postgres.bin_dir") == "\(flaky)/pg_dump")

        let broken = try directory("exit 3")
        defer { try? FileManager.default.removeItem(atPath: broken) }
        do {
            _ = try await PostgresInstalls.program("pg_dump", forServerMajor: 15, configured: broken, setting: "postgres.bin_dir")
            Issue.record("a pg_dump that cannot say its version must not be used")
        } catch let error as BackupError {
            #expect(error.message.contains("unknown: `pg_dump --version` failed"), "\(error.message)")
        }
    }
}
