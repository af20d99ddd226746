import Encryption
import Foundation
import ObjectStorage
import PGBackupCore
import PostgresClient
import Testing

/// Secrets stay secret: the S3 secret, the database password, the encryption key and webhook
/// tokens (in a header and in the URL's path), each a distinctive string, are looked for in
/// everything pgbackd produces while it backs up, drills, restores and fails (wrong credentials,
/// an unreachable endpoint, a webhook answering 500): its stdout and stderr at debug level, the
/// alert payloads a webhook and a command hook receive, every stored object (raw, and decrypted
/// and decompressed), and the command line and environment of every child it starts, sampled
/// from /proc while it runs. Also: a configuration file with secrets that other users can read is
/// warned about, and TLS to the S3 endpoint is verified by default.
extension Reliability {
    @Suite(.serialized) struct Security {
        /// The environment pgbackd runs with: nothing of this test process (whose environment
        /// holds the S3 test secret), so only what pgbackd itself passes on can leak.
        static func environment(_ extra: [String: String] = [:]) -> [String: String] {
            var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"]
            environment.merge(extra) { $1 }
            return environment
        }

        @Test(.enabled(if: TestServices.s3Enabled))
        func secretsAppearNowhere() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireS3()
            let role = try await PasswordRole.create(postgres, attributes: "superuser")
            let fixture = try await DaylogFixture.create(postgres, entries: 300)
            do {
                try await leaksNowhere(postgres: postgres, s3: s3, role: role, fixture: fixture)
                await role.drop()
            } catch {
                await role.drop()
                throw error
            }
        }

