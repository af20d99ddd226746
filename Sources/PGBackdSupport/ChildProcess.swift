import Foundation
import Logging
import Subprocess
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A child process (pg_dump, pg_dumpall, pg_restore, pg_ctl…) that failed to start or exited badly.
public struct ChildProcessError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        case notStarted
        case failed
        public var description: String { rawValue }
    }
    public var code: Code
    /// The program's name, e.g. `pg_dump`.
    public var program: String
    /// How it ended, e.g. `exit code 1` or `signal 9`.
    public var status: String?
    /// The end of what it wrote to stderr: its own explanation.
    public var stderr: String
    public var underlying: (any Error)?

    public var description: String {
        var text = code == .notStarted ? "could not start \(program)" : "\(program) failed (\(status ?? "unknown status"))"
        let lastLines = stderr.split(separator: "\n").suffix(3).joined(separator: " / ")
        if !lastLines.isEmpty { text += ": \(lastLines)" }
        if let underlying { text += ": \(underlying)" }
        return text
    }
}

/// Runs a program whose stdout is a stream of bytes to handle as it arrives. Arguments never hold
/// secrets: connection settings travel in `environment` (see `Conninfo.environment()`).
///
/// The program writes into a pipe of ours (enlarged to 1 MiB where allowed), which a thread of
/// its own (``PipeBlockReader``) reads in large reads straight into blocks of `blockSize` bytes:
/// `consume` gets every block full except the last, which may be shorter (or none at all for an
/// empty output). While `consume` is busy, up to `readAhead` more blocks are read (the one being
/// filled included), then the reader waits: `(readAhead + 1) × blockSize` at most here, whatever
/// the output's size.
///
/// `whenIdle`, if given, is called when no block has come for `idleAfter` (and again after each
/// further `idleAfter` without one): a consumer holding finished work back (compressed blocks
/// not yet written) hands it on there, so a child that pauses does not hold the stream up.
///
/// When `consume` throws or the task is cancelled, the child's process group gets SIGTERM, then
/// SIGKILL after five seconds, and nothing is left running, the reader thread included.
/// - Returns: what the program wrote to stderr (up to 256 KiB), e.g. pg_basebackup's WAL positions.
@discardableResult
public func streamChildOutput(
    program: String,
    arguments: [String],
    environment: [String: String],
    logger: Logger,
    blockSize: Int = 1 << 20,
    readAhead: Int = 2,
    idleAfter: Duration = .milliseconds(100),
    whenIdle: (() async throws -> Void)? = nil,
    consume: (_ block: [UInt8]) async throws -> Void
) async throws -> String {
    var options = PlatformOptions()
    // Its own process group, so teardown reaches whatever the program started too.
    options.processGroupID = 0
    options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(5))]
    let name = (program as NSString).lastPathComponent
    logger.debug("starting child process", metadata: ["child.program": "\(program)", "child.arguments": "\(arguments)"])
    let pipe = try ChildPipe(size: 1 << 20, program: name)
    let writeEnd = WriteEnd(pipe.writeEnd)
    let reader = PipeBlockReader(fd: pipe.readEnd, blockSize: blockSize, depth: readAhead, pipeCapacity: pipe.capacity)
    let result: ExecutionResult<Void, FileDescriptorOutput, StringOutput<UTF8>>
    do {
        defer { writeEnd.close() }
        result = try await run(
            .path(FilePath(program)),
            arguments: Arguments(arguments),
            environment: .inherit.updating(Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(rawValue: $0.key)!, Optional($0.value)) })),
            platformOptions: options,
            input: .none,
            output: .fileDescriptor(FileDescriptor(rawValue: pipe.writeEnd), closeAfterSpawningProcess: false),
            error: .string(limit: 256 * 1024)
        ) { execution in
            // The child has its copy now; ours must go, or the reader never sees end-of-file.
            writeEnd.close()
            reader.start()
            do {
                loop: while true {
                    switch try await reader.next(idleAfter: whenIdle == nil ? nil : idleAfter) {
                    case .block(let block): try await consume(block)
                    case .idle: try await whenIdle?()
                    case .end: break loop
                    }
                }
            } catch {
                reader.close()
                try? execution.send(signal: .terminate, toProcessGroup: true)
                throw error
            }
        }
    } catch let error as SubprocessError {
        reader.close()
        reader.closeUnstarted()
        await reader.waitUntilExited()
        throw ChildProcessError(code: .notStarted, program: name, status: nil, stderr: "", underlying: error)
    } catch {
        // The process group is gone (run's teardown): the reader meets end-of-file, or its close.
        reader.close()
        reader.closeUnstarted()
        await reader.waitUntilExited()
        throw error
    }
    await reader.waitUntilExited()
    let statistics = reader.statistics
    logger.debug("child output read", metadata: ["child.program": "\(name)", "child.bytes": "\(statistics.bytes)",
                                                  "child.reads": "\(statistics.reads)", "child.pipe_bytes": "\(pipe.capacity)"])
    let stderr = result.standardError
    switch result.terminationStatus {
    case .exited(0):
        if !stderr.isEmpty { logger.debug("child process stderr", metadata: ["child.program": "\(name)", "child.stderr": "\(stderr)"]) }
        return stderr
    case .exited(let code):
        throw ChildProcessError(code: .failed, program: name, status: "exit code \(code)", stderr: stderr)
    case .signaled(let signal):
        throw ChildProcessError(code: .failed, program: name, status: "killed by signal \(signal)", stderr: stderr)
    }
}

