import Foundation

/// Reads a file that holds one secret (an S3 secret key, a webhook header). Only a regular file
/// of at most `limit` bytes is read: a path to a FIFO, a device (`/dev/zero`) or a huge file would
/// otherwise hang or fill memory at startup instead of failing with a clear message.
enum SecretFile {
    static let limit = 64 * 1024

    enum Problem: Error {
        case missing, unreadable, notARegularFile, tooLarge(Int)

        /// Completes "the file X ..." in the caller's message.
        var reason: String {
            switch self {
            case .missing: "does not exist"
            case .unreadable: "is not readable by this user"
            case .notARegularFile: "is not a regular file (a device, a FIFO or a directory)"
            case .tooLarge(let size): "is \(size) bytes, more than a secret's \(SecretFile.limit)"
            }
        }
    }

    /// The file's text with surrounding whitespace and newlines removed.
    static func read(_ path: String) throws(Problem) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw errno == ENOENT || errno == ENOTDIR ? .missing : .unreadable }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notARegularFile }
        guard info.st_size <= limit else { throw .tooLarge(Int(info.st_size)) }
        // O_NONBLOCK: a FIFO swapped in after the stat must not block the open.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable }
        defer { close(fd) }
        var opened = stat()
        guard fstat(fd, &opened) == 0, opened.st_mode & S_IFMT == S_IFREG else { throw .notARegularFile }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .unreadable }
            if n == 0 { break }
            count += n
        }
        guard count <= limit else { throw .tooLarge(count) }
        return String(decoding: bytes[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
