import Foundation
import Logging
@testable import PGBackdSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `streamChildOutput`: a child's stdout read on a thread of its own into blocks of a fixed size.
@Suite struct StreamChildOutputTests {
    let logger = Logger(label: "test.child")

    /// Runs `script` under /bin/sh and returns every block it was handed.
    func blocks(of script: String, blockSize: Int, readAhead: Int = 2) async throws -> [[UInt8]] {
        var blocks: [[UInt8]] = []
        try await streamChildOutput(program: "/bin/sh", arguments: ["-c", script], environment: [:], logger: logger,
                                    blockSize: blockSize, readAhead: readAhead) { blocks.append($0) }
        return blocks
    }

    func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-child-\(UUID().uuidString)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Runs `body` and returns the pipes (as "pipe:[inode]") streamChildOutput made in it that are
    /// still open afterwards: by inode, not by count or number, since other tests run alongside.
    func pipesLeftOpen(_ body: () async throws -> Void) async rethrows -> [String] {
        let inodes = Mutex<[String]>([])
        try await ChildPipe.$created.withValue({ fd in
            if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") {
                inodes.withLock { $0.append(link) }
            }
        }) {
            try await body()
        }
        let made = inodes.withLock { $0 }
        #expect(!made.isEmpty, "the hook saw no pipe")
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")
        }
        return made.filter(open.contains)
    }

    func isAlive(_ pid: pid_t) -> Bool {
        // A zombie still answers kill(0); its state in /proc says it is gone.
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !(stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? true)
    }

    @Test("every byte arrives once, in order, in full blocks but the last",
          arguments: [(1 << 20, 3_000_000), (4 << 20, 9 << 20), (4096, 4096 * 5), (1000, 1), (65_536, 200_003)])
    func exactBytes(blockSize: Int, total: Int) async throws {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        let data = [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            for index in 0..<total {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                buffer[index] = UInt8(truncatingIfNeeded: state)
            }
            count = total
        }
        let path = try temporaryFile(data)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let received = try await blocks(of: "cat '\(path)'", blockSize: blockSize)
        #expect(Array(received.joined()) == data)
        #expect(received.dropLast().allSatisfy { $0.count == blockSize })
        #expect((1...blockSize).contains(received.last?.count ?? 0))
        #expect(received.count == (total + blockSize - 1) / blockSize)
    }

    @Test("a writer writing odd sizes with pauses still fills whole blocks")
    func oddWrites() async throws {
        // 97-byte writes, 13 of them per pause, from a shell loop: many short reads per block.
        let script = "i=0; while [ $i -lt 300 ]; do printf '%097d' $i; i=$((i+1)); if [ $((i % 13)) -eq 0 ]; then sleep 0.01; fi; done"
        let received = try await blocks(of: script, blockSize: 1000, readAhead: 1)
        let expected = (0..<300).flatMap { Array(String(format: "%097d", $0).utf8) }
        #expect(Array(received.joined()) == expected)
        #expect(received.dropLast().allSatisfy { $0.count == 1000 })
        #expect(received.count == 30)
    }

    @Test("a child that pauses gets the consumer told it is idle, between its blocks")
    func idleWhilePaused() async throws {
        // The child goes on only once the consumer was told it is idle (or gives up after 30 s).
        let flag = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-idle-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: flag) }
        let script = "printf 0123456789; i=0; while [ ! -e '\(flag)' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; printf abc"
        var events: [String] = []
        try await streamChildOutput(program: "/bin/sh", arguments: ["-c", script], environment: [:], logger: logger,
                                    blockSize: 10, idleAfter: .milliseconds(100), whenIdle: {
                                        events.append("idle")
                                        _ = FileManager.default.createFile(atPath: flag, contents: nil)
                                    }) { block in
            events.append(String(decoding: block, as: UTF8.self))
        }
        #expect(events.first == "0123456789")
        #expect(events.last == "abc")
        #expect(events.dropFirst().dropLast().allSatisfy { $0 == "idle" })
        #expect(events.count >= 3, "\(events)")
    }

    @Test("no output: no block at all")
    func emptyOutput() async throws {
        #expect(try await blocks(of: "exit 0", blockSize: 1 << 20).isEmpty)
    }

    @Test("a failing child's error carries its exit code and stderr, after the output it wrote")
    func childFailure() async throws {
        var received: [UInt8] = []
        do {
            try await streamChildOutput(program: "/bin/sh", arguments: ["-c", "printf partial; echo 'pg_dump: error: connection refused' >&2; exit 3"],
                                        environment: [:], logger: logger, blockSize: 4096) { received += $0 }
            Issue.record("no error")
        } catch let error as ChildProcessError {
            #expect(error.code == .failed)
            #expect(error.status == "exit code 3")
            #expect(error.stderr.contains("connection refused"))
            #expect(error.description.contains("connection refused"))
        }
        #expect(received == Array("partial".utf8))
    }

    @Test("a program that cannot start is notStarted, and leaves no pipe open")
    func notStarted() async throws {
        let leftOpen = await pipesLeftOpen {
            do {
                try await streamChildOutput(program: "/nonexistent/pg_dump", arguments: [], environment: [:], logger: logger) { _ in }
                Issue.record("no error")
            } catch let error as ChildProcessError {
                #expect(error.code == .notStarted)
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        #expect(leftOpen.isEmpty)
    }

    @Test("runs that succeed, fail or are stopped by their consumer leave no pipe open")
    func noLeaks() async throws {
        struct Stop: Error {}
        let leftOpen = await pipesLeftOpen {
            for _ in 0..<5 {
                #expect((try? await blocks(of: "echo hello", blockSize: 4096)) == [Array("hello\n".utf8)])
                #expect((try? await blocks(of: "echo oops >&2; exit 1", blockSize: 4096)) == nil)
                await #expect(throws: Stop.self) {
                    try await streamChildOutput(program: "/bin/sh", arguments: ["-c", "yes"], environment: [:], logger: logger, blockSize: 4096) { _ in throw Stop() }
                }
            }
        }
        #expect(leftOpen.isEmpty)
    }

    @Test("when the consumer throws, the child's process group is stopped and the error is the consumer's")
    func consumerThrows() async throws {
        struct Stop: Error {}
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-child-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        // The child writes forever from a background job of its own group (what teardown must reach too).
        let script = "yes 0123456789 & echo $! > '\(pidFile)'; wait"
        var blocksSeen = 0
        await #expect(throws: Stop.self) {
            try await streamChildOutput(program: "/bin/sh", arguments: ["-c", script], environment: [:], logger: logger, blockSize: 1 << 16) { _ in
                blocksSeen += 1
                if blocksSeen == 3 { throw Stop() }
            }
        }
        #expect(blocksSeen == 3)
        let grandchild = try #require(pid_t(String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(!isAlive(grandchild))
    }

    @Test("cancelling the task stops a silent child and returns")
    func cancellation() async throws {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-child-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        let logger = self.logger
        let outcome = await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask {
                do {
                    try await streamChildOutput(program: "/bin/sh", arguments: ["-c", "echo $$ > '\(pidFile)'; exec sleep 600"],
                                                environment: [:], logger: logger) { _ in }
                    return nil
                } catch {
                    return error
                }
            }
            // Wait until the child is running, then cancel.
            while !FileManager.default.fileExists(atPath: pidFile) || ((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "").isEmpty {
                try? await Task.sleep(for: .milliseconds(20))
            }
            group.cancelAll()
            return await group.next() ?? nil
        }
        #expect(outcome != nil, "cancellation must end the call with an error")
        let pid = try #require(pid_t(String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(!isAlive(pid))
    }

    @Test("the pipe is enlarged where the system allows it")
    func pipeSize() throws {
        let pipe = try ChildPipe(size: 1 << 20, program: "test")
        defer { close(pipe.readEnd); close(pipe.writeEnd) }
        let limit = (try? String(contentsOfFile: "/proc/sys/fs/pipe-max-size", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        if limit >= 1 << 20 || getuid() == 0 {
            #expect(pipe.capacity == 1 << 20)
        } else {
            #expect(pipe.capacity >= 4096)
        }
        #expect(fcntl(pipe.readEnd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(pipe.writeEnd, F_GETFD) & FD_CLOEXEC != 0)
    }
}
