/// Deterministic synthetic data, shared by the compression tests and the compression benchmark
/// (bench/compression): the same bytes every run, so a failing test sees them again and the
/// benchmark's figures stay comparable across runs and machines.

/// Deterministic pseudo-random numbers, so a failing test sees the same bytes every run.
public struct SplitMix64 {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

public enum TestData {
    /// Text shaped like `pg_dump` COPY data: ids, timestamps, hex keys and prose of skewed word
    /// frequency, so zlib reaches ratios close to those of a real dump (≈2–3).
    public static func text(count: Int, seed: UInt64 = 1) -> [UInt8] {
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

    public static func random(count: Int, seed: UInt64 = 7) -> [UInt8] {
        var random = SplitMix64(state: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }
}
