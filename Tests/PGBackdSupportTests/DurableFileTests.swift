import Foundation
@testable import PGBackdSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct DurableFileTests {
    @Test func replaceWritesTheContentAndSwapsTheFileWhole() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/state.json"
        try DurableFile.replace(path, with: Array("old".utf8))
        // A reader that opened the old file keeps reading the old file: the new one is renamed
        // over it, never written into it.
        let reader = try #require(FileHandle(forReadingAtPath: path))
        defer { try? reader.close() }
        try DurableFile.replace(path, with: Array("new content".utf8), mode: 0o640)
        #expect(try reader.readToEnd() == Data("old".utf8))
        #expect(FileManager.default.contents(atPath: path) == Data("new content".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["state.json"])
        var status = stat()
        #expect(stat(path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o640 & ~currentUmask())
    }

    @Test func copyCopiesTheWholeSourceAndReportsAShortOne() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bytes = (0..<(3 << 20) + 5).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        #expect(FileManager.default.createFile(atPath: directory + "/source", contents: Data(bytes)))
        let source = open(directory + "/source", O_RDONLY)
        #expect(source >= 0)
        defer { close(source) }
        // Not from the descriptor's offset: the copy starts at the file's start.
        #expect(lseek(source, 1000, SEEK_SET) == 1000)
        let writer = try DurableFile.Writer(creating: directory + "/copy", mode: 0o600)
        #expect(try writer.copy(from: source, count: Int64(bytes.count)) == Int64(bytes.count))
        try writer.finish()
        #expect(FileManager.default.contents(atPath: directory + "/copy") == Data(bytes))
        #expect(lseek(source, 0, SEEK_CUR) == 1000, "the source's offset is not moved")

        let short = try DurableFile.Writer(creating: directory + "/short", mode: 0o600)
        #expect(try short.copy(from: source, count: Int64(bytes.count) + 10) == Int64(bytes.count), "the source ended early")
        short.discard()
        #expect(!FileManager.default.fileExists(atPath: directory + "/short"))
    }

    @Test func aLeftoverTemporaryFileIsReplacedAndNoneRemains() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/000000010000000000000001"
        // An earlier attempt killed between create and rename.
        #expect(FileManager.default.createFile(atPath: path + ".pgbackd-tmp", contents: Data("torn".utf8)))
        try DurableFile.replace(path, with: [1, 2, 3])
        #expect(FileManager.default.contents(atPath: path) == Data([1, 2, 3]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["000000010000000000000001"])
    }

    @Test func aFailedRenameLeavesNoTemporaryFileAndTheTargetUntouched() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // rename(2) cannot put a file over a non-empty directory.
        let target = directory + "/target"
        try FileManager.default.createDirectory(atPath: target + "/inside", withIntermediateDirectories: true)
        let error = try #require(throws: DurableFileError.self) {
            try DurableFile.replace(target, with: Array("bytes".utf8), temporaryPath: directory + "/.target.tmp")
        }
        #expect(error.path == target)
        #expect(error.message.hasPrefix("cannot rename \(directory)/.target.tmp to \(target): "))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["target"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: target) == ["inside"])
    }

    @Test func aMissingDirectoryIsNotFound() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = try #require(throws: DurableFileError.self) {
            try DurableFile.replace(directory + "/absent/file", with: [0])
        }
        #expect(error.code == .notFound)
        #expect(error.errno == ENOENT)
        #expect(error.path == directory + "/absent/file.pgbackd-tmp")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    /// As root the directory's mode does not stop us, so the write runs on a thread of its own
    /// whose file-system user is `nobody` (setfsuid is per thread): the kernel then checks the
    /// mode as it would for any other user.
    @Test func aDirectoryThatIsNotWritableIsAccessDenied() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        chmod(directory, 0o755)
        let readOnly = directory + "/read-only"
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o555])
        let result = try onThread(asFileSystemUser: geteuid() == 0 ? 65534 : nil) { () -> Result<Void, DurableFileError> in
            Result { () throws(DurableFileError) in try DurableFile.replace(readOnly + "/state.json", with: Array("x".utf8)) }
        }
        guard case .failure(let error) = result else {
            Issue.record("a write into a 0555 directory succeeded")
            return
        }
        #expect(error.code == .accessDenied)
        #expect(error.errno == EACCES)
        #expect(error.path == readOnly + "/state.json.pgbackd-tmp")
        #expect(error.message == "cannot create \(readOnly)/state.json.pgbackd-tmp: Permission denied")
        #expect(try FileManager.default.contentsOfDirectory(atPath: readOnly).isEmpty)
    }

    @Test func createNewRefusesAnExistingFileAndLeavesIt() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/spooled"
        try DurableFile.createNew(path, with: Array("first".utf8))
        let error = try #require(throws: DurableFileError.self) { try DurableFile.createNew(path, with: Array("second".utf8)) }
        #expect(error.code == .alreadyExists)
        #expect(FileManager.default.contents(atPath: path) == Data("first".utf8))
    }

    /// 96 MiB and a bit, in one call and in uneven pieces: write(2) may take less than asked
    /// (at most 2 GiB - 4 KiB a call on Linux, less on a signal), and the loop goes on.
    @Test func aLargeWriteArrivesWhole() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var bytes = [UInt8](repeating: 0, count: 96 << 20 + 12_345)
        for index in stride(from: 0, to: bytes.count, by: 4093) { bytes[index] = UInt8(truncatingIfNeeded: index / 4093) }
        try DurableFile.replace(directory + "/whole", with: bytes)
        #expect(FileManager.default.contents(atPath: directory + "/whole") == Data(bytes))

        let writer = try DurableFile.Writer(creating: directory + "/.pieces.tmp", mode: 0o600)
        var offset = 0, piece = 1
        while offset < bytes.count {
            let end = min(bytes.count, offset + piece)
            try writer.write(Array(bytes[offset..<end]))
            offset = end
            piece = piece * 7 + 13
        }
        #expect(writer.bytesWritten == Int64(bytes.count))
        try writer.commit(replacing: directory + "/pieces")
        #expect(!writer.isOpen)
        #expect(FileManager.default.contents(atPath: directory + "/pieces") == Data(bytes))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["pieces", "whole"])
    }

    /// The loop itself, against a write(2) that is interrupted and writes short.
    @Test func writeAllRetriesAfterEINTRAndContinuesAfterAShortWrite() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        var received: [UInt8] = []
        var calls = 0
        let code = bytes.withUnsafeBytes { buffer in
            DurableFile.writeAll(7, buffer) { fd, pointer, count in
                calls += 1
                #expect(fd == 7)
                if calls % 3 == 1 {
                    errno = EINTR
                    return -1
                }
                let taken = min(count, 97)
                received += UnsafeRawBufferPointer(start: pointer, count: taken)
                return taken
            }
        }
        #expect(code == 0)
        #expect(received == bytes)
        #expect(calls > 15)

        let failed = bytes.withUnsafeBytes { buffer in
            DurableFile.writeAll(7, buffer) { _, _, _ in
                errno = ENOSPC
                return -1
            }
        }
        #expect(failed == ENOSPC)
        #expect(bytes.withUnsafeBytes { buffer in DurableFile.writeAll(7, buffer) { _, _, _ in 0 } } == EIO)
    }

    @Test func aDiscardedWriterLeavesNothingAndADroppedOneLeavesItsFile() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let discarded = try DurableFile.Writer(creating: directory + "/.a.tmp", mode: 0o600)
        try discarded.write([1, 2, 3])
        discarded.discard()
        #expect(!discarded.isOpen)
        let error = try #require(throws: DurableFileError.self) { try discarded.write([4]) }
        #expect(error.errno == EBADF)
        do {
            let dropped = try DurableFile.Writer(creating: directory + "/.b.tmp", mode: 0o600)
            try dropped.write([1])
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [".b.tmp"])
    }

    @Test func moveRenamesOverTheTarget() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try DurableFile.createNew(directory + "/prefetched", with: Array("segment".utf8))
        try DurableFile.createNew(directory + "/target", with: Array("old".utf8))
        try DurableFile.move(directory + "/prefetched", over: directory + "/target")
        #expect(FileManager.default.contents(atPath: directory + "/target") == Data("segment".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["target"])
        let error = try #require(throws: DurableFileError.self) { try DurableFile.move(directory + "/prefetched", over: directory + "/target") }
        #expect(error.code == .notFound)
    }

    @Test func directoryOfAPath() {
        #expect(DurableFile.directory(of: "pg_wal/000000010000000000000001") == "pg_wal")
        #expect(DurableFile.directory(of: "/var/lib/state.json") == "/var/lib")
        #expect(DurableFile.directory(of: "/state.json") == "/")
        #expect(DurableFile.directory(of: "state.json") == ".")
    }
}

func temporaryDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/pgbackd-support-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    return String(cString: made)
}

func currentUmask() -> mode_t {
    let mask = umask(0o022)
    umask(mask)
    return mask
}

/// Runs `body` on a thread of its own, with the file-system user `uid` there when given
/// (setfsuid changes only the calling thread; Glibc's module map does not declare it).
func onThread<T: Sendable>(asFileSystemUser uid: uid_t?, _ body: @escaping @Sendable () -> T) throws -> T {
    typealias SetFSUID = @convention(c) (uid_t) -> Int32
    let setfsuid: SetFSUID? = dlsym(nil, "setfsuid").map { unsafeBitCast($0, to: SetFSUID.self) }
    if uid != nil, setfsuid == nil { throw POSIXError(.ENOSYS) }
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: T?
    let thread = Thread {
        let previous = uid.map { setfsuid!($0) }
        result = body()
        if let previous { _ = setfsuid!(uid_t(previous)) }
        done.signal()
    }
    thread.start()
    done.wait()
    return result!
}
