import Foundation
@testable import PGBackupCore
import Testing

/// Every pgbackd process starts with glibc limited to 2 malloc arenas and fixed mmap/trim
/// thresholds (issue #17's memory bound), set before main by CShims' constructor; the test
/// process links the same object, so it runs under the same settings.
@Suite struct ProcessMemoryTests {
    static var environmentChoosesItsOwn: Bool {
        let environment = ProcessInfo.processInfo.environment
        return ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"].contains { environment[$0] != nil }
    }

    @Test func theDefaultsAreTheDocumentedOnes() {
        #expect(ProcessMemory.arenaMax == 2)
        #expect(ProcessMemory.mmapThreshold == 256 << 10)
        #expect(ProcessMemory.trimThreshold == 1 << 20)
    }

    #if canImport(Glibc)
    @Test(.disabled(if: environmentChoosesItsOwn, "the environment sets glibc's malloc itself"))
    func theyAreAppliedBeforeMain() {
        #expect(ProcessMemory.allocatorDefaultsApplied)
    }

    /// glibc gives each new thread an arena of its own (up to 8 per core) unless the limit was
    /// set before the first extra arena was made: eight threads allocating at once must still
    /// leave at most 2.
    @Test(.disabled(if: environmentChoosesItsOwn, "the environment sets glibc's malloc itself"))
    func threadsShareAtMostTwoArenas() throws {
        let threads = 8
        let started = DispatchGroup(), release = DispatchSemaphore(value: 0), finished = DispatchGroup()
        for _ in 0..<threads {
            started.enter()
            finished.enter()
            let thread = Thread {
                let block = UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 16)
                started.leave()
                release.wait()  // all hold their block at once, so none can reuse another's arena
                block.deallocate()
                finished.leave()
            }
            thread.start()
        }
        started.wait()
        let arenas = try #require(ProcessMemory.arenaCount)
        for _ in 0..<threads { release.signal() }
        finished.wait()
        #expect(arenas <= ProcessMemory.arenaMax, "glibc made \(arenas) arenas")
    }
    #endif
}
