import Foundation
import Synchronization

/// Things a test made that must go when it ends, passed or not: databases and directories.
/// (`defer` cannot await, and a stray `Task` in a defer may never run before the process exits.)
final class Cleanup: Sendable {
    private let databases = Mutex<[String]>([])
    private let paths = Mutex<[String]>([])
    let postgres: TestServices.Postgres?

    init(postgres: TestServices.Postgres?) {
        self.postgres = postgres
    }

    func dropDatabase(_ name: String) { databases.withLock { $0.append(name) } }
    func remove(_ path: String) { paths.withLock { $0.append(path) } }

    fileprivate func run() async {
        if let postgres {
            for name in databases.withLock({ $0 }) { await DaylogFixture.dropDatabase(postgres, name) }
        }
        for path in paths.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
    }
}

/// Runs a test body and then its cleanup, whichever way the body ends.
func withCleanup<T>(_ postgres: TestServices.Postgres? = nil, _ body: (Cleanup) async throws -> T) async throws -> T {
    let cleanup = Cleanup(postgres: postgres)
    do {
        let result = try await body(cleanup)
        await cleanup.run()
        return result
    } catch {
        await cleanup.run()
        throw error
    }
}
