import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A pipe for a child's stdout: both ends close-on-exec (so no other child spawned meanwhile
/// inherits the write end and holds off our end-of-file), and on Linux enlarged to `size` bytes
/// where the system allows it (`F_SETPIPE_SZ`; unprivileged up to /proc/sys/fs/pipe-max-size,
/// 1 MiB by default), so the writer runs on while the reader is busy for a few milliseconds.
struct ChildPipe {
    let readEnd: Int32
    let writeEnd: Int32
    /// The pipe's capacity after the attempt to enlarge it.
    let capacity: Int
    /// Tests: told each new pipe's read end in this task, to check later that it was closed.
    @TaskLocal static var created: (@Sendable (Int32) -> Void)?

    /// `program`: whose stdout it will be, for the error if there is no pipe to be had.
    init(size: Int, program: String) throws {
        var ends: [Int32] = [-1, -1]
        // pipe2(O_CLOEXEC) would close the window between pipe() and fcntl(), but Swift's Glibc
        // module does not declare it (_GNU_SOURCE). The window is harmless here: every child we
        // start goes through swift-subprocess, whose spawn closes every descriptor above 2
        // (posix_spawn_file_actions_addclosefrom_np); close-on-exec is the second line.
        guard pipe(&ends) == 0 else {
            throw ChildProcessError(code: .notStarted, program: program, status: nil, stderr: "", underlying: POSIXErrorCode(rawValue: errno).map { POSIXError($0) })
        }
        readEnd = ends[0]
        writeEnd = ends[1]
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        Self.created?(readEnd)
        #if os(Linux)
        let setPipeSize: Int32 = 1031  // F_SETPIPE_SZ
        let getPipeSize: Int32 = 1032  // F_GETPIPE_SZ
        _ = fcntl(writeEnd, setPipeSize, Int32(clamping: size))
        capacity = Int(max(fcntl(writeEnd, getPipeSize), 0))
        #else
        capacity = 64 << 10
        #endif
    }
}

/// Reads a pipe on a thread of its own, in large reads straight into blocks of `blockSize`
/// bytes, and hands every full block (the last one may be shorter) to one async consumer.
///
/// A dedicated thread, not a task: the loop blocks in read(2) for as long as the writer takes,
/// which must hold neither a cooperative-pool thread nor a dispatch worker, and keeping the pipe
/// drained must never wait for whatever the consumer awaits (compression, hashing, uploads).
///
/// Memory is bounded: the reader holds at most `depth` blocks (read and waiting for the
/// consumer, or being filled), the consumer the one it took last.
/// Each block is an array whose storage read(2) writes into directly: no staging buffer, no copy.
///
/// Large reads from a pipe need a full pipe: read(2) returns what is there, and a reader that
/// keeps up wakes for every write (pg_dump writes 4 KiB at a time through stdio: 600,000
/// wake-ups for a 2.4 GB dump). So after a short read (< `coalesceBelow`) the reader pauses
/// for `coalescePause` and lets the pipe fill; only with a pipe large enough (≥ 1 MiB) that
/// the pause cannot fill it at the rates these children write (a full 1 MiB pipe in 1 ms
/// would be 1 GB/s, and a writer that fast makes every read long, so the reader never pauses).
final class PipeBlockReader: Sendable {
    let blockSize: Int
    private let depth: Int
    private let coalesce: Bool
    static let coalesceBelow = 128 << 10
    static let coalescePause: UInt32 = 1000  // µs
    private let fd: Int32
    /// Blocks the reader may fill before the consumer takes one: `depth` permits.
    /// Starts at 0 and is raised to `depth`: libdispatch traps when a semaphore is freed with a
    /// value below the one it was made with, which a finished reader's would be.
    private let slots = DispatchSemaphore(value: 0)
    private let state = Mutex(State())

    private struct State {
        var ready: [[UInt8]] = []
        /// How the reader ended: nil while it reads; success at end-of-file.
        var end: Result<Void, any Error>?
        /// The consumer stopped (threw or was cancelled): the reader stops at its next step.
        var closed = false
        var cancelled = false
        var waiter: CheckedContinuation<Next, any Error>?
        /// Tells a timer which wait it was set for.
        var waits = 0
        var started = false
        var exited = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var bytesRead = 0
        var reads = 0
    }

    /// Takes ownership of `fd` (closed when the thread ends, or by `closeUnstarted`).
    /// `pipeCapacity`: the pipe's size; short reads pause only when it is ≥ 1 MiB.
    init(fd: Int32, blockSize: Int, depth: Int = 2, pipeCapacity: Int = 0) {
        precondition(blockSize > 0 && depth > 0)
        self.fd = fd
        self.coalesce = pipeCapacity >= 1 << 20
        self.blockSize = blockSize
        self.depth = depth
        for _ in 0..<depth { slots.signal() }
    }

