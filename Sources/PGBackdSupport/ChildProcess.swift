import Foundation
import Logging
import Subprocess
import SystemPackage

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
/// When `consume` throws or the task is cancelled, the child's process group gets SIGTERM, then
/// SIGKILL after five seconds, and nothing is left running.
/// - Returns: what the program wrote to stderr (up to 256 KiB), e.g. pg_basebackup's WAL positions.
@discardableResult
public func streamChildOutput(
    program: String,
    arguments: [String],
    environment: [String: String],
    logger: Logger,
    consume: (_ chunk: [UInt8]) async throws -> Void
) async throws -> String {
    var options = PlatformOptions()
    // Its own process group, so teardown reaches whatever the program started too.
    options.processGroupID = 0
    options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(5))]
    let name = (program as NSString).lastPathComponent
    logger.debug("starting child process", metadata: ["child.program": "\(program)", "child.arguments": "\(arguments)"])
    let result: ExecutionResult<Void, SequenceOutput, StringOutput<UTF8>>
    do {
        result = try await run(
            .path(FilePath(program)),
            arguments: Arguments(arguments),
            environment: .inherit.updating(Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(rawValue: $0.key)!, Optional($0.value)) })),
            platformOptions: options,
            input: .none,
            output: .sequence,
            error: .string(limit: 256 * 1024)
        ) { execution in
            do {
                for try await buffer in execution.standardOutput {
                    try await consume(buffer.withUnsafeBytes { Array($0) })
                }
            } catch {
                try? execution.send(signal: .terminate, toProcessGroup: true)
                throw error
            }
        }
    } catch let error as SubprocessError {
        throw ChildProcessError(code: .notStarted, program: name, status: nil, stderr: "", underlying: error)
    }
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