        func leaksNowhere(postgres: TestServices.Postgres, s3: TestServices.S3, role: PasswordRole, fixture: DaylogFixture) async throws {
            try await withCleanup(postgres) { cleanup in
                cleanup.dropDatabase(fixture.name)
                let directory = try temporaryDirectory("security")
                cleanup.remove(directory)
                let scan = SecretScan()

                // The secrets, each distinctive.
                let wrongS3Secret = "WrongS3Secret\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
                let wrongPassword = "wrong-pw-\(UUID().uuidString)"
                let headerToken = "hdrtoken-\(UUID().uuidString)"
                let urlToken = "urltoken\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased())"
                let keyFile = "\(directory)/repo.key"
                try RepositoryKey.generate().write(to: keyFile)
                let keyText = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                let keyBytes = [UInt8](try #require(Data(base64Encoded: keyText)))
                scan.add("S3 secret", s3.secretAccessKey)
                scan.add("S3 secret", wrongS3Secret)
                // With the password inline in postgres.conninfo (against the documentation, but
                // possible), libpq's PGPASSWORD in a child's environment is how it is passed on.
                scan.add("database password", role.password, allowedIn: ["child environ (inline conninfo password)"])
                scan.add("database password", wrongPassword)
                scan.add("encryption key", keyText)
                scan.add("encryption key", keyBytes.map { String(format: "%02x", $0) }.joined())
                scan.add("webhook token", headerToken)
                scan.add("webhook token", urlToken)

                // The files secrets live in, as the documentation says: mode 0600.
                func secretFile(_ name: String, _ content: String) throws -> String {
                    let path = "\(directory)/\(name)"
                    _ = FileManager.default.createFile(atPath: path, contents: Data(content.utf8), attributes: [.posixPermissions: 0o600])
                    return path
                }
                let s3SecretFile = try secretFile("s3.secret", s3.secretAccessKey + "\n")
                let wrongS3SecretFile = try secretFile("wrong-s3.secret", wrongS3Secret + "\n")
                let passfile = try role.passfile(in: directory)
                let wrongPassfile = try role.passfile(in: directory, password: wrongPassword)
                let tokenFile = try secretFile("webhook.token", "Bearer \(headerToken)\n")

                // The alert hooks: a webhook that always answers 500, a command that records
                // its arguments, environment and stdin.
                let receiver = try await Receiver.start(answers: Array(repeating: 500, count: 200))
                defer { receiver.stop() }
                let hookOutput = "\(directory)/hook"
                try FileManager.default.createDirectory(atPath: hookOutput, withIntermediateDirectories: true)
                let hook = "\(directory)/hook.sh"
                try writeExecutable("""
                    #!/bin/bash
                    n=$(date +%s%N)
                    printf '%s\\n' "$@" > "\(hookOutput)/$n.argv"
                    env > "\(hookOutput)/$n.env"
                    cat > "\(hookOutput)/$n.stdin"
                    """, to: hook)

                let prefix = "security-\(UUID().uuidString.prefix(8))"
                let target = "restored_\(UUID().uuidString.prefix(8).lowercased())"
                cleanup.dropDatabase(target)
                func config(_ name: String, secretFile: String = s3SecretFile, endpoint: String = s3.endpoint, password: String? = nil, mode: Int = 0o600) throws -> String {
                    let path = "\(directory)/\(name).toml"
                    let conninfo = "host=\(postgres.host) port=\(postgres.port) user=\(role.name) dbname=postgres" + (password.map { " password=\($0)" } ?? "")
                    let text = """
                        [repository]
                        type = "s3"
                        stanza = "sec"
                        [repository.s3]
                        endpoint = "\(endpoint)"
                        bucket = "\(s3.bucket)"
                        region = "\(s3.region)"
                        prefix = "\(prefix)"
                        access_key_id = "\(s3.accessKeyID)"
                        secret_access_key_file = "\(secretFile)"
                        part_size_mib = 5
                        [postgres]
                        conninfo = "\(conninfo)"
                        databases = ["\(fixture.name)"]
                        bin_dir = "\(postgres.binDirectory)"
                        [drill]
                        staging_dir = "\(directory)"
                        [encryption]
                        key_file = "\(keyFile)"
                        [[alerts.webhook]]
                        events = ["*"]
                        url = "http://127.0.0.1:\(receiver.port)/hook/\(urlToken)"
                        headers = { Authorization_file = "\(tokenFile)" }
                        timeout_seconds = 5
                        [[alerts.command]]
                        events = ["*"]
                        run = ["\(hook)", "--team", "db"]
                        """
                    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: NSNumber(value: mode)])
                    chmod(path, mode_t(mode))
                    return path
                }
                let good = try config("good")
                let wrongS3 = try config("wrong-s3", secretFile: wrongS3SecretFile)
                let unreachable = try config("unreachable", endpoint: "http://127.0.0.1:\(try closedPort())")
                let inline = try config("inline-password", password: role.password, mode: 0o644)

                struct Run {
                    var arguments: [String]
                    var passfile: String?
                    var expect: Int32
                    /// Where a secret in a child's environment is allowed.
                    var environPlace = "child environ"
                }
                let runs = [
                    Run(arguments: ["check", "--config", good], passfile: passfile, expect: 0),
                    Run(arguments: ["backup", "--config", good], passfile: passfile, expect: 0),
                    Run(arguments: ["drill", "latest", "--config", good], passfile: passfile, expect: 0),
                    Run(arguments: ["restore", "latest", "--database", fixture.name, "--target-db", target, "--config", good], passfile: passfile, expect: 0),
                    Run(arguments: ["list", "--json", "--config", good], passfile: passfile, expect: 0),
                    Run(arguments: ["backup", "--config", wrongS3], passfile: passfile, expect: 77),
                    Run(arguments: ["check", "--config", wrongS3], passfile: passfile, expect: 77),
                    Run(arguments: ["backup", "--config", good], passfile: wrongPassfile, expect: 77),
                    Run(arguments: ["check", "--config", good], passfile: wrongPassfile, expect: 77),
                    Run(arguments: ["backup", "--config", unreachable], passfile: passfile, expect: 74),
                    Run(arguments: ["backup", "--config", inline], passfile: nil, expect: 0, environPlace: "child environ (inline conninfo password)"),
                ]
                var children = 0
                var programs = Set<String>()
                for run in runs {
                    let environment = Self.environment(run.passfile.map { ["PGPASSFILE": $0] } ?? [:])
                    let result = try await runPgbackdSampled(run.arguments + ["--log-level", "debug"], environment: environment)
                    let label = run.arguments.prefix(while: { $0 != "--config" }).joined(separator: " ") + " (" + ((run.arguments.last.map { ($0 as NSString).lastPathComponent }) ?? "") + (run.passfile == wrongPassfile ? ", wrong password" : "") + ")"
                    #expect(result.status == run.expect, "pgbackd \(label): exit \(result.status), expected \(run.expect): \(result.stderr.suffix(1500))")
                    scan.scan(result.stdout + result.stderr, place: "logs and errors", detail: label)
                    for child in result.children {
                        scan.scan(child.cmdline, place: "child cmdline", detail: child.cmdline.prefix(80).description)
                        scan.scan(child.environ, place: run.environPlace, detail: child.cmdline.prefix(80).description)
                        for word in child.cmdline.split(separator: " ").prefix(4) { programs.insert((String(word) as NSString).lastPathComponent) }
                    }
                    children += result.children.count
                    print("[security] pgbackd \(label): exit \(result.status), \(result.children.count) child processes sampled")
                    if run.arguments.first == "backup", run.expect != 0 {
                        #expect(result.stderr.contains("pgbackd: error: "), "\(label): no error line: \(result.stderr.suffix(500))")
                    }
                }
                // Sampling saw the children that get credentials: else it proved nothing.
                for program in ["pg_dump", "pg_dumpall", "pg_restore", "hook.sh"] {
                    #expect(programs.contains(program), "no \(program) was sampled; saw \(programs.sorted())")
                }
                // The inline password made the file a secret-holding one others can read.
                let inlineRun = try await shell(pgbackdExecutable, ["list", "--config", inline], environment: ["PGBACKD_TEST_S3_SECRET_ACCESS_KEY": ""])
                #expect(inlineRun.stderr.contains("pgbackd: warning: the configuration file \(inline) is readable by other users") && inlineRun.stderr.contains("chmod 600 \(inline)"), "\(inlineRun.stderr)")

                // Alert payloads: what the webhook and the command hook received.
                let requests = try receiver.requests()
                #expect(requests.count >= 3, "the webhook got \(requests.count) requests")
                #expect(requests.allSatisfy { $0.path == "/hook/\(urlToken)" && $0.header("Authorization") == "Bearer \(headerToken)" })
                for request in requests { scan.scan(request.body, place: "webhook payload") }
                // The scanner finds what is there: the webhook's own request carries both tokens, where they belong.
                let probe = SecretScan()
                probe.add("webhook token", headerToken)
                probe.add("webhook token", urlToken)
                if let request = requests.first { probe.scan("\(request.path) \(request.headers)", place: "webhook request") }
                #expect(probe.findings.count == 2, "the scanner did not find the tokens where they are: \(probe.findings)")
                let hookFiles = try FileManager.default.contentsOfDirectory(atPath: hookOutput)
                #expect(hookFiles.filter { $0.hasSuffix(".stdin") }.count >= 3, "the command hook ran \(hookFiles.count / 3) times")
                for file in hookFiles {
                    scan.scan([UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(hookOutput)/\(file)"))), place: "command hook input", detail: file)
                }

                // The repository: every stored object as stored, then decrypted and decompressed.
                let raw = "\(directory)/raw"
                let copy = try await S3RepositoryBackupTests.aws(s3, ["s3", "cp", "--recursive", "--quiet", "s3://\(s3.bucket)/\(prefix)/", raw])
                #expect(copy.status == 0, "aws s3 cp: \(copy.stderr)")
                var objects = 0
                for file in FileManager.default.enumerator(atPath: raw)?.allObjects as? [String] ?? [] {
                    var isDirectory: ObjCBool = false
                    guard FileManager.default.fileExists(atPath: "\(raw)/\(file)", isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
                    scan.scan([UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(raw)/\(file)"))), place: "repository (stored bytes)", detail: file)
                    objects += 1
                }
                let repository = try await RepositoryFactory.open(try Configuration.load(path: good, environment: [:]), logger: BackupHarness.logger)
                var plainObjects = 0
                for object in try await repository.storage.list(prefix: "") {
                    let bytes = try await repository.storage.getAll(key: object.key)
                    scan.scan(bytes, place: "repository (decrypted)", detail: object.key)
                    if bytes.starts(with: [0x1F, 0x8B]) {
                        let file = "\(directory)/plain.gz"
                        try Data(bytes).write(to: URL(fileURLWithPath: file))
                        let gunzip = try await shell("/bin/bash", ["-c", "gzip -dc \"$0\" > \"$0.out\"", file])
                        #expect(gunzip.status == 0, "gunzip \(object.key): \(gunzip.stderr)")
                        scan.scan([UInt8](try Data(contentsOf: URL(fileURLWithPath: file + ".out"))), place: "repository (decompressed)", detail: object.key)
                    }
                    plainObjects += 1
                }
                #expect(objects >= 4 && plainObjects >= 4, "the repository holds \(objects) objects (\(plainObjects) readable): the backup stored nothing to scan")
                // The dump itself holds the data: prove the decompressed scan reads real content.
                #expect(scan.scanned["repository (decompressed)", default: 0] >= 2)

                let findings = scan.findings
                for finding in findings { Issue.record("secret leaked: \(finding)") }
                print("[security] scanned: \(scan.scanned.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); \(children) child samples of \(programs.sorted()); \(findings.count) findings")
                var faults: [String: Int] = ["secret kinds": scan.kinds.count]
                faults["failing runs"] = runs.filter { $0.expect != 0 }.count
                ReliabilityLedger.record(ReliabilityFigures(area: "security", scenario: "secrets in logs, errors, alerts, repository, child cmdlines",
                                                            faults: faults, runs: runs.count, objectsVerified: objects + plainObjects, missed: findings.count))
            }
        }

        /// A configuration file that holds a secret and that other users can read is warned
        /// about, naming the file and `chmod 600`, by every command and by `check`; not once it
        /// is 0600, nor when it holds no secret.
        @Test(.enabled(if: TestServices.postgresEnabled))
        func aConfigurationOthersCanReadIsWarnedAbout() async throws {
            let postgres = try TestServices.requirePostgres()
            let directory = try temporaryDirectory("security-mode")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            func config(_ name: String, conninfo: String, extra: String = "", mode: mode_t) throws -> String {
                let path = "\(directory)/\(name).toml"
                try """
                    [repository]
                    type = "file"
                    path = "\(directory)/repo"
                    [postgres]
                    conninfo = "\(conninfo)"
                    bin_dir = "\(postgres.binDirectory)"
                    \(extra)
                    """.write(toFile: path, atomically: true, encoding: .utf8)
                chmod(path, mode)
                return path
            }
            let secret = "host=\(postgres.host) port=\(postgres.port) user=\(postgres.user) password=not-used-\(UUID().uuidString.prefix(6))"
            let webhook = "[[alerts.webhook]]\nevents = [\"*\"]\nurl = \"http://127.0.0.1:9/x\"\nheaders = { Authorization = \"Bearer inline\" }\n"
            let cases: [(name: String, path: String, warned: [String])] = [
                ("password, 0644", try config("pw-644", conninfo: secret, mode: 0o644), ["postgres.conninfo"]),
                ("inline header, 0604", try config("hdr-604", conninfo: postgres.conninfo(), extra: webhook, mode: 0o604), ["alerts.webhook[0].headers.Authorization"]),
                ("password, 0600", try config("pw-600", conninfo: secret, mode: 0o600), []),
                ("password, 0640", try config("pw-640", conninfo: secret, mode: 0o640), []),
                ("no secret, 0644", try config("plain-644", conninfo: postgres.conninfo(), mode: 0o644), []),
            ]
            var runs = 0, missed = 0
            for (name, path, warned) in cases {
                let list = try await shell(pgbackdExecutable, ["list", "--config", path])
                let check = try await shell(pgbackdExecutable, ["check", "--config", path])
                runs += 2
                let warning = "pgbackd: warning: the configuration file \(path) is readable by other users"
                if warned.isEmpty {
                    #expect(!list.stderr.contains("warning") && !check.stdout.contains("warn configuration"), "\(name): \(list.stderr) \(check.stdout)")
                    if list.stderr.contains("warning") { missed += 1 }
                } else {
                    let told = list.stderr.contains(warning) && list.stderr.contains("chmod 600 \(path)") && warned.allSatisfy(list.stderr.contains)
                        && check.stdout.contains("warn configuration: the configuration file \(path) is readable by other users")
                    #expect(told, "\(name): list stderr: \(list.stderr)\ncheck stdout: \(check.stdout)")
                    if !told { missed += 1 }
                    #expect(list.status == 0, "\(name): a warning does not fail the command: \(list.stderr)")
                }
                #expect(!list.stderr.contains("not-used-") && !check.stdout.contains("not-used-") && !check.stderr.contains("not-used-"), "\(name): the warning shows the secret")
            }
            ReliabilityLedger.record(ReliabilityFigures(area: "security", scenario: "configuration readable by others warned", runs: runs, missed: missed))
        }

        /// TLS to the S3 endpoint is verified by default: behind a TLS front with a self-signed
        /// certificate a backup fails with a clear error (exit 74) without `ca_file`, and works
        /// with it.
        @Test(.enabled(if: TestServices.s3Enabled))
        func tlsIsVerifiedByDefault() async throws {
            let postgres = try TestServices.requirePostgres()
            let s3 = try TestServices.requireS3()
            let upstream = try #require(URL(string: s3.endpoint)?.port)
            let fixture = try await DaylogFixture.create(postgres, entries: 50)
            try await withCleanup(postgres) { cleanup in
                cleanup.dropDatabase(fixture.name)
                let directory = try temporaryDirectory("security-tls")
                cleanup.remove(directory)
                let front = try await TLSFront.start(upstreamPort: upstream, in: directory)
                defer { front.stop() }
                let prefix = "security-tls-\(UUID().uuidString.prefix(8))"
                func config(_ name: String, extra: String) throws -> String {
                    let path = "\(directory)/\(name).toml"
                    try """
                        [repository]
                        type = "s3"
                        stanza = "tls"
                        [repository.s3]
                        endpoint = "https://127.0.0.1:\(front.port)"
                        bucket = "\(s3.bucket)"
                        region = "\(s3.region)"
                        prefix = "\(prefix)"
                        access_key_id = "\(s3.accessKeyID)"
                        secret_access_key = "\(s3.secretAccessKey)"
                        \(extra)
                        [postgres]
                        conninfo = "\(postgres.conninfo())"
                        databases = ["\(fixture.name)"]
                        bin_dir = "\(postgres.binDirectory)"
                        \(TestServices.encryptionTOML)
                        """.write(toFile: path, atomically: true, encoding: .utf8)
                    chmod(path, 0o600)
                    return path
                }
                let withoutCA = try config("default", extra: "")
                let withCA = try config("ca", extra: "ca_file = \"\(front.certificate)\"")
                var runs = 0, missed = 0

                let refused = try await shell(pgbackdExecutable, ["backup", "--config", withoutCA])
                runs += 1
                #expect(refused.status == 74, "without ca_file: exit \(refused.status): \(refused.stderr)")
                let clear = refused.stderr.contains("TLS with S3 endpoint https://127.0.0.1:\(front.port)") && refused.stderr.contains("repository.s3.ca_file")
                #expect(clear, "without ca_file, the error does not say TLS and ca_file: \(refused.stderr)")
                if refused.status == 0 || !clear { missed += 1 }
                let check = try await shell(pgbackdExecutable, ["check", "--config", withoutCA])
                runs += 1
                #expect(check.status == 74 && check.stdout.contains("ca_file"), "check without ca_file: exit \(check.status): \(check.stdout) \(check.stderr)")
                #expect(try await S3RepositoryBackupTests.objectKeys(s3, prefix: prefix + "/").isEmpty, "something was stored over an unverified connection")

                let backup = try await shell(pgbackdExecutable, ["backup", "--config", withCA])
                runs += 1
                #expect(backup.status == 0, "with ca_file: exit \(backup.status): \(backup.stderr)")
                if backup.status != 0 { missed += 1 }
                let list = try await shell(pgbackdExecutable, ["list", "--json", "--config", withCA])
                #expect(list.status == 0 && list.stdout.contains("logical"), "\(list.stdout) \(list.stderr)")
                let keys = try await S3RepositoryBackupTests.objectKeys(s3, prefix: prefix + "/")
                #expect(keys.contains { $0.hasSuffix("manifest.json" + TestServices.objectSuffix) }, "\(keys)")
                ReliabilityLedger.record(ReliabilityFigures(area: "security", scenario: "TLS verified by default (self-signed S3 front)",
                                                            faults: ["self-signed certificate": 2], runs: runs, missed: missed))
            }
        }
    }
}
