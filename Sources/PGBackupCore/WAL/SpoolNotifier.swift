import Dispatch
import Foundation
import OffloadedWork
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// inotify on the spool directory: wakes the watcher as soon as wal-push puts a file there,
/// instead of at the next rescan. Owns an inotify descriptor and a pipe (to interrupt a wait
/// on cancellation) and closes both when it goes away.
///
/// wal-push makes a file visible with link(2), which inotify reports as `IN_CREATE`; a file
/// renamed or copied in gives `IN_MOVED_TO` or `IN_CLOSE_WRITE`. Hidden names (wal-push's temp
/// files) are ignored. The blocking `poll(2)` runs on a serial dispatch queue of its own, never on
/// Swift's cooperative pool.
final class SpoolNotifier: Sendable {
    enum Wake: Sendable, Equatable {
        /// A WAL file appeared (or the event queue overflowed: anything may have).
        case fileEvent
        /// The timeout passed without one.
        case timeout
    }

    let directory: String
    private let inotifyFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// The watch descriptor, -1 while the directory is not watched (it did not exist yet, or
    /// was removed); touched only on `queue`.
    private let watch = Mutex<Int32>(-1)
    private let queue = DispatchQueue(label: "pgbackd.wal.inotify")

    static let mask = UInt32(IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR | IN_EXCL_UNLINK)

    /// - Throws: ``WALError`` `.io` when inotify is unavailable (no kernel support, the
    ///   `fs.inotify.max_user_instances` limit); the caller falls back to rescans.
    init(directory: String) throws {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw WALFiles.ioError("inotify_init1 failed") }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let error = WALFiles.ioError("cannot create a pipe")
            close(fd)
            throw error
        }
        for end in pipeFDs {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        self.directory = directory
        inotifyFD = fd
        wakeRead = pipeFDs[0]
        wakeWrite = pipeFDs[1]
        // A missing directory is fine here: wal-push creates it, and each wait tries again.
        let watchError = queue.sync { addWatch() }
        if let watchError, watchError != ENOENT {
            close(inotifyFD)
            close(wakeRead)
            close(wakeWrite)
            throw WALError(.io, message: "cannot watch \(directory) with inotify: \(String(cString: strerror(watchError)))"
                + (watchError == ENOSPC ? " (the fs.inotify.max_user_watches limit is reached)" : ""))
        }
    }

    deinit {
        close(inotifyFD)
        close(wakeRead)
        close(wakeWrite)
    }

    /// Whether the directory is being watched (false while it does not exist).
    var isWatching: Bool { watch.withLock { $0 >= 0 } }

    /// Waits until a WAL file appears in the directory, `timeout` passes, or the task is
    /// cancelled (which returns `.timeout` at once). Events that arrived while nobody waited are
    /// still queued in the kernel and return at once: none is lost between two waits.
    func wait(timeout: Duration) async -> Wake {
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let wakeWrite = self.wakeWrite
        return await withTaskCancellationHandler {
            if Task.isCancelled { return .timeout }
            return (try? await offload(on: queue) { self.pollOnce(milliseconds: milliseconds) }) ?? .timeout
        } onCancel: {
            var byte: UInt8 = 1
            _ = Glibc.write(wakeWrite, &byte, 1)
        }
    }

    // MARK: on the queue

    /// errno of a failed `inotify_add_watch`, nil when watching.
    private func addWatch() -> Int32? {
        if watch.withLock({ $0 >= 0 }) { return nil }
        let descriptor = inotify_add_watch(inotifyFD, directory, Self.mask)
        guard descriptor >= 0 else { return errno }
        watch.withLock { $0 = descriptor }
        return nil
    }

    private func pollOnce(milliseconds: Int32) -> Wake {
        // The directory may have appeared since the last wait; until it does, this is a sleep.
        if addWatch() == nil, drain() { return .fileEvent }
        var fds = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, milliseconds)) * 1_000_000
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            let remaining = now >= deadline ? 0 : Int32(clamping: (deadline - now) / 1_000_000)
            let ready = poll(&fds, 2, remaining)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { return .timeout }
            if fds[1].revents != 0 { return .timeout } // cancelled: the byte stays, later waits return at once too
            if drain() { return .fileEvent }
            // Only temp files or our own deletions: keep waiting for the rest of the timeout.
            fds[0].revents = 0
            if remaining == 0 { return .timeout }
        }
    }

    /// Reads every queued event; true when one names a WAL file (or the queue overflowed).
    private func drain() -> Bool {
        var relevant = false
        let bufferSize = 64 << 10
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let count = Glibc.read(inotifyFD, buffer, bufferSize)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return relevant }
            var offset = 0
            while offset + 16 <= count {
                let mask = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                let nameLength = Int(buffer.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                let nameBytes = UnsafeRawBufferPointer(start: buffer + offset + 16, count: min(nameLength, count - offset - 16))
                let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                offset += 16 + nameLength
                if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    relevant = true
                } else if mask & UInt32(IN_IGNORED) != 0 {
                    // The directory was removed (or unmounted): watch it again once it is back.
                    watch.withLock { $0 = -1 }
                    relevant = true
                } else if !name.hasPrefix("."), WALFileName(name) != nil {
                    relevant = true
                }
            }
        }
    }
}
