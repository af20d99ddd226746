import ArgumentParser
import Foundation
import PGBackupCore

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the configuration, the database, the client programs and the repository.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await runReportingErrors {
            let configuration = try common.loadConfiguration()
            let results = await Preflight(configuration: configuration, logger: common.makeLogger()).run()
            if json {
                try printJSON(results)
            } else {
                for result in results {
                    print("\(result.passed ? (result.warning ? "warn" : "ok  ") : "FAIL") \(result.check): \(result.detail)")
                }
            }
            if let failure = results.first(where: { !$0.passed }) {
                throw ExitCode(failure.error.map { ExitStatus($0) }?.rawValue ?? ExitStatus.jobFailed.rawValue)
            }
        }
    }
}
