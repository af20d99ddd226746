import CCurl
import CShims
import Dispatch
import OffloadedWork

/// A whole response: status, headers (names lower-cased) and body.
public struct CurlResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

extension CurlHandlePool {
    /// Sends one request and collects its response, blocking the calling thread: call it from a
    /// dispatch queue (``send(_:maxBody:)`` does). Every HTTP status is a response; a transfer
    /// that got none throws a ``CurlError``. No retries: the caller decides what is worth one.
    public func perform(_ options: CurlTransferOptions, cancel: CancellationFlag? = nil, maxBody: Int = 1 << 20) throws -> CurlResponse {
        let transfer = CurlTransfer(cancel: cancel)
        transfer.maxCollected = maxBody
        let code = try withHandle { transfer.perform(on: $0, options) }
        guard code == CURLE_OK else {
            throw CurlError(curlCode: code.rawValue, detail: transfer.detail)
        }
        return CurlResponse(status: transfer.status, headers: transfer.headers, body: transfer.body)
    }

    /// ``perform(_:cancel:maxBody:)`` on a dispatch queue of its own, off Swift's cooperative
    /// pool. Cancelling the task aborts the transfer within about a second.
    public func send(_ options: CurlTransferOptions, maxBody: Int = 1 << 20) async throws -> CurlResponse {
        let cancel = CancellationFlag()
        return try await withTaskCancellationHandler {
            // A new serial queue per transfer: each blocked transfer gets a thread of its own.
            try await offload(on: DispatchQueue(label: "pgbackd.curl.transfer")) {
                try self.perform(options, cancel: cancel, maxBody: maxBody)
            }
        } onCancel: {
            cancel.cancel()
        }
    }
}
