import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Support/fault-proxy.py in front of the S3 server (moto): forwards every request, and injects a
/// fault into a fraction of each kind (see the script). ``stats()`` reads what it injected.
final class S3FaultProxy: Sendable {
    let process: Process
    let port: Int
    let control: String

    /// What the proxy counted so far.
    struct Stats: Decodable, Sendable {
        var requests: [String: Int] = [:]
        var faults: [String: Int] = [:]
        var byKind: [String: [String: Int]] = [:]
        var forwarded = 0
        var total = 0
        var stallsAbandoned = 0

        enum CodingKeys: String, CodingKey {
            case requests, faults, forwarded, total
            case byKind = "by_kind"
            case stallsAbandoned = "stalls abandoned by the client"
        }

        init() {}

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            requests = try container.decode([String: Int].self, forKey: .requests)
            faults = try container.decode([String: Int].self, forKey: .faults)
            byKind = try container.decode([String: [String: Int]].self, forKey: .byKind)
            forwarded = try container.decode(Int.self, forKey: .forwarded)
            total = try container.decode(Int.self, forKey: .total)
            stallsAbandoned = try container.decodeIfPresent(Int.self, forKey: .stallsAbandoned) ?? 0
        }

        /// What happened between `earlier` and this.
        func since(_ earlier: Stats) -> Stats {
            func minus(_ a: [String: Int], _ b: [String: Int]) -> [String: Int] {
                a.reduce(into: [:]) { result, entry in
                    let value = entry.value - (b[entry.key] ?? 0)
                    if value != 0 { result[entry.key] = value }
                }
            }
            var delta = Stats()
            delta.requests = minus(requests, earlier.requests)
            delta.faults = minus(faults, earlier.faults)
            delta.byKind = byKind.reduce(into: [:]) { result, entry in
                let value = minus(entry.value, earlier.byKind[entry.key] ?? [:])
                if !value.isEmpty { result[entry.key] = value }
            }
            delta.forwarded = forwarded - earlier.forwarded
            delta.total = total - earlier.total
            delta.stallsAbandoned = stallsAbandoned - earlier.stallsAbandoned
            return delta
        }

        var faultCount: Int { faults.values.reduce(0, +) }
    }

    /// - Parameters:
    ///   - rate: the fraction of requests of every kind that get a fault.
    ///   - stallSeconds: how long a stall lasts; longer than the client's `stall_timeout_seconds`.
    init(targetHost: String, targetPort: Int, control: String, rate: Double, seed: Int, stallSeconds: Int, maxSeconds: Int = 1800,
         filePath: String = #filePath) throws {
        let script = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/fault-proxy.py").path
        self.control = control
        try FileManager.default.createDirectory(atPath: control, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, targetHost, "\(targetPort)", control, "--rate", "\(rate)", "--seed", "\(seed)",
                             "--stall", "\(stallSeconds)", "--max-seconds", "\(maxSeconds)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        var port: Int?
        for _ in 0..<200 where port == nil {
            port = (try? String(contentsOfFile: "\(control)/port", encoding: .utf8)).flatMap { Int($0) }
            if port == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        guard let port else {
            kill(process.processIdentifier, SIGKILL)
            throw ThrowawayCluster.ClusterError(message: "fault-proxy.py did not report its port within 20 s")
        }
        self.port = port
    }

    var endpoint: String { "http://127.0.0.1:\(port)" }

    func stats() throws -> Stats {
        guard let data = FileManager.default.contents(atPath: "\(control)/stats.json") else { return Stats() }
        return try JSONDecoder().decode(Stats.self, from: data)
    }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<50 where process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
    }
}

/// moto itself, not through the proxy: what a job left in the bucket.
enum S3FaultBucket {
    static func aws(_ s3: TestServices.S3, _ arguments: [String]) async throws -> String {
        let result = try await shell("aws", ["--endpoint-url", s3.endpoint, "--region", s3.region] + arguments + ["--output", "json"], environment: [
            "AWS_ACCESS_KEY_ID": s3.accessKeyID, "AWS_SECRET_ACCESS_KEY": s3.secretAccessKey,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        ])
        guard result.status == 0 else { throw ThrowawayCluster.ClusterError(message: "aws \(arguments): \(result.stderr)") }
        return result.stdout
    }

    /// Open multipart uploads under `prefix`, as "key uploadId".
    static func openUploads(_ s3: TestServices.S3, prefix: String) async throws -> [String] {
        let text = try await aws(s3, ["s3api", "list-multipart-uploads", "--bucket", s3.bucket, "--prefix", prefix])
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
              let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return [] }
        return (json["Uploads"] as? [[String: Any]] ?? []).map { "\($0["Key"] ?? "?") \($0["UploadId"] ?? "?")" }
    }

    /// Object keys under `prefix`.
    static func keys(_ s3: TestServices.S3, prefix: String) async throws -> [String] {
        let text = try await aws(s3, ["s3api", "list-objects-v2", "--bucket", s3.bucket, "--prefix", prefix])
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
              let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return [] }
        return (json["Contents"] as? [[String: Any]] ?? []).compactMap { $0["Key"] as? String }
    }

    /// Removes everything under `prefix` (the test's own), directly on moto.
    static func remove(_ s3: TestServices.S3, prefix: String) async {
        _ = try? await aws(s3, ["s3", "rm", "--recursive", "s3://\(s3.bucket)/\(prefix)/"])
    }
}
