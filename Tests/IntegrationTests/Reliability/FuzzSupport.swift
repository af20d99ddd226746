import Foundation
import Synchronization
import Testing

/// SplitMix64: a small seeded generator, so a fuzz run that found something is repeated exactly
/// with `PGBACKD_FUZZ_SEED=<the printed seed>`.
struct FuzzRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }
    mutating func pick<T>(_ choices: [T]) -> T { choices[int(0..<choices.count)] }
    mutating func byte() -> UInt8 { UInt8.random(in: 0...255, using: &self) }
}

/// What one fuzz input did to the parser under test.
enum FuzzOutcome: Sendable {
    /// Parsed (the input was valid after all).
    case accepted
    /// Refused with the product's coded error and a clear message.
    case refused
    /// Refused unclearly (another error type, an empty message, a raw decoder dump), or a
    /// property of the result that must hold did not: the why.
    case unclear(String)
}

/// Runs a parser over generated inputs on a thread of its own, each input bounded in CPU time and,
/// by a watchdog, in wall time (5 × `limit`): an input that takes longer is a hang, reported with the seed and its
/// index. A crash ends the test process, which fails the run by itself.
enum FuzzRunner {
    struct Result: Sendable {
        var inputs = 0
        var accepted = 0
        var refused = 0
        /// Unclear errors and broken properties, by input.
        var unclear: [(index: Int, why: String, input: String)] = []
        var hangs: [(index: Int, input: String)] = []
        var slowest: Duration = .zero
        var missed: Int { unclear.count + hangs.count }
    }

    /// CPU time the calling thread has used.
    static func threadCPUTime() -> Duration {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return .seconds(now.tv_sec) + .nanoseconds(now.tv_nsec)
    }

    /// The run's seed: `PGBACKD_FUZZ_SEED`, else random. Printed, so any finding can be replayed.
    static func seed(_ name: String) -> UInt64 {
        let seed = ProcessInfo.processInfo.environment["PGBACKD_FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        print("[fuzz] \(name): seed \(seed) (replay with PGBACKD_FUZZ_SEED=\(seed))")
        return seed
    }

    private struct Progress {
        var index = -1
        var started = ContinuousClock.now
        var done = false
    }

    /// What the worker and the watchdog share.
    private final class State: Sendable {
        let progress = Mutex(Progress())
        let result = Mutex(Result())
        let finished = Mutex(false)
    }

    static func run<Input: Sendable>(
        _ name: String, inputs count: Int, seed: UInt64, limit: Duration = .seconds(2),
        describe: @escaping @Sendable (Input) -> String,
        generate: @escaping @Sendable (inout FuzzRandom, Int) -> Input,
        check: @escaping @Sendable (Input) -> FuzzOutcome
    ) async -> Result {
        let state = State()
        let clock = ContinuousClock()
        let result: Result = await withCheckedContinuation { continuation in
            let resume: @Sendable (Result) -> Void = { result in
                let first = state.finished.withLock { done in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume(returning: result) }
            }
            // PGBACKD_FUZZ_LAST=<file>: each input is written there before it is tried, so the
            // one that crashed the process can be read back.
            let last = ProcessInfo.processInfo.environment["PGBACKD_FUZZ_LAST"]
            Thread {
                var random = FuzzRandom(seed: seed)
                for index in 0..<count {
                    let input = generate(&random, index)
                    if let last {
                        let bytes = (input as? [UInt8]) ?? Array(describe(input).utf8)
                        _ = FileManager.default.createFile(atPath: last, contents: Data(bytes))
                    }
                    state.progress.withLock { $0 = Progress(index: index, started: clock.now) }
                    // The bound is on this thread's CPU time: on a loaded 2-core machine a parse can
                    // wait seconds for a core (the long run saw 2 s on 500-byte manifests), which is
                    // no hang. One that blocks instead of spinning is the watchdog's, on wall time.
                    let started = Self.threadCPUTime()
                    let outcome = check(input)
                    let elapsed = Self.threadCPUTime() - started
                    state.result.withLock { result in
                        result.inputs += 1
                        result.slowest = max(result.slowest, elapsed)
                        switch outcome {
                        case .accepted: result.accepted += 1
                        case .refused: result.refused += 1
                        case .unclear(let why):
                            if result.unclear.count < 20 { result.unclear.append((index, why, String(describe(input).prefix(600)))) } else { result.unclear.append((index, why, "")) }
                        }
                        // A parse that finished but took longer than the bound counts as a hang too.
                        if elapsed > limit { result.hangs.append((index, String(describe(input).prefix(600)))) }
                    }
                }
                state.progress.withLock { $0.done = true }
                resume(state.result.withLock { $0 })
            }.start()
            // The watchdog: polls the worker; a parse stuck past the bound ends the test with it.
            Thread {
                while !state.finished.withLock({ $0 }) {
                    Thread.sleep(forTimeInterval: 0.1)
                    let stuck = state.progress.withLock { progress -> Int? in
                        guard !progress.done, progress.index >= 0, progress.started.duration(to: clock.now) > limit * 5 else { return nil }
                        return progress.index
                    }
                    if let stuck {
                        var result = state.result.withLock { $0 }
                        result.hangs.append((stuck, "(still running: regenerate it with the seed)"))
                        resume(result)
                        return
                    }
                }
            }.start()
        }
        print("[fuzz] \(name): \(result.inputs) inputs, \(result.accepted) accepted, \(result.refused) refused clearly, \(result.unclear.count) unclear, \(result.hangs.count) hangs; slowest \(result.slowest)")
        for finding in result.unclear.prefix(10) {
            Issue.record("\(name) (seed \(seed), input \(finding.index)): \(finding.why)\n  input: \(finding.input.debugDescription)")
        }
        for hang in result.hangs.prefix(10) {
            Issue.record("\(name) (seed \(seed), input \(hang.index)): took longer than \(limit)\n  input: \(hang.input.debugDescription)")
        }
        return result
    }

    /// Why `message` is not a clear error text, or nil when it is: empty, or a decoder's or
    /// Foundation's internal dump that the input itself did not contain.
    static func unclearMessage(_ message: String, input: String) -> String? {
        if message.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return "an empty error message" }
        for marker in ["DecodingError", "NSCocoaErrorDomain", "codingPath:", "CodingKeys(", "_JSONKey(", "Swift.", "Foundation.", "Optional(", "TOMLKit."]
        where message.contains(marker) && !input.contains(marker) {
            return "a raw internal description (\(marker)) in the message: \(message.prefix(400))"
        }
        return nil
    }
}

