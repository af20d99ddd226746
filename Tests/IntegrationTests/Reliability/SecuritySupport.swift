import Foundation
import Synchronization

/// The secrets of one security test, each a distinctive string, and every place one was found.
final class SecretScan: Sendable {
    struct Secret: Sendable {
        /// "S3 secret", "database password", "encryption key", "webhook token".
        var kind: String
        var value: String
        /// Places where this secret legitimately is (a child's environment, by design).
        var allowedIn: Set<String> = []
    }

    struct Finding: Sendable, CustomStringConvertible {
        var kind: String
        var place: String
        var context: String
        var description: String { "\(kind) found in \(place): …\(context)…" }
    }

    private let state = Mutex<(secrets: [Secret], findings: [Finding], scanned: [String: Int])>(([], [], [:]))

    func add(_ kind: String, _ value: String, allowedIn: Set<String> = []) {
        precondition(value.count >= 12, "a secret to scan for must be distinctive")
        state.withLock { $0.secrets.append(Secret(kind: kind, value: value, allowedIn: allowedIn)) }
    }

    var kinds: Set<String> { state.withLock { Set($0.secrets.map(\.kind)) } }
    var findings: [Finding] { state.withLock { $0.findings } }
    /// How many texts of each place were scanned.
    var scanned: [String: Int] { state.withLock { $0.scanned } }

    /// Looks for every secret in `text`; `place` says where it came from (`logs`, `child cmdline`, ...).
    func scan(_ text: String, place: String, detail: String = "") {
        scan(Array(text.utf8), place: place, detail: detail)
    }

    func scan(_ bytes: [UInt8], place: String, detail: String = "") {
        state.withLock { state in
            state.scanned[place, default: 0] += 1
            for secret in state.secrets where !secret.allowedIn.contains(place) {
                let needle = Array(secret.value.utf8)
                if let range = Self.find(needle, in: bytes) {
                    let lower = max(0, range.lowerBound - 60), upper = min(bytes.count, range.upperBound + 60)
                    let context = String(decoding: bytes[lower..<upper], as: UTF8.self).replacingOccurrences(of: secret.value, with: "<\(secret.kind)>")
                    state.findings.append(Finding(kind: secret.kind, place: detail.isEmpty ? place : "\(place) (\(detail))", context: context))
                }
            }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        let first = needle[0]
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == first, haystack[index..<index + needle.count].elementsEqual(needle) { return index..<index + needle.count }
            index += 1
        }
        return nil
    }
}

/// One process seen below pgbackd: what `/proc/<pid>/cmdline` and `environ` held.
struct ChildSample: Sendable, Hashable {
    var pid: Int32
    var cmdline: String
    var environ: String
}

/// Polls `/proc` for every descendant of a pid (through `/proc/<pid>/task/*/children`) every few
/// milliseconds while it runs, keeping each distinct command line and environment it sees.
final class ChildSampler: Sendable {
    private let root: Int32
    private let samples = Mutex<Set<ChildSample>>([])
    private let stopped = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)

    init(root: Int32) {
        self.root = root
    }

    func start() {
        Thread { [self] in
            while !stopped.withLock({ $0 }) {
                sampleOnce()
                usleep(2_000)
            }
            finished.signal()
        }.start()
    }

    func stop() -> [ChildSample] {
        stopped.withLock { $0 = true }
        finished.wait()
        return Array(samples.withLock { $0 })
    }

    private func sampleOnce() {
        var queue = [root], seen = Set<Int32>()
        while let pid = queue.popLast() {
            guard seen.insert(pid).inserted else { continue }
            for child in Self.children(of: pid) {
                queue.append(child)
                let cmdline = Self.read("/proc/\(child)/cmdline")
                guard !cmdline.isEmpty else { continue }
                let environ = Self.read("/proc/\(child)/environ")
                let sample = ChildSample(pid: child, cmdline: cmdline, environ: environ)
                samples.withLock { _ = $0.insert(sample) }
            }
        }
    }

    static func children(of pid: Int32) -> [Int32] {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return [] }
        return tasks.flatMap { task in
            read("/proc/\(pid)/task/\(task)/children").split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// The file's bytes with NULs as spaces ("" when gone).
    static func read(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let data = (try? handle.readToEnd()) ?? Data()
        return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
    }
}

/// pgbackd run with exactly the given environment, its stdout and stderr read to the end, and
/// its descendants sampled while it runs.
func runPgbackdSampled(_ arguments: [String], environment: [String: String], timeout: TimeInterval = 240) async throws -> (status: Int32, stdout: String, stderr: String, children: [ChildSample]) {
    try await offPool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: pgbackdExecutable)
        process.arguments = arguments
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let sampler = ChildSampler(root: process.processIdentifier)
        sampler.start()
        // A hang guard only: the run is killed after `timeout`.
        let guardTimer = DispatchSource.makeTimerSource()
        guardTimer.schedule(deadline: .now() + timeout)
        guardTimer.setEventHandler { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        guardTimer.resume()
        defer { guardTimer.cancel() }
        let group = DispatchGroup()
        nonisolated(unsafe) var stderrBytes = Data()
        group.enter()
        DispatchQueue.global().async {
            stderrBytes = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let stdoutBytes = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        let children = sampler.stop()
        return (process.terminationStatus, String(decoding: stdoutBytes, as: UTF8.self), String(decoding: stderrBytes, as: UTF8.self), children)
    }
}

/// A self-signed certificate for 127.0.0.1 (openssl), and the TLS front (tls-front.py) before
/// an upstream port; the front stops by itself after `seconds` or `connections`.
final class TLSFront: Sendable {
    let process: Process
    let port: Int
    let certificate: String

    private init(process: Process, port: Int, certificate: String) {
        self.process = process
        self.port = port
        self.certificate = certificate
    }

    static func start(upstreamPort: Int, in directory: String, seconds: Int = 180, connections: Int = 400) async throws -> TLSFront {
        let certificate = "\(directory)/front.pem", key = "\(directory)/front.key"
        let made = try await shell("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "1",
                                               "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        guard made.status == 0 else { throw FrontFailed(description: "openssl could not make a certificate: \(made.stderr)") }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("tls-front.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", script, certificate, key, "\(upstreamPort)", "\(seconds)", "\(connections)"]
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
            process.waitUntilExit()
            throw FrontFailed(description: "the TLS front did not start: \(line)")
        }
        // Drain what it prints later, so it never blocks on a full pipe.
        DispatchQueue.global().async { _ = reader.readDataToEndOfFile() }
        return TLSFront(process: process, port: port, certificate: certificate)
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    struct FrontFailed: Error, CustomStringConvertible {
        var description: String
    }
}
