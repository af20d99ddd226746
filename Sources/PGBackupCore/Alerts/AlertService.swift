import Foundation
import Logging
import ServiceLifecycle

/// The daemon's alert delivery, as a `Service`: jobs, the WAL watcher and the health monitor hand
/// their events over (``AlertDispatcher`` with this outbox) and go on at once; the service runs
/// the hooks, each event in a child task. A slow pager script or a webhook retrying for a minute
/// therefore never holds a backup's job slot, nor the database gate the next job waits for.
///
/// It is the first service of the group, so a graceful shutdown stops it last: what the other
/// services raise while stopping (`daemon.stopping`, a cancelled job's failure) is still
/// delivered. Then it takes no more events and waits for the queued ones; the group's shutdown
/// deadline cancels hooks that outlive it (their programs are killed, webhooks aborted).
public final class AlertService: Service, Sendable {
    struct Entry: Sendable {
        /// The dispatcher as the raiser configured it (hooks of the configuration then in force).
        var dispatcher: AlertDispatcher
        var event: AlertEvent
    }

    private let stream: AsyncStream<Entry>
    private let continuation: AsyncStream<Entry>.Continuation
    let logger: Logger

    public init(logger: Logger) {
        (stream, continuation) = AsyncStream.makeStream(of: Entry.self)
        self.logger = logger
    }

    /// Queues `event` for `dispatcher`'s hooks; false when the service has stopped taking events.
    @discardableResult
    func enqueue(_ event: AlertEvent, for dispatcher: AlertDispatcher) -> Bool {
        if case .enqueued = continuation.yield(Entry(dispatcher: dispatcher, event: event)) { return true }
        logger.warning("alert raised after the alert service stopped; delivering it in place", metadata: ["alert.event": "\(event.event)"])
        return false
    }

    public func run() async throws {
        let continuation = self.continuation
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await entry in stream {
                    group.addTask { await entry.dispatcher.send(entry.event) }
                }
            }
        } onGracefulShutdown: {
            // Ends the loop once the queued events are taken; the group waits for their hooks.
            continuation.finish()
        }
    }
}
