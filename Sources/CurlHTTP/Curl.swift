import CCurl
import CShims
import Foundation
import Synchronization

/// `curl_global_init` must run once, before any handle exists and not concurrently with
/// another; a static `let` is initialised exactly once, thread-safely.
enum CurlGlobal {
    static let initialized: Bool = pgbackd_curl_global_init_all() == CURLE_OK
}

/// Owns one CURL easy handle; frees it in deinit. A handle is used by one thread at a time:
/// whoever took it from a ``CurlHandlePool`` until it gives it back.
public final class CurlEasy: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer

    public init() throws {
        guard CurlGlobal.initialized, let handle = curl_easy_init() else {
            throw CurlError(.unavailable, message: "libcurl could not be initialised (curl_global_init or curl_easy_init failed)")
        }
        raw = handle
    }

    deinit {
        curl_easy_cleanup(raw)
    }

    /// Back to default options; the handle keeps its open connections, DNS and TLS session cache.
    func reset() {
        curl_easy_reset(raw)
    }
}

/// Idle easy handles, reused so their keep-alive connections are too.
public final class CurlHandlePool: Sendable {
    private let idle = Mutex<[CurlEasy]>([])
    private let capacity: Int

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    public func withHandle<T>(_ body: (CurlEasy) throws -> T) throws -> T {
        let handle = try idle.withLock { $0.popLast() } ?? CurlEasy()
        defer {
            handle.reset()
            idle.withLock { handles in
                if handles.count < capacity { handles.append(handle) }
            }
        }
        return try body(handle)
    }
}

/// Set once to stop transfers: the running one aborts at its next progress call (about once a
/// second or sooner), and no retry starts.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public var isCancelled: Bool { flag.load(ordering: .acquiring) }
    public func cancel() { flag.store(true, ordering: .releasing) }
}

/// What one transfer is told to do.
public struct CurlTransferOptions: Sendable {
    public var method: String
    public var url: String
    /// Complete header lines, `Name: value`.
    public var headers: [String]
    public var body: [UInt8]
    public var connectTimeoutMilliseconds: Int
    public var lowSpeedLimit: Int
    public var lowSpeedTimeSeconds: Int
    public var verifyTLS: Bool
    public var caFile: String?
    /// The whole transfer's limit (`CURLOPT_TIMEOUT_MS`); 0, the default, means none: a long
    /// upload or download is bounded by the low-speed limit instead.
    public var timeoutMilliseconds: Int
    /// Open a new connection instead of reusing a pooled one (`CURLOPT_FRESH_CONNECT`). On a
    /// reused connection that breaks before any answer, libcurl silently sends the request again
    /// on a new one: harmless for an idempotent request, but a request that created something
    /// on the server (CreateMultipartUpload) then creates it twice unseen. On a fresh connection
    /// libcurl does not do that, so the caller sees the failure and can clean up after it.
    public var freshConnection = false

    public init(
        method: String, url: String, headers: [String], body: [UInt8],
        connectTimeoutMilliseconds: Int, lowSpeedLimit: Int, lowSpeedTimeSeconds: Int,
        verifyTLS: Bool, caFile: String?, timeoutMilliseconds: Int = 0
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.lowSpeedLimit = lowSpeedLimit
        self.lowSpeedTimeSeconds = lowSpeedTimeSeconds
        self.verifyTLS = verifyTLS
        self.caFile = caFile
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// State shared with libcurl's callbacks during one transfer; touched only by the thread that
/// runs `curl_easy_perform`.
public final class CurlTransfer {
    /// The final response's status (1xx interim responses are skipped).
    public private(set) var status = 0
    /// The final response's headers, names lower-cased (a repeated header keeps its last value).
    public private(set) var headers: [String: String] = [:]
    public private(set) var headersComplete = false
    /// The body of a response that is not streamed (every non-2xx one, or all without a
    /// streaming handler), capped at `maxCollected` bytes.
    public private(set) var body: [UInt8] = []
    public var maxCollected = 64 << 20
    /// Called once the final response's headers are in.
    public var onHeaders: ((Int, [String: String]) -> Void)?
    /// Receives the body of a 2xx response instead of ``body``; false aborts the transfer.
    public var onBody: ((UnsafeRawBufferPointer) -> Bool)?
    public let cancel: CancellationFlag?
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    /// libcurl's explanation of a failed transfer.
    public private(set) var detail = ""

    public init(cancel: CancellationFlag?) {
        self.cancel = cancel
    }

    fileprivate func headerLine(_ line: UnsafeRawBufferPointer) {
        // Work on bytes: in a Swift String "\r\n" is one Character, so hasSuffix("\n") misses it.
        var end = line.count
        while end > 0, line[end - 1] == UInt8(ascii: "\n") || line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: line[..<end]), as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            let fields = text.split(separator: " ", maxSplits: 2)
            status = fields.count > 1 ? Int(fields[1]) ?? 0 : 0
            headers = [:]
            headersComplete = false
        } else if text.isEmpty {
            if status >= 200, !headersComplete {
                headersComplete = true
                onHeaders?(status, headers)
            }
        } else if let colon = text.firstIndex(of: ":") {
            let name = text[..<colon].lowercased()
            let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            headers[name] = value
        }
    }

