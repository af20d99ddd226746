import Foundation
import Logging
import ObjectStorage

/// `pgbackd check`: everything a backup needs, tried without taking one, each problem with its fix.
public struct Preflight: Sendable {
    public struct Result: Sendable, Encodable {
        public var check: String
        public var passed: Bool
        /// What was found, or what is wrong and how to fix it.
        public var detail: String
        /// Kept for the exit code; not encoded.
        public var error: (any Error)? = nil

        enum CodingKeys: String, CodingKey { case check, passed, detail }
    }

    let configuration: Configuration
    let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async -> [Result] {
        var results = [Result(check: "configuration", passed: true, detail: "\(configuration.file) is valid")]
        var systemIdentifier: String?
        do {
            let server = try await PostgresServer.connect(configuration.postgres, logger: logger)
            systemIdentifier = server.info.systemIdentifier
            results.append(Result(check: "database", passed: true, detail: "connected: \(server.info.version.split(separator: ",").first ?? ""), system identifier \(server.info.systemIdentifier)"))
            do {
                let databases = try await server.databases(requested: [])
                results.append(Result(check: "databases", passed: true, detail: "will back up: \(databases.joined(separator: ", "))"))
            } catch {
                results.append(Result(check: "databases", passed: false, detail: "\(error)", error: error))
            }
            for tool in ["pg_dump", "pg_dumpall", "pg_restore"] {
                do {
                    let path = try await server.tool(tool)
                    results.append(Result(check: tool, passed: true, detail: "\(path) matches the server's major version"))
                } catch {
                    results.append(Result(check: tool, passed: false, detail: "\(error)", error: error))
                }
            }
        } catch {
            results.append(Result(check: "database", passed: false, detail: "\(error)", error: error))
        }

        do {
            let repository = try await RepositoryFactory.open(configuration, logger: logger)
            let key = repository.key(relative: "check/\(UUID().uuidString)")
            let probe = Array("pgbackd check \(Date())".utf8)
            try await repository.storage.put(key: key, bytes: probe)
            let readBack = try await repository.storage.getAll(key: key)
            try await repository.storage.delete(key: key)
            guard readBack == probe else {
                throw StorageError(.protocolError, key: key, message: "the repository returned different bytes than were written to \(key)")
            }
            results.append(Result(check: "repository", passed: true, detail: "\(RepositoryFactory.describe(configuration)) is writable and readable"))
            if let systemIdentifier {
                do {
                    try await repository.verifyMarker(systemIdentifier: systemIdentifier)
                    results.append(Result(check: "stanza", passed: true, detail: "stanza '\(repository.stanza)' belongs to this cluster (or is new)"))
                } catch {
                    results.append(Result(check: "stanza", passed: false, detail: "\(error)", error: error))
                }
            }
        } catch {
            results.append(Result(check: "repository", passed: false, detail: "\(RepositoryFactory.describe(configuration)): \(error)", error: error))
        }
        return results
    }
}
