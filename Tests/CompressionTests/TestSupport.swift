import Compression
import CZlib
import Foundation

/// Deterministic pseudo-random numbers, so a failing test sees the same bytes every run.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

enum TestData {
    /// Text shaped like `pg_dump` COPY data: ids, timestamps, hex keys and prose of skewed word
    /// frequency, so zlib reaches ratios close to those of a real dump (≈2–3).
    static func text(count: Int, seed: UInt64 = 1) -> [UInt8] {
        var random = SplitMix64(state: seed)
        let letters = Array("etaoinshrdlucmfwypvbgkqjxz".utf8)
        let vocabulary: [[UInt8]] = (0..<4096).map { _ in
            (0..<(2 + random.next(below: 9))).map { _ in letters[min(random.next(below: 26), random.next(below: 26))] }
        }
        let hex = Array("0123456789abcdef".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(count + 1024)
        var id = 1
        while output.count < count {
            appendNumber(id, to: &output)
            output.append(contentsOf: [9, 50, 48, 50, 54, 45, 49])  // "\t2026-1"
            appendNumber(random.next(below: 3), to: &output)
            output.append(45)
            appendNumber(10 + random.next(below: 18), to: &output)
            output.append(contentsOf: [32, 49])  // " 1"
            appendNumber(random.next(below: 10), to: &output)
            output.append(58)
            appendNumber(10 + random.next(below: 50), to: &output)
            output.append(58)
            appendNumber(10 + random.next(below: 50), to: &output)
            output.append(contentsOf: [43, 48, 48, 9])  // "+00\t"
            for _ in 0..<16 { output.append(hex[random.next(below: 16)]) }
            output.append(9)
            for word in 0..<(5 + random.next(below: 40)) {
                if word > 0 { output.append(32) }
                let index = (random.next(below: 4096) * random.next(below: 4096)) >> 12
                output.append(contentsOf: vocabulary[index])
            }
            output.append(9)
            appendNumber(random.next(below: 100_000), to: &output)
            output.append(10)
            id += 1
        }
        return Array(output.prefix(count))
    }

    private static func appendNumber(_ number: Int, to output: inout [UInt8]) {
        if number >= 10 { appendNumber(number / 10, to: &output) }
        output.append(48 + UInt8(number % 10))
    }

    static func random(count: Int, seed: UInt64 = 7) -> [UInt8] {
        var random = SplitMix64(state: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }
}

func zlibCRC32(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
}

/// Compresses `data` fed in chunks whose sizes cycle through `chunkSizes`, checking the in-flight
/// bound after every call; returns the whole gzip stream and the finished encoder.
func encodeParallel(
    _ data: [UInt8], level: Int32, engine: GzipEngine = .libdeflate, workers: Int = 2, blockSize: Int? = nil,
    chunkSizes: [Int] = [1 << 20]
) async throws -> (bytes: [UInt8], encoder: ParallelGzipEncoder) {
    var encoder = ParallelGzipEncoder(level: level, engine: engine, workers: workers, blockSize: blockSize)
    var output: [UInt8] = []
    var offset = 0
    var chunk = 0
    while offset < data.count {
        let end = min(data.count, offset + chunkSizes[chunk % chunkSizes.count])
        for piece in try await encoder.compress(Array(data[offset..<end])) { output += piece }
        precondition(encoder.blocksInFlight <= encoder.maxBlocksInFlight)
        offset = end
        chunk += 1
    }
    for piece in try await encoder.finish() { output += piece }
    return (output, encoder)
}

/// Decodes in chunks whose sizes cycle through `chunkSizes`.
func decodeStreaming(_ compressed: [UInt8], chunkSizes: [Int]) throws -> (bytes: [UInt8], decoder: GzipDecoder) {
    var decoder = GzipDecoder()
    var output: [UInt8] = []
    var offset = 0
    var chunk = 0
    while offset < compressed.count {
        let end = min(compressed.count, offset + chunkSizes[chunk % chunkSizes.count])
        output += try decoder.decompress(Array(compressed[offset..<end]))
        offset = end
        chunk += 1
    }
    try decoder.finish()
    return (output, decoder)
}

struct ToolFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs a system tool with `input` as a file argument's content and returns its stdout.
func runTool(_ path: String, _ arguments: [String], input: [UInt8]) throws -> [UInt8] {
    let file = FileManager.default.temporaryDirectory
        .appendingPathComponent("pgbackd-compression-\(UUID().uuidString)")
    try Data(input).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments + [file.path]
    let stdout = Pipe()
    process.standardOutput = stdout
    try process.run()
    let output = try stdout.fileHandleForReading.readToEnd() ?? Data()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ToolFailure(description: "\(path) \(arguments) exited with \(process.terminationStatus)")
    }
    return [UInt8](output)
}

func gunzip(_ compressed: [UInt8]) throws -> [UInt8] {
    try runTool("/bin/gzip", ["-dc"], input: compressed)
}
