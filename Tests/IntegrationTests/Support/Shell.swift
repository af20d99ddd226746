import Foundation

/// Runs a program for a test and returns its exit status and output, on a thread of its own
/// (``offPool(_:)``): a pg_dump or a server start must not hold one of the cooperative pool's
/// threads (one per core) while every other test waits for it.
@discardableResult
func shell(_ program: String, _ arguments: [String], environment: [String: String] = [:], stdinFile: String? = nil) async throws -> (status: Int32, stdout: String, stderr: String) {
    try await offPool { try blockingShell(program, arguments, environment: environment, stdinFile: stdinFile) }
}

/// ``shell(_:_:environment:stdinFile:)`` on the calling thread, for code already off the pool.
@discardableResult
func blockingShell(_ program: String, _ arguments: [String], environment: [String: String] = [:], stdinFile: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : "/usr/bin/env")
    process.arguments = program.hasPrefix("/") ? arguments : [program] + arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    if let stdinFile { process.standardInput = FileHandle(forReadingAtPath: stdinFile) }
    try process.run()
    // Read both pipes before waiting so a chatty child never blocks on a full pipe.
    let errData = DispatchQueue(label: "stderr")
    nonisolated(unsafe) var stderrBytes = Data()
    let group = DispatchGroup()
    group.enter()
    errData.async {
        stderrBytes = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let stdoutBytes = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdoutBytes, as: UTF8.self), String(decoding: stderrBytes, as: UTF8.self))
}

/// The pgbackd executable built beside this test bundle.
var pgbackdExecutable: String {
    let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var directory = testBinary.deletingLastPathComponent()
    // swift test runs `<build>/debug/pgbackdPackageTests.xctest`; the executable sits next to it.
    for _ in 0..<3 {
        let candidate = directory.appendingPathComponent("pgbackd").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return testBinary.deletingLastPathComponent().appendingPathComponent("pgbackd").path
}

/// A copy of the pgbackd executable at `path`, mode 0755, made by `cp` in a process of its own:
/// a copy written by this (multi-threaded) process can be inherited, open for writing, by a child
/// another test forks at that moment, and then exec'ing the copy fails with "Text file busy".
func copyPgbackdExecutable(to path: String) throws {
    let copy = try blockingShell("/bin/cp", [pgbackdExecutable, path])
    guard copy.status == 0 else { throw CopyFailed(message: "cp \(pgbackdExecutable) \(path): \(copy.stderr)") }
    chmod(path, 0o755)
}

/// An executable script at `path`, for the same reason written by `cp` from a file beside it:
/// the file that is executed is never open in this process.
func writeExecutable(_ text: String, to path: String) throws {
    let source = path + ".source"
    try text.write(toFile: source, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: source) }
    let copy = try blockingShell("/bin/cp", [source, path])
    guard copy.status == 0 else { throw CopyFailed(message: "cp \(source) \(path): \(copy.stderr)") }
    chmod(path, 0o755)
}

struct CopyFailed: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

func temporaryDirectory(_ name: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-\(name)-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    // pg_restore and friends may run as the postgres user later; let them read what we stage.
    chmod(path, 0o755)
    return path
}

/// Starts pgbackd in the background, for tests that signal or kill it mid-job; its stderr goes
/// to `stderr`, or to the file `log` (created empty), or nowhere.
func launchPgbackd(_ arguments: [String], stderr: Pipe? = nil, log: String? = nil) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: pgbackdExecutable)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    if let log {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
    } else {
        process.standardError = stderr ?? FileHandle.nullDevice
    }
    try process.run()
    return process
}

/// Starts `pgbackd run` in the background with its log (stderr) in `log`; `environment` is added
/// to this process's, and the names in `removing` are taken out of it.
func launchDaemon(config: String, log: String, environment: [String: String] = [:], removing: [String] = []) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: pgbackdExecutable)
    process.arguments = ["run", "--config", config, "--log-level", "info"]
    var inherited = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    for name in removing { inherited.removeValue(forKey: name) }
    process.environment = inherited
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle(forWritingAtPath: log)
    try process.run()
    return process
}

/// Polls `condition` every `interval` until it holds or `attempts` run out.
func eventually(attempts: Int = 100, interval: Duration = .milliseconds(100), _ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<attempts {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return false
}

/// Runs blocking work (child processes, psql, waits) on a thread of its own. Swift Testing runs
/// suites in parallel on the cooperative pool, which has one thread per core: a test that blocks
/// one for a minute (pgbench, a server start) stalls every other test's continuations with it.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
