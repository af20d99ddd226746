import Compression
import CZlib
import Foundation
import SyntheticData

/// Throughput of the parallel encoder (both engines) against zlib on one stream, `gzip` and
/// `pigz`, on text shaped like `pg_dump` output; prints a Markdown table. Build and run it in release:
///
///     swift run -c release --scratch-path .build-compression pgbackd-bench-compression
///
/// `PGBACKD_BENCH_MB` sets the data size (default 200), `PGBACKD_BENCH_RUNS` how many times each
/// row runs (default 3; the fastest run is shown, as the others were slowed by something else).
/// CPU seconds are printed too (process-wide for our rows, the child's for tools): MB per CPU
/// second stays comparable when the machine is shared. bench/compression/README.md has results.
@main
struct CompressionBench {
    struct Row {
        var name: String
        var seconds: Double
        var cpuSeconds: Double
        var rawBytes: Int
        var compressedBytes: Int
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let megabytes = Int(environment["PGBACKD_BENCH_MB"] ?? "") ?? 200
        let runs = max(1, Int(environment["PGBACKD_BENCH_RUNS"] ?? "") ?? 3)
        let data = TestData.text(count: megabytes << 20)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-bench-\(UUID().uuidString)")
        try Data(data).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        // Reference stream for the decoder row.
        let level6Output = try await encode(data, level: 6, engine: .libdeflate, workers: 2)
        var jobs: [() async throws -> Row] = []
        for level in [1, 6] as [Int32] {
            jobs.append({
                measure("zlib one stream, level \(level)", raw: data.count) { Gzip.compress(data, level: level).count }
            })
            for engine in GzipEngine.allCases {
                for workers in [1, 2] {
                    let name = "parallel \(engine.rawValue), level \(level), \(workers) worker(s)"
                    jobs.append({
                        try await measureAsync(name, raw: data.count) {
                            try await encode(data, level: level, engine: engine, workers: workers).reduce(0) { $0 + $1.count }
                        }
                    })
                }
            }
            jobs.append({
                try tool("gzip -\(level)", "/bin/gzip", ["-\(level)", "-c"], file: file, raw: data.count)
            })
            jobs.append({
                try tool("pigz -\(level) -p 2", "/usr/bin/pigz", ["-\(level)", "-p", "2", "-c"], file: file, raw: data.count)
            })
        }
        jobs.append({
            try measure("GzipDecoder (libdeflate level 6 stream)", raw: data.count) {
                var decoded = 0
                var decoder = GzipDecoder()
                for chunk in level6Output {
                    var offset = 0
                    while offset < chunk.count {  // 256 KiB pieces, as an object-storage read gives
                        let end = min(chunk.count, offset + 256 * 1024)
                        decoded += try decoder.decompress(Array(chunk[offset..<end])).count
                        offset = end
                    }
                }
                decoded += try decoder.finish().count
                guard decoded == data.count else { throw Failure(description: "decoded \(decoded) bytes of \(data.count)") }
                return level6Output.reduce(0) { $0 + $1.count }
            }
        })
        // What computing the CRC in the ordered stage would cost the caller's thread.
        jobs.append({
            try measure("zlib crc32 alone", raw: data.count) {
                let checksum = data.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) }
                guard checksum != 0 else { throw Failure(description: "crc32 of the data is 0") }
                return 0
            }
        })

        // Rounds rather than back-to-back repeats: a burst of load elsewhere spoils one run of a few
        // rows, not every run of one row. Each row keeps its fastest run.
        var rows: [Row?] = Array(repeating: nil, count: jobs.count)
        for _ in 0..<runs {
            for (index, job) in jobs.enumerated() {
                let row = try await job()
                if let fastest = rows[index], fastest.seconds <= row.seconds { continue }
                rows[index] = row
            }
        }

        print("\(megabytes) MiB of pg_dump-like text, \(ProcessInfo.processInfo.activeProcessorCount) cores, best of \(runs)")
        print("| run | wall s | CPU s | MB/s (wall) | MB/s per CPU s | ratio raw/compressed |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for row in rows.compactMap({ $0 }) {
            let mb = Double(row.rawBytes) / 1_000_000
            let ratio = row.compressedBytes == 0 ? "" : String(format: "%.4f", Double(row.rawBytes) / Double(row.compressedBytes))
            print("| \(row.name) | " + String(format: "%.2f | %.2f | %.1f | %.1f", row.seconds, row.cpuSeconds, mb / row.seconds, mb / row.cpuSeconds)
                + " | \(ratio) |")
        }
    }

    /// Feeds 256 KiB chunks, the size of a pipe read from pg_dump.
    static func encode(_ data: [UInt8], level: Int32, engine: GzipEngine, workers: Int) async throws -> [[UInt8]] {
        var encoder = ParallelGzipEncoder(level: level, engine: engine, workers: workers)
        var output: [[UInt8]] = []
        var offset = 0
        while offset < data.count {
            let end = min(data.count, offset + 256 * 1024)
            output += try await encoder.compress(Array(data[offset..<end]))
            offset = end
        }
        output += try await encoder.finish()
        return output
    }

    static func measure(_ name: String, raw: Int, _ body: () throws -> Int) rethrows -> Row {
        let (cpu0, start) = (cpuSeconds(), ContinuousClock.now)
        let compressed = try body()
        return Row(name: name, seconds: seconds(since: start), cpuSeconds: cpuSeconds() - cpu0,
                   rawBytes: raw, compressedBytes: compressed)
    }

    static func measureAsync(_ name: String, raw: Int, _ body: @Sendable () async throws -> Int) async throws -> Row {
        let (cpu0, start) = (cpuSeconds(), ContinuousClock.now)
        let compressed = try await body()
        return Row(name: name, seconds: seconds(since: start), cpuSeconds: cpuSeconds() - cpu0,
                   rawBytes: raw, compressedBytes: compressed)
    }

    static func tool(_ name: String, _ path: String, _ arguments: [String], file: URL, raw: Int) throws -> Row {
        let output = file.appendingPathExtension("gz")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments + [file.path]
        process.standardOutput = handle
        let (cpu0, start) = (cpuSeconds(children: true), ContinuousClock.now)
        try process.run()
        process.waitUntilExit()
        let elapsed = seconds(since: start)
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(path) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        let size = try FileManager.default.attributesOfItem(atPath: output.path)[.size] as? Int ?? 0
        return Row(name: name, seconds: elapsed, cpuSeconds: cpuSeconds(children: true) - cpu0,
                   rawBytes: raw, compressedBytes: size)
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// User + system CPU of this process (all threads), or of its waited-for children.
    static func cpuSeconds(children: Bool = false) -> Double {
        var usage = rusage()
        _ = getrusage((children ? RUSAGE_CHILDREN : RUSAGE_SELF).rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
