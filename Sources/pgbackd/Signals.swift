import Dispatch
import Foundation

struct Interrupted: Error, CustomStringConvertible {
    var description: String { "interrupted by a signal; nothing was committed" }
}

/// Runs `body`, cancelling it on SIGINT or SIGTERM, and waits for its cleanup (aborting uploads,
/// stopping child processes) before returning: an interrupted run leaves nothing half-committed.
func withSignalCancellation<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
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
            // Let the body finish its cleanup; its CancellationError is the expected outcome.
            while (try? await group.next()) != nil {}
            throw Interrupted()
        }
        return value
    }
}