/// Mutations of valid inputs, on bytes.
enum Mutate {
    static let hugeNumbers = ["99999999999999999999999999", "-9223372036854775809", "9223372036854775807", "-1", "0", "1e400",
                              "-0", "0x7fffffffffffffff", "1_000_000_000_000", "nan", "inf", "18446744073709551616", "4294967296"]

    static func apply(_ bytes: [UInt8], _ random: inout FuzzRandom, rounds: Int? = nil) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<(rounds ?? random.int(1...4)) {
            bytes = once(bytes, &random)
        }
        return bytes
    }

    static func once(_ bytes: [UInt8], _ random: inout FuzzRandom) -> [UInt8] {
        var bytes = bytes
        let position = bytes.isEmpty ? 0 : random.int(0..<bytes.count)
        switch random.int(0..<13) {
        case 0: // byte flip
            if !bytes.isEmpty { bytes[position] ^= UInt8(1) << UInt8(random.int(0..<8)) }
        case 1: // a random byte
            if !bytes.isEmpty { bytes[position] = random.byte() }
        case 2: // truncation
            bytes = Array(bytes.prefix(position))
        case 3: // a line duplicated (a key twice, a table twice)
            let lines = lines(bytes)
            if !lines.isEmpty {
                let line = random.int(0..<lines.count)
                var copy = lines
                copy.insert(lines[line], at: random.int(0...lines.count))
                bytes = Array(copy.joined(separator: [10]))
            }
        case 4: // a line removed
            var lines = lines(bytes)
            if !lines.isEmpty {
                lines.remove(at: random.int(0..<lines.count))
                bytes = Array(lines.joined(separator: [10]))
            }
        case 5: // a number replaced by a huge or odd one
            if let range = digits(in: bytes, near: position) {
                bytes.replaceSubrange(range, with: Array(random.pick(hugeNumbers).utf8))
            } else {
                bytes.insert(contentsOf: Array(random.pick(hugeNumbers).utf8), at: position)
            }
        case 6: // invalid UTF-8
            bytes.insert(contentsOf: random.pick([[0xC3, 0x28], [0xFF], [0xFE, 0xFF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xC0, 0xAF]]), at: position)
        case 7: // NUL
            bytes.insert(0, at: position)
        case 8: // a very long run
            let filler = random.pick(["a", "9", "\\", "\"", "[", "{", "<", "&", "é", " ", "'", "=", "%"])
            bytes.insert(contentsOf: Array(String(repeating: filler, count: random.pick([255, 4096, 20_000, 70_000])).utf8), at: position)
        case 9: // a slice repeated (nesting, duplicated structure)
            if !bytes.isEmpty {
                let end = min(bytes.count, position + random.int(1...64))
                let slice = Array(bytes[position..<end])
                for _ in 0..<random.pick([2, 10, 200]) { bytes.insert(contentsOf: slice, at: position) }
            }
        case 10: // two regions swapped
            if bytes.count > 4 {
                let a = random.int(0..<bytes.count / 2), b = random.int(bytes.count / 2..<bytes.count)
                bytes.swapAt(a, b)
            }
        case 11: // a slice deleted
            if !bytes.isEmpty {
                let end = min(bytes.count, position + random.int(1...32))
                bytes.removeSubrange(position..<end)
            }
        default: // a control or special character
            bytes.insert(random.pick([9, 13, 11, 12, 27, 0x7F, 0x22, 0x27, 0x5C, 0x23, 0x0A]), at: position)
        }
        return bytes
    }

    static func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.split(separator: 10, omittingEmptySubsequences: false).map(Array.init)
    }

    /// The run of ASCII digits at or after `position`.
    static func digits(in bytes: [UInt8], near position: Int) -> Range<Int>? {
        guard let start = bytes[position...].firstIndex(where: { (48...57).contains($0) }) else { return nil }
        let end = bytes[start...].firstIndex { !(48...57).contains($0) } ?? bytes.count
        return start..<end
    }

    /// `depth` opening brackets, some content, and (sometimes) the closing ones.
    static func nesting(_ open: String, _ close: String, depth: Int, inner: String = "1", closed: Bool = true) -> String {
        String(repeating: open, count: depth) + inner + (closed ? String(repeating: close, count: depth) : "")
    }
}

extension String {
    /// The bytes as a test shows them: valid UTF-8 as text, the rest escaped.
    init(fuzzBytes bytes: [UInt8]) {
        self = String(decoding: bytes, as: UTF8.self)
    }
}
