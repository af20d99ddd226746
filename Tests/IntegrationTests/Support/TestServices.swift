import Foundation
import Synchronization
import Testing

/// The real servers integration tests run against, read from the environment that
/// `scripts/services.sh start` writes to `.services/env` (the README's test command sources it).
///
/// Outside CI a test whose server is missing is skipped; with `CI=true` it fails instead,
/// so a broken service start can never turn the suite silently green.
enum TestServices {
    static let environment = ProcessInfo.processInfo.environment
    static var isCI: Bool { environment["CI"] == "true" }

    struct Postgres: Sendable {
        var host: String
        var port: String
        var user: String
        var binDirectory: String
        /// conninfo for `database` (default: the maintenance database).
        func conninfo(database: String = "postgres") -> String {
            "host=\(host) port=\(port) user=\(user) dbname=\(database)"
        }
    }

    struct S3: Sendable {
        var endpoint: String
        var region: String
        var bucket: String
        var accessKeyID: String
        var secretAccessKey: String
    }

    static var postgres: Postgres? {
        guard let host = environment["PGBACKD_TEST_PGHOST"], let port = environment["PGBACKD_TEST_PGPORT"] else { return nil }
        return Postgres(host: host, port: port, user: environment["PGBACKD_TEST_PGUSER"] ?? "postgres",
                        binDirectory: environment["PGBACKD_TEST_PGBIN"] ?? defaultBinDirectory)
    }

    /// Without PGBACKD_TEST_PGBIN: the newest Debian major (what scripts/services.sh picks too).
    static let defaultBinDirectory: String = {
        let root = "/usr/lib/postgresql"
        let majors = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init)
        return majors.max().map { "\(root)/\($0)/bin" } ?? "\(root)/15/bin"
    }()

    /// The test server's version ("17.11", from scripts/services.sh), or "?" when not said.
    static var postgresVersion: String { environment["PGBACKD_TEST_PGVERSION"] ?? "?" }

    /// Tests that already said which PostgreSQL they run on (one line per test, not per call).
    private static let announced = Mutex<Set<Test.ID>>([])

    /// Prints `[PostgreSQL 17.11] Suite/test()` once per test, so every log of a run over several
    /// majors says which server each integration test ran against.
    static func announceTest() {
        guard let test = Test.current else { return }
        let first = announced.withLock { $0.insert(test.id).inserted }
        guard first else { return }
        let name = test.id.nameComponents.joined(separator: "/")
        print("[PostgreSQL \(postgresVersion)] \(name)")
    }

    static var s3: S3? {
        guard let endpoint = environment["PGBACKD_TEST_S3_ENDPOINT"],
              let key = environment["PGBACKD_TEST_S3_ACCESS_KEY_ID"],
              let secret = environment["PGBACKD_TEST_S3_SECRET_ACCESS_KEY"] else { return nil }
        return S3(endpoint: endpoint, region: environment["PGBACKD_TEST_S3_REGION"] ?? "us-east-1",
                  bucket: environment["PGBACKD_TEST_S3_BUCKET"] ?? "pgbackd-test", accessKeyID: key, secretAccessKey: secret)
    }

    /// Run the test when the services are configured, and always in CI (where their absence fails).
    static var postgresEnabled: Bool { postgres != nil || isCI }
    static var s3Enabled: Bool { (postgres != nil && s3 != nil) || isCI }

    static func requirePostgres() throws -> Postgres {
        guard let postgres else {
            throw MissingService(name: "PostgreSQL", variables: "PGBACKD_TEST_PGHOST/PGBACKD_TEST_PGPORT")
        }
        announceTest()
        return postgres
    }

    static func requireS3() throws -> S3 {
        guard let s3 else {
            throw MissingService(name: "S3 (moto)", variables: "PGBACKD_TEST_S3_ENDPOINT and its keys")
        }
        return s3
    }

    struct MissingService: Error, CustomStringConvertible {
        var name: String
        var variables: String
        var description: String {
            "the \(name) test server is not configured (\(variables) unset): run `scripts/services.sh start` and source .services/env, or use scripts/test.sh"
        }
    }
}
