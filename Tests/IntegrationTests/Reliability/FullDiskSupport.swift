import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A size-limited tmpfs of one test: the full disk of the full-disk suite (we run as root).
/// ``withTmpfs(sizeMiB:mode:at:_:)`` unmounts it however the test ends.
struct Tmpfs: Sendable {
    let path: String

    /// Mounts a tmpfs of `sizeMiB` on `path` (a new directory under /tmp by default).
    static func mount(sizeMiB: Int, mode: String, at path: String? = nil) throws -> Tmpfs {
        let directory = path ?? FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-fulldisk-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let mounted = try blockingShell("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeMiB)m,mode=\(mode)", "tmpfs", directory])
        guard mounted.status == 0 else { throw FullDiskError(message: "mount tmpfs on \(directory): \(mounted.stderr)") }
        return Tmpfs(path: directory)
    }

    /// The file system's size, changed in place: what is stored stays.
    func resize(sizeMiB: Int) throws {
        let remounted = try blockingShell("/bin/mount", ["-o", "remount,size=\(sizeMiB)m", path])
        guard remounted.status == 0 else { throw FullDiskError(message: "remount \(path): \(remounted.stderr)") }
    }

    /// Unmounts (lazily when something still holds it open); the directory itself stays.
    func unmount() {
        if (try? blockingShell("/bin/umount", [path]))?.status != 0 {
            _ = try? blockingShell("/bin/umount", ["-l", path])
        }
    }

    var freeBytes: Int64 {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return -1 }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }

    /// Fills the file system with `filler` until `leaving` bytes are free (at 4 KiB pages).
    func fill(leaving: Int64, name: String = "filler") throws {
        let filler = "\(path)/\(name)"
        let have = (try? FileManager.default.attributesOfItem(atPath: filler)[.size] as? Int64) ?? 0
        let more = freeBytes - leaving
        guard more > 0 else { return }
        guard let handle = FileHandle(forWritingAtPath: filler) ?? {
            _ = FileManager.default.createFile(atPath: filler, contents: nil)
            return FileHandle(forWritingAtPath: filler)
        }() else { throw FullDiskError(message: "cannot create \(filler)") }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(have))
        let chunk = Data(repeating: 0x5A, count: 1 << 20)
        var left = more
        while left > 0 {
            try handle.write(contentsOf: chunk.prefix(Int(min(left, Int64(chunk.count)))))
            left -= Int64(min(left, Int64(chunk.count)))
        }
    }

    func removeFiller(name: String = "filler") {
        try? FileManager.default.removeItem(atPath: "\(path)/\(name)")
    }

    /// Every regular file below the mount (relative paths), the filler left out.
    func files() -> [String] {
        guard let walk = FileManager.default.enumerator(atPath: path) else { return [] }
        var found: [String] = []
        while let relative = walk.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: "\(path)/\(relative)", isDirectory: &isDirectory), !isDirectory.boolValue, relative != "filler" {
                found.append(relative)
            }
        }
        return found.sorted()
    }
}

struct FullDiskError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Mounts a tmpfs, runs `body`, unmounts it and removes its directory, whichever way `body` ends.
func withTmpfs<T>(sizeMiB: Int, mode: String = "0755", at path: String? = nil, _ body: (Tmpfs) async throws -> T) async throws -> T {
    let tmpfs = try Tmpfs.mount(sizeMiB: sizeMiB, mode: mode, at: path)
    let created = path == nil
    func release() {
        tmpfs.unmount()
        if created { rmdir(tmpfs.path) }
    }
    do {
        let result = try await body(tmpfs)
        release()
        return result
    } catch {
        release()
        throw error
    }
}

/// The events an `[[alerts.command]]` hook appended to `file`, one JSON document a line.
struct AlertLog: Sendable {
    let file: String

    /// A hook for `events` appending to a file every user may write (wal-push runs as `postgres`).
    static func make() throws -> AlertLog {
        let directory = try temporaryDirectory("fulldisk-alerts")
        chmod(directory, 0o777)
        let file = "\(directory)/events.jsonl"
        _ = FileManager.default.createFile(atPath: file, contents: nil)
        chmod(file, 0o666)
        return AlertLog(file: file)
    }

    var directory: String { (file as NSString).deletingLastPathComponent }

    func toml(events: [String]) -> String {
        """
        [[alerts.command]]
        events = [\(events.map { "\"\($0)\"" }.joined(separator: ", "))]
        run = ["/bin/sh", "-c", "cat >> \(file); echo >> \(file)"]
        """
    }

    var events: [[String: Any]] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The events named `name` raised since `mark` (a count of events seen before).
    func events(_ name: String, since mark: Int = 0) -> [[String: Any]] {
        Array(events.dropFirst(mark)).filter { $0["event"] as? String == name }
    }
}

/// The scratch databases the drills whose log (`--log-level info`, stderr) is `log` created
/// ("scratch database created"): other suites' drills share the server, and one killed there
/// leaves a scratch database that is not ours to count.
enum DrillScratch {
    static func created(inLog log: String) -> Set<String> {
        Set(log.matches(of: #/pgbackd_drill_[0-9a-z]+_[0-9]+/#).map { String($0.output) })
    }

    /// Those still on the server.
    static func leftOver(_ postgres: TestServices.Postgres, log: String) async throws -> [String] {
        let created = created(inLog: log)
        guard !created.isEmpty else { return [] }
        let existing = try await shell("\(postgres.binDirectory)/psql", ["-XAt", "-h", postgres.host, "-p", postgres.port, "-U", postgres.user, "-d", "postgres",
                                                                        "-c", "select datname from pg_database where datname like 'pgbackd_drill_%'"])
            .stdout.split(separator: "\n").map(String.init)
        return existing.filter(created.contains).sorted()
    }
}