/// Our copy of a child's stdout pipe's write end, closed once (after the spawn, or on failure).
private final class WriteEnd: Sendable {
    private let fd: Mutex<Int32>
    init(_ fd: Int32) { self.fd = Mutex(fd) }
    func close() {
        let fd = self.fd.withLock { fd in
            defer { fd = -1 }
            return fd
        }
        if fd >= 0 { _ = Glibc.close(fd) }
    }
}

/// Runs a program to completion and returns its stdout as text (for `--version` and the like).
public func runChild(program: String, arguments: [String], environment: [String: String] = [:]) async throws -> String {
    var output: [UInt8] = []
    try await streamChildOutput(program: program, arguments: arguments, environment: environment, logger: Logger(label: "pgbackd.child")) {
        output.append(contentsOf: $0)
    }
    return String(decoding: output, as: UTF8.self)
}

/// How a program that ran to completion ended, with what it printed.
public struct ProgramOutcome: Sendable {
    public var status: TerminationStatus
    public var stdout: String
    public var stderr: String
    /// It ran out of its time and was torn down (SIGTERM to its process group, then SIGKILL).
    public var timedOut = false
    public var succeeded: Bool { status == .exited(0) && !timedOut }
    public var statusText: String {
        switch status {
        case .exited(let code): "exit code \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// Runs a program and collects its output, in its own process group with the same teardown as
/// ``streamChildOutput`` (SIGTERM to the group, then SIGKILL after `killGrace`). A non-zero exit
/// is returned, not thrown: some callers (pg_restore in a drill) report it rather than stop.
///
/// - `input`: the program's stdin. It is handed over as an already unlinked temporary file,
///   not a pipe: a program that never reads it can neither stall us nor, by exiting early,
///   make a write fail with SIGPIPE. Without it, stdin is `/dev/null`.
/// - `timeout`: past it the process group is torn down, and the outcome says `timedOut`.
/// - `inheritEnvironment`: false gives the program only `environment`, nothing of ours.
/// - `workingDirectory`: where it runs (default: ours); a program run as another user needs one
///   it may enter.
/// - `user`: the OS user it runs as, through `runuser` (we must be root); nil: ourselves.
public func runProgram(
    program: String,
    arguments: [String],
    environment: [String: String],
    logger: Logger,
    outputLimit: Int = 4 << 20,
    input: [UInt8]? = nil,
    timeout: Duration? = nil,
    killGrace: Duration = .seconds(5),
    inheritEnvironment: Bool = true,
    workingDirectory: String? = nil,
    user: String? = nil
) async throws -> ProgramOutcome {
    if let user {
        return try await runProgram(
            program: "/usr/sbin/runuser", arguments: ["-u", user, "--", program] + arguments, environment: environment, logger: logger,
            outputLimit: outputLimit, input: input, timeout: timeout, killGrace: killGrace, inheritEnvironment: inheritEnvironment,
            workingDirectory: workingDirectory)
    }
    let directory = workingDirectory.map { FilePath($0) }
    var options = PlatformOptions()
    options.processGroupID = 0
    options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: killGrace)]
    let platformOptions = options
    let variables = Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(rawValue: $0.key)!, $0.value) })
    let childEnvironment: Environment = inheritEnvironment ? .inherit.updating(variables.mapValues { Optional($0) }) : .custom(variables)
    let name = (program as NSString).lastPathComponent
    logger.debug("running program", metadata: ["child.program": "\(program)", "child.arguments": "\(arguments)"])

    let stdin = try input.map { try unlinkedTemporaryFile(holding: $0, program: name) }
    defer { try? stdin?.close() }

    @Sendable func execute() async throws -> ProgramOutcome {
        do {
            let result = if let stdin {
                try await run(
                    .path(FilePath(program)), arguments: Arguments(arguments), environment: childEnvironment, workingDirectory: directory,
                    platformOptions: platformOptions, input: .fileDescriptor(stdin, closeAfterSpawningProcess: false),
                    output: .string(limit: outputLimit), error: .string(limit: outputLimit))
            } else {
                try await run(
                    .path(FilePath(program)), arguments: Arguments(arguments), environment: childEnvironment, workingDirectory: directory,
                    platformOptions: platformOptions, output: .string(limit: outputLimit), error: .string(limit: outputLimit))
            }
            return ProgramOutcome(status: result.terminationStatus, stdout: result.standardOutput, stderr: result.standardError)
        } catch let error as SubprocessError {
            throw ChildProcessError(code: .notStarted, program: name, status: nil, stderr: "", underlying: error)
        }
    }

    guard let timeout else { return try await execute() }
    return try await withThrowingTaskGroup(of: ProgramOutcome?.self) { group in
        group.addTask { try await execute() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first: ProgramOutcome??
        do {
            first = try await group.next()
        } catch {
            group.cancelAll()
            throw error
        }
        if let finished = first ?? nil {
            group.cancelAll()
            return finished
        }
        // The time ran out: cancelling the run tears the process group down, and the run
        // returns (or throws) once the program is gone.
        logger.debug("program ran out of time; stopping it", metadata: ["child.program": "\(name)", "child.timeout": "\(timeout)"])
        group.cancelAll()
        var outcome = (try? await group.next() ?? nil) ?? ProgramOutcome(status: .signaled(SIGKILL), stdout: "", stderr: "")
        outcome.timedOut = true
        return outcome
    }
}

/// A temporary file holding `bytes`, positioned at its start and already unlinked, so nothing
/// is left behind whatever happens next.
private func unlinkedTemporaryFile(holding bytes: [UInt8], program: String) throws -> FileDescriptor {
    let path = FilePath(FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-stdin-\(UUID().uuidString)").path)
    do {
        let descriptor = try FileDescriptor.open(path, .readWrite, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
        _ = unlink(path.string)
        do {
            _ = try descriptor.writeAll(bytes)
            _ = try descriptor.seek(offset: 0, from: .start)
        } catch {
            try? descriptor.close()
            throw error
        }
        return descriptor
    } catch {
        throw ChildProcessError(code: .notStarted, program: program, status: nil, stderr: "", underlying: error)
    }
}
