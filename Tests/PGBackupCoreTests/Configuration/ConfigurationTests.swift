import Foundation
@testable import PGBackupCore
import Testing

@Suite struct ConfigurationTests {
    let file = "/etc/pgbackd/test.toml"

    func parse(_ text: String, environment: [String: String] = [:]) throws -> Configuration {
        try Configuration.parse(text, file: file, environment: environment)
    }

    func failure(_ text: String, environment: [String: String] = [:]) -> ConfigurationError? {
        do {
            _ = try parse(text, environment: environment)
            return nil
        } catch {
            return error as? ConfigurationError
        }
    }

    @Test func emptyFileGivesTheDocumentedDefaults() throws {
        let configuration = try parse("")
        guard case .file(let path) = configuration.repository.kind else {
            Issue.record("the embedded default is a file repository")
            return
        }
        #expect(path == "/var/lib/pgbackd/repo")
        #expect(configuration.repository.stanza == "main")
        #expect(configuration.postgres.conninfo == "")
        #expect(configuration.postgres.databases.isEmpty)
        #expect(configuration.compression.level == CompressionConfiguration.defaultLevel)
    }

    @Test func theIssueExampleParsesAsWritten() throws {
        let secretFile = FileManager.default.temporaryDirectory.appendingPathComponent("s3-\(UUID()).secret").path
        try "  the-secret\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        let configuration = try parse("""
            [repository]
            type = "s3"
            path = "/var/lib/pgbackd/repo"
            stanza = "main"

            [repository.s3]
            endpoint = "http://127.0.0.1:9000"
            bucket = "backups"
            region = "us-east-1"
            prefix = "pgbackd"
            uri_style = "path"
            access_key_id = "AKIAEXAMPLE"
            secret_access_key_file = "\(secretFile)"
            verify_tls = true
            part_size_mib = 16
            parallel_parts = 4
            stall_timeout_seconds = 7

            [postgres]
            conninfo = "host=/var/run/postgresql port=5432 user=postgres"
            databases = ["daylog"]
            bin_dir = "/usr/lib/postgresql/15/bin"

            [compression]
            level = 6
            """)
        guard case .s3(let s3) = configuration.repository.kind else {
            Issue.record("expected an S3 repository")
            return
        }
        #expect(s3.bucket == "backups")
        #expect(s3.secretAccessKey == "the-secret")
        #expect(!s3.description.contains("the-secret"))
        #expect(s3.partSizeMiB == 16)
        #expect(s3.stallTimeoutSeconds == 7)
        #expect(configuration.postgres.databases == ["daylog"])
        #expect(configuration.postgres.binDirectory == "/usr/lib/postgresql/15/bin")
        #expect(configuration.compression.level == 6)
    }

    /// Issue #17: 8 MiB parts, 2 in flight (was 16 and 4), so an S3 upload holds at most 24 MiB of
    /// parts; docs/operations.md and config/pgbackd.toml say so.
    @Test func s3PartSizeAndParallelPartsDefaultToTheMemoryBoundOnes() throws {
        let configuration = try parse("""
            [repository]
            type = "s3"
            [repository.s3]
            endpoint = "http://127.0.0.1:9000"
            bucket = "backups"
            access_key_id = "AKIAEXAMPLE"
            secret_access_key = "the-secret"
            """)
        guard case .s3(let s3) = configuration.repository.kind else {
            Issue.record("expected an S3 repository")
            return
        }
        #expect(s3.partSizeMiB == 8)
        #expect(s3.parallelParts == 2)
    }

    @Test func drillToastCompressionDefaultsToLz4AndTakesServer() throws {
        #expect(try parse("").drill.toastCompression == .lz4)
        #expect(try parse("[drill]\ntoast_compression = \"server\"\n").drill.toastCompression == .server)
        let error = try #require(failure("[drill]\ntoast_compression = \"zstd\"\n"))
        #expect(error.key == "drill.toast_compression" && error.description.contains("lz4"), "\(error)")
    }

    /// lz4 changes stored sizes: a check that measures them keeps the server's compression.
    @Test func checksThatMeasureStoredSizesAreRecognised() throws {
        #expect(!Drill.measuresStoredSizes(try parse("").checks))
        let octets = try parse("[[checks.content_size]]\ntable = \"t\"\ncolumn = \"c\"\nmax_bytes = 10\n")
        #expect(!Drill.measuresStoredSizes(octets.checks))
        let stored = try parse("[[checks.content_size]]\ntable = \"t\"\ncolumn = \"c\"\nmax_bytes = 10\nmeasure = \"pg_column_size\"\n")
        #expect(Drill.measuresStoredSizes(stored.checks))
        let sql = try parse("[[checks.sql]]\nname = \"big\"\nquery = \"select id from t where PG_Column_Size(c) > 100\"\n")
        #expect(Drill.measuresStoredSizes(sql.checks))
        let plainSQL = try parse("[[checks.sql]]\nname = \"shape\"\nquery = \"select id from t where c is null\"\n")
        #expect(!Drill.measuresStoredSizes(plainSQL.checks))
    }

    @Test func malformedTOMLNamesFileAndLine() throws {
        let error = try #require(failure("[repository]\ntype = \"file\"\npath = \n"))
        #expect(error.code == .syntax)
        #expect(error.description.hasPrefix(file))
        #expect(error.description.contains("line 3"))
    }

    @Test func unknownKeySuggestsTheClosestKnownOne() throws {
        let error = try #require(failure("[repository]\nstanzza = \"main\"\n"))
        #expect(error.code == .unknownKey)
        #expect(error.key == "repository.stanzza")
        #expect(error.description.contains("did you mean 'stanza'"))
    }

    @Test func unknownSectionIsRejected() throws {
        let error = try #require(failure("[postgress]\nconninfo = \"\"\n"))
        #expect(error.code == .unknownKey)
        #expect(error.description.contains("did you mean 'postgres'"))
    }

    @Test func wrongTypeSaysWhatWasExpected() throws {
        let error = try #require(failure("[compression]\nlevel = \"six\"\n"))
        #expect(error.code == .wrongType)
        #expect(error.key == "compression.level")
        #expect(error.description.contains("expected an integer from 0 to 9, got the string \"six\""))
    }

    @Test func outOfRangeValue() throws {
        let error = try #require(failure("[compression]\nlevel = 12\n"))
        #expect(error.code == .invalidValue)
        #expect(error.description.contains("got 12"))
    }

    @Test func missingSecretFileIsAConfigurationError() throws {
        let error = try #require(failure("""
            [repository]
            type = "s3"
            [repository.s3]
            endpoint = "http://127.0.0.1:9000"
            bucket = "backups"
            access_key_id = "AKIA"
            secret_access_key_file = "/nonexistent/s3.secret"
            """))
        #expect(error.code == .secret)
        #expect(error.key == "repository.s3.secret_access_key_file")
        #expect(error.description.contains("/nonexistent/s3.secret does not exist"))
    }

    /// A device or FIFO named as the secret file failed to fail: reading /dev/zero never ended.
    @Test(.timeLimit(.minutes(1)), arguments: ["/dev/zero", "fifo", "large"])
    func aSecretFileThatIsNotASmallRegularFileIsRefused(kind: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("secret-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var path = kind
        if kind == "fifo" {
            path = directory + "/fifo"
            #expect(mkfifo(path, 0o600) == 0)
        } else if kind == "large" {
            path = directory + "/large"
            #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x61, count: 200_000)))
        }
        let error = try #require(failure("""
            [repository]
            type = "s3"
            [repository.s3]
            endpoint = "http://127.0.0.1:9000"
            bucket = "backups"
            access_key_id = "AKIA"
            secret_access_key_file = "\(path)"
            """))
        #expect(error.code == .secret)
        #expect(error.description.contains(kind == "large" ? "more than a secret's" : "is not a regular file"), "\(error)")
    }

    @Test func secretFromTheEnvironment() throws {
        let configuration = try parse("""
            [repository]
            type = "s3"
            [repository.s3]
            endpoint = "https://s3.example.com"
            bucket = "backups"
            """, environment: ["AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "from-env"])
        guard case .s3(let s3) = configuration.repository.kind else {
            Issue.record("expected an S3 repository")
            return
        }
        #expect(s3.accessKeyID == "AKIA")
        #expect(s3.secretAccessKey == "from-env")
    }

    /// A relative secret_access_key_file is a systemd credential (LoadCredential=) in the service
    /// and the file next to the configuration outside it; an absolute one is read as written.
    @Test func relativeSecretFileIsACredentialOrNextToTheConfiguration() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-credentials-\(UUID())").path
        let credentials = base + "/credentials", etc = base + "/etc"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        try "from-credential\n".write(toFile: credentials + "/s3.secret", atomically: true, encoding: .utf8)
        try "from-etc\n".write(toFile: etc + "/s3.secret", atomically: true, encoding: .utf8)
        func secret(_ file: String, _ environment: [String: String]) throws -> String {
            let configuration = try Configuration.parse("""
                [repository]
                type = "s3"
                [repository.s3]
                endpoint = "https://s3.example.com"
                bucket = "backups"
                access_key_id = "AKIA"
                secret_access_key_file = "\(file)"
                """, file: etc + "/pgbackd.toml", environment: environment)
            guard case .s3(let s3) = configuration.repository.kind else { throw ConfigurationError(.invalidValue, file: file, key: nil, message: "not s3") }
            return s3.secretAccessKey
        }
        #expect(try secret("s3.secret", ["CREDENTIALS_DIRECTORY": credentials]) == "from-credential")
        #expect(try secret("s3.secret", [:]) == "from-etc")
        #expect(try secret(etc + "/s3.secret", ["CREDENTIALS_DIRECTORY": credentials]) == "from-etc")
        #expect(S3RepositorySettings.secretFilePath("s3.secret", configurationFile: "pgbackd.toml", environment: [:]) == "./s3.secret")

        let missing = try #require(failure("""
            [repository]
            type = "s3"
            [repository.s3]
            endpoint = "https://s3.example.com"
            bucket = "backups"
            access_key_id = "AKIA"
            secret_access_key_file = "s3-secret"
            """, environment: ["CREDENTIALS_DIRECTORY": "/run/credentials/pgbackd.service"]))
        #expect(missing.code == .secret)
        #expect(missing.description.contains("/run/credentials/pgbackd.service/s3-secret does not exist"))
        #expect(missing.description.contains("LoadCredential="))
    }

    @Test func s3WithoutEndpointOrBucket() throws {
        let noTable = try #require(failure("[repository]\ntype = \"s3\"\n"))
        #expect(noTable.code == .missingKey)
        let badEndpoint = try #require(failure("[repository]\ntype = \"s3\"\n[repository.s3]\nendpoint = \"ftp://x\"\nbucket = \"backups\"\n"))
        #expect(badEndpoint.key == "repository.s3.endpoint")
        let badBucket = try #require(failure("[repository]\ntype = \"s3\"\n[repository.s3]\nendpoint = \"http://x\"\nbucket = \"My_Bucket\"\n"))
        #expect(badBucket.key == "repository.s3.bucket")
    }

    /// Issue #14: `signing = "aws"|"moto"` is gone; a file that still sets it is told so, not
    /// sent looking for a typo.
    @Test func removedS3SigningKeyIsNamed() throws {
        for type in ["s3", "file"] {
            for value in ["moto", "aws"] {
                let error = try #require(failure("""
                    [repository]
                    type = "\(type)"
                    [repository.s3]
                    endpoint = "http://127.0.0.1:9000"
                    bucket = "backups"
                    access_key_id = "AKID"
                    secret_access_key = "secret"
                    signing = "\(value)"
                    """))
                #expect(error.code == .unknownKey)
                #expect(error.key == "repository.s3.signing")
                #expect(error.description.contains("removed"), "\(error)")
            }
        }
    }

    @Test func invalidChoicesAndPaths() throws {
        #expect(failure("[repository]\ntype = \"ftp\"\n")?.description.contains("expected one of \"file\", \"s3\"") == true)
        #expect(failure("[repository]\npath = \"relative/dir\"\n")?.key == "repository.path")
        #expect(failure("[repository]\nstanza = \"a/b\"\n")?.key == "repository.stanza")
        #expect(failure("[postgres]\ndatabases = [\"daylog\", 3]\n")?.code == .wrongType)
    }

    @Test func configPathPrecedence() {
        #expect(Configuration.path(explicit: "/a.toml", environment: ["PGBACKD_CONFIG": "/b.toml"]) == "/a.toml")
        #expect(Configuration.path(explicit: nil, environment: ["PGBACKD_CONFIG": "/b.toml"]) == "/b.toml")
        #expect(Configuration.path(explicit: nil, environment: [:]) == "/etc/pgbackd/pgbackd.toml")
    }

    @Test func missingFileSaysHowToPointAtOne() throws {
        do {
            _ = try Configuration.load(path: "/nonexistent/pgbackd.toml")
            Issue.record("loading a missing file must fail")
        } catch let error as ConfigurationError {
            #expect(error.code == .unreadable)
            #expect(error.description.contains("--config"))
        }
    }

    @Test func shippedConfigurationFilesAreValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for name in ["config/pgbackd.toml", "config/examples/daylog.toml"] {
            let text = try String(contentsOf: root.appendingPathComponent(name), encoding: .utf8)
            _ = try Configuration.parse(text, file: name, environment: ["AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "x"])
        }
    }
}
