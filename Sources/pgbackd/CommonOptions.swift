import ArgumentParser
import Foundation
import Logging
import PGBackupCore

/// Options every command takes.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $PGBACKD_CONFIG, else /etc/pgbackd/pgbackd.toml).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    /// Loads the configuration and prints its warnings (a file with secrets that others can read) on stderr.
    func loadConfiguration() throws -> Configuration {
        let configuration = try Configuration.load(path: Configuration.path(explicit: config))
        for warning in configuration.warnings {
            FileHandle.standardError.write(Data("pgbackd: warning: \(warning)\n".utf8))
        }
        return configuration
    }

    /// What nearly every command starts with: the validated configuration, a logger and the
    /// repository it names.
    func openRepository() async throws -> (Configuration, Logger, Repository) {
        let configuration = try loadConfiguration()
        let logger = makeLogger()
        return (configuration, logger, try await RepositoryFactory.open(configuration, logger: logger))
    }

    /// The runner a job command runs its job with: the same policy as the daemon's.
    func jobRunner() async throws -> JobRunner {
        let (configuration, logger, repository) = try await openRepository()
        return JobRunner(configuration: configuration, repository: repository, logger: logger)
    }

    func makeLogger() -> Logger {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "pgbackd")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Runs a command body and turns its failure into one line on stderr and a distinct exit code.
func runReportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("pgbackd: error: \(describe(error))\n".utf8))
        throw ExitCode(ExitStatus(error).rawValue)
    }
}

func describe(_ error: any Error) -> String {
    String(describing: error).replacingOccurrences(of: "\n", with: " ")
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    encoder.keyEncodingStrategy = .convertToSnakeCase
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func formatBytes(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
