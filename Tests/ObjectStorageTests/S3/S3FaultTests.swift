import Foundation
import Testing

@testable import ObjectStorage

#if canImport(Glibc)
import Glibc
#endif

/// A small S3-shaped HTTP(S) server on 127.0.0.1 that injects faults: 503s, dropped
/// connections mid-body and mid-request, and answers byte ranges. It checks no signatures;
/// it exists to exercise retries, resumption and TLS settings. Needs python3 (and openssl for
/// the TLS test), which every machine of the project has (moto needs them too).
final class FaultServer: @unchecked Sendable {
    static let script = #"""
    import sys, ssl, json, socket, hashlib, threading
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
    BIG = bytes((i * 7 + 3) % 251 for i in range(2 * 1024 * 1024))
    state = {"counts": {}, "ifmatch": [], "puts": []}
    lock = threading.Lock()
    def count(key):
        with lock:
            state["counts"][key] = state["counts"].get(key, 0) + 1
            return state["counts"][key]
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args): pass
        def send(self, status, body=b"", headers={}):
            self.send_response(status)
            for name, value in headers.items(): self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD": self.wfile.write(body)
        def fail(self, status, code):
            body = ("<?xml version='1.0'?><Error><Code>%s</Code><Message>injected</Message></Error>" % code).encode()
            self.send(status, body, {"Content-Type": "application/xml"})
        def drop(self):
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        def do_HEAD(self):
            self.do_GET()
        def do_GET(self):
            path = self.path.split("?")[0]
            if path.endswith("/_stats"):
                with lock: return self.send(200, json.dumps(state).encode())
            n = count(self.command + " " + path)
            if path.endswith("/flaky"):
                return self.fail(503, "SlowDown") if n <= 2 else self.send(200, b"hello", {"ETag": '"e1"'})
            if path.endswith("/down"): return self.fail(503, "SlowDown")
            if path.endswith("/denied"): return self.fail(403, "AccessDenied")
            if path.endswith("/norange"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(BIG)))
                self.send_header("ETag", '"big"')
                self.end_headers()
                if n == 1 and self.headers.get("Range") is None:
                    self.wfile.write(BIG[: len(BIG) // 3])
                    return self.drop()
                self.wfile.write(BIG)
                return
            if path.endswith("/resume"):
                rng = self.headers.get("Range")
                if rng is None:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(BIG)))
                    self.send_header("ETag", '"big"')
                    self.end_headers()
                    self.wfile.write(BIG[: len(BIG) // 2 + 12345])
                    return self.drop()
                start = int(rng.split("=")[1].split("-")[0])
                with lock: state["ifmatch"].append(self.headers.get("If-Match"))
                return self.send(206, BIG[start:], {"ETag": '"big"', "Content-Range": "bytes %d-%d/%d" % (start, len(BIG) - 1, len(BIG))})
            return self.fail(404, "NoSuchKey")
        def do_PUT(self):
            path = self.path.split("?")[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            n = count("PUT " + path)
            with lock: state["puts"].append([path, len(body), hashlib.sha256(body).hexdigest() == self.headers.get("x-amz-content-sha256")])
            if path.endswith("/flaky") and n == 1: return self.fail(500, "InternalError")
            if path.endswith("/reset") and n == 1: return self.drop()
            return self.send(200, b"", {"ETag": '"%s"' % hashlib.md5(body).hexdigest()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) > 2:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[1], sys.argv[2])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """#

    /// The bytes `/resume` serves.
    static let big: [UInt8] = (0..<(2 << 20)).map { UInt8(($0 * 7 + 3) % 251) }

    let process = Process()
    let port: Int

    /// Starts the server (over TLS when given a certificate and key).
    init(certificate: String? = nil, key: String? = nil) async throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", Self.script] + [certificate, key].compactMap { $0 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = output.fileHandleForReading
        let line: String = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var data = Data()
                while !data.contains(UInt8(ascii: "\n")) {
                    let chunk = reader.availableData
                    if chunk.isEmpty { break }
                    data.append(chunk)
                }
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(process.processIdentifier, SIGKILL)
            throw StorageError(.io, message: "the fault server did not start (python3 missing?): \(line)")
        }
        self.port = port
    }

    /// SIGKILL: a child started from a dispatch thread inherits that thread's blocked signals,
    /// SIGTERM among them, so `terminate()` would leave it running.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func storage(scheme: String = "http", configure: (inout S3Configuration) -> Void = { _ in }) throws -> S3Storage {
        var configuration = S3Configuration(
            endpoint: URL(string: "\(scheme)://127.0.0.1:\(port)")!, bucket: "bucket", region: "us-east-1",
            accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret", maxRetries: 3,
            retryBaseDelay: .milliseconds(10), retryMaxDelay: .milliseconds(50)
        )
        configure(&configuration)
        return try S3Storage(configuration: configuration)
    }

    struct Stats: Decodable {
        var counts: [String: Int]
        var ifmatch: [String?]
        var puts: [[Value]]
        enum Value: Decodable, Equatable {
            case text(String), number(Int), flag(Bool)
            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let flag = try? container.decode(Bool.self) { self = .flag(flag) }
                else if let number = try? container.decode(Int.self) { self = .number(number) }
                else { self = .text(try container.decode(String.self)) }
            }
        }
    }

    func stats(_ storage: S3Storage) async throws -> Stats {
        try JSONDecoder().decode(Stats.self, from: Data(try await storage.getAll(key: "_stats")))
    }
}

@Suite(.serialized) struct S3FaultTests {
    @Test func retriesThrottlingThenSucceeds() async throws {
        let server = try await FaultServer()
        defer { server.stop() }
        let storage = try server.storage()
        #expect(try await storage.getAll(key: "flaky") == Array("hello".utf8))
        #expect(try await server.stats(storage).counts["GET /bucket/flaky"] == 3)
    }

    @Test func givesUpAfterMaxRetries() async throws {
        let server = try await FaultServer()
        defer { server.stop() }
        let storage = try server.storage { $0.maxRetries = 1 }
        let error = await #expect(throws: StorageError.self) { try await storage.getAll(key: "down") }
        #expect(error?.code == .serverError)
        #expect(error?.message.contains("after 2 attempts") == true)
        #expect(try await server.stats(storage).counts["GET /bucket/down"] == 2)
    }

    @Test func doesNotRetryClientErrors() async throws {
        let server = try await FaultServer()
        defer { server.stop() }
        let storage = try server.storage()
        let missing = await #expect(throws: StorageError.self) { try await storage.get(key: "missing", range: nil) }
        #expect(missing?.code == .notFound)
        let denied = await #expect(throws: StorageError.self) { try await storage.getAll(key: "denied") }
        #expect(denied?.code == .accessDenied)
        #expect(try await storage.head(key: "missing") == nil)
        let counts = try await server.stats(storage).counts
        #expect(counts["GET /bucket/missing"] == 1)
        #expect(counts["GET /bucket/denied"] == 1)
    }

    @Test func resumesABrokenDownloadFromWhereItStopped() async throws {
        let server = try await FaultServer()
        defer { server.stop() }
        let storage = try server.storage()
        #expect(try await storage.getAll(key: "resume") == FaultServer.big)
        let stats = try await server.stats(storage)
        #expect(stats.counts["GET /bucket/resume"] == 2)
        #expect(stats.ifmatch == ["\"big\""])
    }

    @Test func copesWithAServerThatIgnoresRange() async throws {
        let server = try await FaultServer()
        defer { server.stop() }
        let storage = try server.storage()
        // The first answer breaks off; the retry asks for a range and gets the whole object.
        #expect(try await storage.getAll(key: "norange") == FaultServer.big)
        #expect(try await storage.getAll(key: "norange", range: 100..<200) == Array(FaultServer.big[100..<200]))
        #expect(try await storage.getAll(key: "norange", range: 2_000_000..<3_000_000) == Array(FaultServer.big[2_000_000...]))
        #expect(try await server.stats(storage).counts["GET /bucket/norange"] == 4)
    }

    @Test func retriedPartsResendTheWholeBody() async throws {
        let server = try await FaultServer()
        defer { server.stop() }
        let storage = try server.storage()
        let bytes = [UInt8](repeating: 42, count: 100_000)
        try await storage.put(key: "flaky", bytes: bytes)
        try await storage.put(key: "reset", bytes: bytes)
        let puts = try await server.stats(storage).puts
        let expected: [FaultServer.Stats.Value] = [.number(100_000), .flag(true)]
        #expect(puts.filter { $0.first == .text("/bucket/flaky") }.map { Array($0.dropFirst()) } == [expected, expected])
        #expect(puts.filter { $0.first == .text("/bucket/reset") }.map { Array($0.dropFirst()) } == [expected, expected])
    }

    @Test func tlsIsVerifiedUnlessToldOtherwise() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-s3-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl could not make a test certificate")

        let server = try await FaultServer(certificate: certificate, key: key)
        defer { server.stop() }

        let verifying = try server.storage(scheme: "https")
        #expect(verifying.configuration.verifyTLS)
        let error = await #expect(throws: StorageError.self) { try await verifying.head(key: "missing") }
        #expect(error?.code == .unreachable)
        #expect(error?.message.contains("repository.s3.ca_file") == true)

        let withCA = try server.storage(scheme: "https") { $0.caFile = certificate }
        #expect(try await withCA.head(key: "missing") == nil)
        #expect(try await withCA.getAll(key: "flaky") == Array("hello".utf8))

        let unverified = try server.storage(scheme: "https") { $0.verifyTLS = false }
        #expect(try await unverified.head(key: "missing") == nil)
    }
}
