import Dispatch
import Synchronization

/// Runs blocking C calls (libpq, libcurl, zlib, file I/O) on a dispatch queue, never on Swift's
/// cooperative thread pool, which has only as many threads as cores and stalls when one blocks.
///
/// Queues made with `DispatchQueue(label:)` target the overcommitting root queue, so a blocked
/// call there gets a thread of its own instead of holding back other work.
public func offload<T: Sendable>(
    on queue: DispatchQueue,
    _ body: @escaping @Sendable () throws -> T
) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        queue.async {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// Work started now on a queue, whose result is awaited later: the building block for keeping
/// several compressions or part uploads in flight from one async function without stray tasks.
public final class OffloadedWork<Value: Sendable>: Sendable {
    private enum State {
        case running(waiters: [CheckedContinuation<Value, any Error>])
        case done(Result<Value, any Error>)
    }
    private let state = Mutex<State>(.running(waiters: []))

    public init(on queue: DispatchQueue, _ body: @escaping @Sendable () throws -> Value) {
        queue.async { [self] in
            let result = Result { try body() }
            let waiters: [CheckedContinuation<Value, any Error>] = state.withLock { state in
                guard case .running(let waiters) = state else { return [] }
                state = .done(result)
                return waiters
            }
            for waiter in waiters { waiter.resume(with: result) }
        }
    }

    /// The result, suspending until the work is done.
    public var value: Value {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let finished: Result<Value, any Error>? = state.withLock { state in
                    switch state {
                    case .done(let result):
                        return result
                    case .running(var waiters):
                        waiters.append(continuation)
                        state = .running(waiters: waiters)
                        return nil
                    }
                }
                if let finished { continuation.resume(with: finished) }
            }
        }
    }
}
