import CurlHTTP
import Encryption
import Foundation
import ObjectStorage
import PostgresClient
import Testing
@testable import PGBackupCore

/// docs/operations.md's exit-code table and ``ExitStatus`` are the same list, and the one switch
/// keeps "the data failed a check" apart from "the job could not run".
struct ExitStatusTests {
    static var operationsPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/operations.md").path
    }

    static func documentedCodes() throws -> [Int32] {
        let text = try String(contentsOfFile: operationsPath, encoding: .utf8)
        var inSection = false, codes: [Int32] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("## ") {
                if inSection { break }
                inSection = line == "## Exit codes"
                continue
            }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if inSection, line.hasPrefix("|"), let code = cells.first.flatMap({ Int32($0) }) { codes.append(code) }
        }
        return codes
    }

    @Test func theDocumentedTableIsTheEnum() throws {
        let documented = try Self.documentedCodes()
        #expect(Set(documented) == Set(ExitStatus.allCases.map(\.rawValue)), "docs/operations.md documents \(documented.sorted()); ExitStatus has \(ExitStatus.allCases.map(\.rawValue).sorted())")
        #expect(documented.count == Set(documented).count, "a code documented twice")
    }

    @Test func aCheckFailureAndAJobFailureAreDifferentCodes() {
        #expect(ExitStatus(JobCheckFailed(.drillFailed, description: "x")) == .checkFailed)
        #expect(ExitStatus(JobCheckFailed(.walIncomplete, description: "x")) == .checkFailed)
        #expect(ExitStatus(JobCheckFailed(.drillUnverifiable, description: "x")) == .unverifiable)
        #expect(ExitStatus(BackupError(.failed, message: "pg_dump exited 1")) == .jobFailed)
        #expect(ExitStatus.checkFailed != ExitStatus.jobFailed)
    }

    @Test func cancellationsAreTheirOwnCode() {
        #expect(ExitStatus(JobCancelled(.signal)) == .cancelled)
        #expect(ExitStatus(CancellationError()) == .cancelled)
        #expect(ExitStatus(StorageError(.cancelled, message: "stopped")) == .cancelled)
    }

    @Test func everyCodeOfEveryErrorTypeHasADocumentedStatus() throws {
        let documented = Set(try Self.documentedCodes())
        var errors: [any Error] = []
        errors += ConfigurationError.Code.allCases.map { ConfigurationError($0, file: nil, key: nil, message: "") }
        errors += BackupError.Code.allCases.map { BackupError($0, message: "") }
        errors += StorageError.Code.allCases.map { StorageError($0, message: "") }
        errors += CurlError.Code.allCases.map { CurlError($0, message: "") }
        errors += RepositoryError.Code.allCases.map { RepositoryError($0, message: "") }
        errors += PostgresError.Code.allCases.map { PostgresError($0, message: "") }
        errors += IntegrityError.Code.allCases.map { IntegrityError(code: $0, key: "k", message: "") }
        errors += RestoreError.Code.allCases.map { RestoreError(code: $0, message: "") }
        errors += StagingError.Code.allCases.map { StagingError($0, message: "") }
        errors += WALError.Code.allCases.map { WALError($0, message: "") }
        errors += JobCheckFailed.Code.allCases.map { JobCheckFailed($0, description: "") }
        errors += EncryptionError.Code.allCases.map { EncryptionError($0, message: "") }
        for error in errors {
            #expect(FailureKind(error).isKnown, "\(type(of: error)) is not classified")
            #expect(documented.contains(ExitStatus(error).rawValue), "\(type(of: error)) maps to an undocumented status")
        }
        struct Foreign: Error {}
        #expect(ExitStatus(Foreign()) == .jobFailed)
    }

    @Test func walFetchSaysOneOnlyForNoSuchFile() {
        #expect(ExitStatus.walFetch(WALError(.notFound, message: "")) == .checkFailed)
        for code in WALError.Code.allCases where code != .notFound {
            #expect(ExitStatus.walFetch(WALError(code, message: "")) == .fatalForRecovery)
        }
        #expect(ExitStatus.walFetch(StorageError(.accessDenied, message: "")) == .fatalForRecovery)
    }
}

extension FailureKind {
    var isKnown: Bool {
        if case .unexpected = self { return false }
        return true
    }
}