    /// Bytes read and read(2) calls that returned data, so far.
    var statistics: (bytes: Int, reads: Int) { state.withLock { ($0.bytesRead, $0.reads) } }

    func start() {
        state.withLock { $0.started = true }
        let thread = Thread { [self] in
            Thread.current.name = "pgbackd-pipe"  // what perf and top -H show
            run()
        }
        thread.start()
    }

    /// Closes the descriptor of a reader that was never started. A started reader is left
    /// alone: its thread closes the descriptor, and ``waitUntilExited()`` must still wait for
    /// it (marking it exited here let a caller return with the pipe still open; CI's
    /// `noLeaks` caught it under load).
    func closeUnstarted() {
        let started = state.withLock { state in
            let started = state.started
            if !started {
                state.started = true
                state.exited = true
            }
            return started
        }
        if !started { _ = Glibc.close(fd) }
    }

    enum Next {
        case block([UInt8])
        /// No block came within the `idleAfter` given to `next`.
        case idle
        case end
    }

    /// The next block, `.end` after the last one, or `.idle` when `idleAfter` passes first.
    /// Throws the read error, or `CancellationError` when the calling task is cancelled.
    func next(idleAfter: Duration? = nil) async throws -> Next {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Next, any Error>) in
                let outcome: Result<Next, any Error>? = state.withLock { state in
                    if !state.ready.isEmpty { return .success(.block(state.ready.removeFirst())) }
                    if state.cancelled { return .failure(CancellationError()) }
                    if let end = state.end { return end.map { .end } }
                    state.waiter = continuation
                    state.waits += 1
                    if let idleAfter { scheduleIdle(wait: state.waits, after: idleAfter) }
                    return nil
                }
                guard let outcome else { return }
                if case .success(.block) = outcome { slots.signal() }
                continuation.resume(with: outcome)
            }
        } onCancel: {
            let waiter = state.withLock { state in
                state.cancelled = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Resumes wait number `wait` with `.idle` if it is still waiting after `delay`.
    private func scheduleIdle(wait: Int, after delay: Duration) {
        let (seconds, attoseconds) = delay.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { [self] in
            let waiter: CheckedContinuation<Next, any Error>? = state.withLock { state in
                guard state.waits == wait, let waiter = state.waiter else { return nil }
                state.waiter = nil
                return waiter
            }
            waiter?.resume(returning: .idle)
        }
    }

    /// The consumer is done with the stream (usually after an error): the reader stops at its
    /// next step and closes its end, so a writer still writing gets EPIPE.
    func close() {
        state.withLock { $0.closed = true }
        slots.signal()
    }

    /// Returns once the reader thread has ended (immediately if it never started).
    func waitUntilExited() async {
        await withCheckedContinuation { continuation in
            let exited = state.withLock { state in
                if state.exited || !state.started { return true }
                state.exitWaiters.append(continuation)
                return false
            }
            if exited { continuation.resume() }
        }
    }

    private var isClosed: Bool { state.withLock { $0.closed } }

    private func run() {
        var end: Result<Void, any Error> = .success(())
        while true {
            slots.wait()
            if isClosed { break }
            var endOfFile = false
            var failure: (any Error)?
            var reads = 0
            let block = [UInt8](unsafeUninitializedCapacity: blockSize) { buffer, count in
                var filled = 0
                while filled < blockSize {
                    let n = read(fd, buffer.baseAddress! + filled, blockSize - filled)
                    if n > 0 {
                        filled += n
                        reads += 1
                        if coalesce && n < Self.coalesceBelow && filled < blockSize {
                            usleep(Self.coalescePause)
                        }
                    } else if n == 0 {
                        endOfFile = true
                        break
                    } else if errno != EINTR {
                        failure = POSIXErrorCode(rawValue: errno).map { POSIXError($0) } ?? CancellationError()
                        break
                    }
                }
                count = filled
            }
            if !block.isEmpty { deliver(block, reads: reads) }
            if let failure {
                end = .failure(failure)
                break
            }
            if endOfFile { break }
        }
        _ = Glibc.close(fd)
        let (waiter, exitWaiters): (CheckedContinuation<Next, any Error>?, [CheckedContinuation<Void, Never>]) = state.withLock { state in
            state.end = end
            state.exited = true
            defer { state.waiter = nil; state.exitWaiters = [] }
            return (state.ready.isEmpty ? state.waiter : nil, state.exitWaiters)
        }
        waiter?.resume(with: end.map { .end })
        for exitWaiter in exitWaiters { exitWaiter.resume() }
    }

    private func deliver(_ block: [UInt8], reads: Int) {
        let waiter = state.withLock { state in
            state.bytesRead += block.count
            state.reads += reads
            if let waiter = state.waiter {
                state.waiter = nil
                return Optional(waiter)
            }
            state.ready.append(block)
            return nil
        }
        if let waiter {
            slots.signal()
            waiter.resume(returning: .block(block))
        }
    }
}
