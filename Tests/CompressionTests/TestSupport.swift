import Compression
import CZlib
import Foundation

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
    output += try decoder.finish()
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
