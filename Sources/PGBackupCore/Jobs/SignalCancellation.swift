import Dispatch
import Foundation

/// Runs `body`, cancelling it on SIGINT or SIGTERM, and waits for its cleanup (aborting uploads,
/// stopping child processes, raising the job's `cancelled` alert) before throwing
/// ``JobCancelled``: an interrupted command leaves nothing half-committed. A body that finished
/// all the same (the signal came after its last cancellation point) returns its value: its work
/// stands, and its outcome was reported as such. The daemon does not use this: its
/// ServiceGroup owns those signals.
public func withSignalCancellation<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let (signals, continuation) = AsyncStream<Int32>.makeStream()
    let sources = [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { continuation.yield(number) }
        source.resume()
        return source
    }
    defer {
        sources.forEach { $0.cancel() }
        continuation.finish()
    }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            for await _ in signals { return nil }
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            group.cancelAll()
            // Let the body finish its cleanup; its cancellation is the expected outcome.
            while let next = try? await group.next() {
                if let value = next { return value }
            }
            throw JobCancelled(.signal)
        }
        return value
    }
}