    fileprivate func bodyBytes(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if let onBody, (200..<300).contains(status) {
            return onBody(bytes)
        }
        if body.count < maxCollected {
            body.append(contentsOf: bytes.prefix(maxCollected - body.count))
        }
        return true
    }

    /// Runs the transfer on `handle`, blocking; returns libcurl's result code.
    public func perform(on handle: CurlEasy, _ options: CurlTransferOptions) -> CURLcode {
        let curl = handle.raw
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for header in options.headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }

        let context = Unmanaged.passUnretained(self).toOpaque()
        // A body needs a valid pointer even when empty; libcurl reads it during perform only.
        let body = options.body.isEmpty ? [0] : options.body
        return body.withUnsafeBytes { bodyPointer -> CURLcode in
            errorBuffer.withUnsafeMutableBufferPointer { errorPointer -> CURLcode in
                _ = pgbackd_curl_setopt_pointer(curl, CURLOPT_ERRORBUFFER, errorPointer.baseAddress)
                _ = pgbackd_curl_setopt_string(curl, CURLOPT_URL, options.url)
                switch options.method {
                case "GET":
                    _ = pgbackd_curl_setopt_long(curl, CURLOPT_HTTPGET, 1)
                case "HEAD":
                    _ = pgbackd_curl_setopt_long(curl, CURLOPT_NOBODY, 1)
                case "PUT", "POST":
                    _ = pgbackd_curl_setopt_long(curl, CURLOPT_POST, 1)
                    _ = pgbackd_curl_setopt_off_t(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(options.body.count))
                    _ = pgbackd_curl_setopt_pointer(curl, CURLOPT_POSTFIELDS, bodyPointer.baseAddress)
                    if options.method == "PUT" {
                        _ = pgbackd_curl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, "PUT")
                    }
                default:
                    _ = pgbackd_curl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, options.method)
                }
                _ = pgbackd_curl_setopt_pointer(curl, CURLOPT_HTTPHEADER, list)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_NOSIGNAL, 1)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_TCP_KEEPALIVE, 1)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_FRESH_CONNECT, options.freshConnection ? 1 : 0)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_FOLLOWLOCATION, 0)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_BUFFERSIZE, 256 << 10)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT_MS, options.connectTimeoutMilliseconds)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_LOW_SPEED_LIMIT, options.lowSpeedLimit)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_LOW_SPEED_TIME, options.lowSpeedTimeSeconds)
                if options.timeoutMilliseconds > 0 {
                    _ = pgbackd_curl_setopt_long(curl, CURLOPT_TIMEOUT_MS, options.timeoutMilliseconds)
                }
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0)
                if let caFile = options.caFile {
                    _ = pgbackd_curl_setopt_string(curl, CURLOPT_CAINFO, caFile)
                }
                _ = pgbackd_curl_setopt_header_callback(curl, curlHeaderCallback)
                _ = pgbackd_curl_setopt_pointer(curl, CURLOPT_HEADERDATA, context)
                _ = pgbackd_curl_setopt_write_callback(curl, curlWriteCallback)
                _ = pgbackd_curl_setopt_pointer(curl, CURLOPT_WRITEDATA, context)
                _ = pgbackd_curl_setopt_xferinfo_callback(curl, curlProgressCallback)
                _ = pgbackd_curl_setopt_pointer(curl, CURLOPT_XFERINFODATA, context)
                _ = pgbackd_curl_setopt_long(curl, CURLOPT_NOPROGRESS, 0)

                let code = withExtendedLifetime(self) { curl_easy_perform(curl) }
                if code != CURLE_OK {
                    let buffered = String(cString: errorPointer.baseAddress!)
                    detail = buffered.isEmpty ? String(cString: curl_easy_strerror(code)) : buffered
                }
                // The error buffer must not outlive this scope inside the (reused) handle.
                _ = pgbackd_curl_setopt_pointer(curl, CURLOPT_ERRORBUFFER, nil)
                return code
            }
        }
    }

    fileprivate var isCancelled: Bool { cancel?.isCancelled ?? false }
}

private func curlHeaderCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    transfer.headerLine(UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}

private func curlWriteCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    if transfer.isCancelled { return 0 }
    return transfer.bodyBytes(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
}

private func curlProgressCallback(_ context: UnsafeMutableRawPointer?, _: curl_off_t, _: curl_off_t, _: curl_off_t, _: curl_off_t) -> Int32 {
    guard let context else { return 0 }
    return Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().isCancelled ? 1 : 0
}
