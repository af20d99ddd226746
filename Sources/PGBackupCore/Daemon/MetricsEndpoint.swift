import FlyingFox
import FlyingSocks
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `GET /metrics` on `[metrics] listen`, as a `Service`; everything else is 404. FlyingFox is a
/// small HTTP/1.1 server without SwiftNIO (decisions.md); a scrape every 15 s needs no more.
///
/// The listen address is fixed at start: a reload that changes it is refused (DaemonReload).
public struct MetricsEndpoint: Service {
    let host: String
    let port: Int
    let metrics: DaemonMetrics
    let scheduler: Scheduler?
    let spool: WALSpool?
    let logger: Logger
    /// Called with the bound port once the server listens (the port differs from `port` when it is 0).
    let onListening: @Sendable (Int) -> Void

    public init(host: String, port: Int, metrics: DaemonMetrics, scheduler: Scheduler?, spool: WALSpool?, logger: Logger,
                onListening: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.scheduler = scheduler
        self.spool = spool
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let serverLogger = FlyingFoxLogger(logger: logger)
        let server = HTTPServer(config: .init(address: try address(), timeout: 15, logger: serverLogger))
        let metrics = self.metrics, scheduler = self.scheduler, spool = self.spool, logger = self.logger
        await server.appendRoute("GET /metrics") { _ in
            var pending: [WALSpool.SpooledFile]?
            do {
                pending = try await spool?.pending()
            } catch {
                logger.warning("metrics: cannot read the WAL spool", metadata: ["metrics.error": "\(error)"])
            }
            metrics.refresh(scheduler: scheduler, spool: pending)
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                body: Data(metrics.exposition()))
        }
        // Anything else: 404 from us, not an "unhandled request" error line from FlyingFox.
        await server.appendRoute("*") { _ in HTTPResponse(statusCode: .notFound) }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                try await cancelWhenGracefulShutdown {
                    do {
                        try await withTaskCancellationHandler {
                            try await server.run()
                        } onCancel: {
                            serverLogger.stopping.withLock { $0 = true }
                        }
                    } catch where Task.isCancelled {
                        // The graceful shutdown cancelled it: a normal end.
                    }
                }
            }
            try await server.waitUntilListening(timeout: 10)
            let bound: Int
            switch await server.listeningAddress {
            case .ip4(_, let port), .ip6(_, let port): bound = Int(port)
            default: bound = port
            }
            logger.notice("metrics endpoint listening", metadata: ["metrics.listen": "\(host):\(bound)"])
            onListening(bound)
        }
    }

    private func address() throws -> any SocketAddress {
        guard let port = UInt16(exactly: port) else {
            throw ConfigurationError(.invalidValue, file: nil, key: "metrics.listen", message: "port \(port) is out of range")
        }
        do {
            if host.contains(":") { return try sockaddr_in6.inet6(ip6: host, port: port) }
            if host == "localhost" { return try sockaddr_in.inet(ip4: "127.0.0.1", port: port) }
            return try sockaddr_in.inet(ip4: host, port: port)
        } catch {
            throw ConfigurationError(.invalidValue, file: nil, key: "metrics.listen", message: "\"\(host)\" is not an IP address; use one such as 127.0.0.1 or ::1")
        }
    }
}

/// FlyingFox's log lines into swift-log, one level lower than it says: its "info" is per
/// connection, its "error" a client that went away. Its "critical" "server error" once the
/// daemon stops the server (a CancellationError, or the closed socket) is no news either.
final class FlyingFoxLogger: FlyingSocks.Logging {
    let logger: Logger
    let stopping = Mutex(false)

    init(logger: Logger) { self.logger = logger }

    func logDebug(_ debug: @autoclosure () -> String) { logger.trace("\(debug())", metadata: ["metrics.server": "flyingfox"]) }
    func logInfo(_ info: @autoclosure () -> String) { logger.debug("\(info())", metadata: ["metrics.server": "flyingfox"]) }
    func logWarning(_ warning: @autoclosure () -> String) { logger.info("\(warning())", metadata: ["metrics.server": "flyingfox"]) }
    func logError(_ error: @autoclosure () -> String) { logger.warning("\(error())", metadata: ["metrics.server": "flyingfox"]) }
    func logCritical(_ critical: @autoclosure () -> String) {
        let message = critical()
        if stopping.withLock({ $0 }) || message.contains("CancellationError") {
            logger.debug("\(message)", metadata: ["metrics.server": "flyingfox"])
        } else {
            logger.error("\(message)", metadata: ["metrics.server": "flyingfox"])
        }
    }
}
