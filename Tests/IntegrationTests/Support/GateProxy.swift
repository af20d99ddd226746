import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// gate-proxy.py in front of the S3 server: forwards every request, and holds one chosen
/// request until ``open()``, so a test can stop or kill pgbackd at a known point of a job that
/// runs no child program.
final class GateProxy: Sendable {
    let process: Process
    let port: Int
    let control: String

    init(targetHost: String, targetPort: Int, control: String, filePath: String = #filePath) throws {
        let script = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/gate-proxy.py").path
        self.control = control
        try FileManager.default.createDirectory(atPath: control, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, targetHost, "\(targetPort)", control]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var port: Int?
        for _ in 0..<100 where port == nil {
            port = (try? String(contentsOfFile: "\(control)/port", encoding: .utf8)).flatMap { Int($0) }
            if port == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        guard let port else {
            process.terminate()
            throw ThrowawayCluster.ClusterError(message: "gate-proxy.py did not report its port within 10 s")
        }
        self.port = port
    }

    /// Holds the next request matching `hold` ("METHOD target", a regular expression), or the
    /// next after one matching `after` has passed.
    func arm(hold: String, after: String? = nil) throws {
        try? FileManager.default.removeItem(atPath: "\(control)/held")
        try ((after.map { "after \($0)\n" } ?? "") + "hold \(hold)\n").write(toFile: "\(control)/arm", atomically: true, encoding: .utf8)
    }

    /// Whether a request is being held now.
    var isHolding: Bool { FileManager.default.fileExists(atPath: "\(control)/held") && FileManager.default.fileExists(atPath: "\(control)/arm") }

    /// Lets the held request (and every later one) through.
    func open() {
        try? FileManager.default.removeItem(atPath: "\(control)/arm")
    }

    func stop() {
        open()
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<50 where process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
    }
}
