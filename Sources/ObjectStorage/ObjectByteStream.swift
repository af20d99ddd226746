import Dispatch
import Synchronization

/// An object's bytes as they arrive, in chunks, with back-pressure: a producer on an I/O thread
/// blocks once `bufferedChunks` chunks wait unread, so a slow reader bounds the memory used.
public struct ObjectByteStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = any Error

    private let chunks: AsyncThrowingStream<[UInt8], any Error>
    private let credits: DispatchSemaphore?
    /// A stream made from another by a transform (decryption): pulled through it chunk by chunk.
    private let transform: (any ByteStreamTransform)?
    private let upstream: [ObjectByteStream]

    /// A stream over bytes already in memory.
    public init(bytes: [UInt8], chunkSize: Int = 1 << 20) {
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        var offset = 0
        while offset < bytes.count {
            let end = Swift.min(offset + chunkSize, bytes.count)
            continuation.yield(Array(bytes[offset..<end]))
            offset = end
        }
        continuation.finish()
        self.chunks = stream
        self.credits = nil
        self.transform = nil
        self.upstream = []
    }

    /// `upstream`'s bytes passed through `transform` as they are read: no task, no buffering
    /// beyond what the transform keeps.
    public init(transforming upstream: ObjectByteStream, with transform: any ByteStreamTransform) {
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        continuation.finish()
        self.chunks = stream
        self.credits = nil
        self.transform = transform
        self.upstream = [upstream]
    }

    /// A stream that fails when first iterated.
    public init(failure: any Error) {
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        continuation.finish(throwing: failure)
        self.chunks = stream
        self.credits = nil
        self.transform = nil
        self.upstream = []
    }

    /// A stream fed by a blocking producer (a curl transfer, a file read loop).
    public static func makeBlockingProducer(bufferedChunks: Int = 4) -> (ObjectByteStream, BlockingProducer) {
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        // Start at zero and signal up: libdispatch traps when a semaphore is freed below its
        // initial value, which is exactly the state a reader that stops early leaves behind.
        let credits = DispatchSemaphore(value: 0)
        for _ in 0..<bufferedChunks { credits.signal() }
        let producer = BlockingProducer(continuation: continuation, credits: credits)
        continuation.onTermination = { _ in producer.consumerGone() }
        return (ObjectByteStream(chunks: stream, credits: credits), producer)
    }

    private init(chunks: AsyncThrowingStream<[UInt8], any Error>, credits: DispatchSemaphore?) {
        self.chunks = chunks
        self.credits = credits
        self.transform = nil
        self.upstream = []
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator
        let credits: DispatchSemaphore?
        var upstream: [AsyncIterator]
        let transform: (any ByteStreamTransform)?
        var finished = false

        public mutating func next() async throws -> [UInt8]? {
            guard let transform, !upstream.isEmpty else {
                let chunk = try await base.next()
                if chunk != nil { credits?.signal() }
                return chunk
            }
            while !finished {
                guard let chunk = try await upstream[0].next() else {
                    finished = true
                    let rest = try transform.finish()
                    return rest.isEmpty ? nil : rest
                }
                let output = try transform.next(chunk)
                if !output.isEmpty { return output }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: chunks.makeAsyncIterator(), credits: credits, upstream: upstream.map { $0.makeAsyncIterator() },
                      transform: transform)
    }
}

/// The producing end of ``ObjectByteStream``; call it from a thread that may block.
public final class BlockingProducer: Sendable {
    private let continuation: AsyncThrowingStream<[UInt8], any Error>.Continuation
    private let credits: DispatchSemaphore
    private let gone = Atomic<Bool>(false)

    init(continuation: AsyncThrowingStream<[UInt8], any Error>.Continuation, credits: DispatchSemaphore) {
        self.continuation = continuation
        self.credits = credits
    }

    /// True once the reader stopped iterating; the producer should stop its transfer.
    public var isCancelled: Bool { gone.load(ordering: .acquiring) }

    /// Hands a chunk to the reader, blocking while its buffer is full.
    /// - Returns: false when the reader has gone away and the producer should stop.
    @discardableResult
    public func send(_ chunk: [UInt8]) -> Bool {
        if isCancelled { return false }
        credits.wait()
        if isCancelled { return false }
        continuation.yield(chunk)
        return true
    }

    public func finish(throwing error: (any Error)? = nil) {
        continuation.finish(throwing: error)
    }

    fileprivate func consumerGone() {
        gone.store(true, ordering: .releasing)
        credits.signal()
    }
}

/// What turns one byte stream into another as it is read (decryption); stateful, one per stream.
public protocol ByteStreamTransform: Sendable {
    /// The output `chunk` completes (possibly empty).
    func next(_ chunk: [UInt8]) throws -> [UInt8]
    /// What is left once the input ended; throws when the input ended too early.
    func finish() throws -> [UInt8]
}
