import NIOConcurrencyHelpers

/// The messages of one server stream that have arrived and that its reader has not taken yet,
/// bounded both in count and in bytes.
///
/// A connection reads every frame off its socket whether or not each stream's reader keeps up
/// (one slow reader must not stall the other calls sharing the connection), so the messages of a
/// reader that stops reading pile up here. Counting messages alone was not enough: a gateway
/// forwarding `threads.watch` to a client that never reads would have held 16,384 messages of
/// up to 64 KiB each, a gigabyte per stream. Past either limit the stream ends, after the
/// messages it holds, with `RESOURCE_EXHAUSTED` (``RPCError/streamReaderFellBehind(_:)``), and
/// the caller reopens it where it stopped (watch streams take an `after_*` position).
final class StreamInbox: Sendable {
    struct Limits: Sendable {
        var maxMessages: Int
        var maxBytes: Int
    }

    private let continuation: AsyncThrowingStream<[UInt8], any Error>.Continuation
    private let heldBytes = NIOLockedValueBox(0)
    let limits: Limits

    /// The inbox, and the stream its reader iterates.
    static func make(_ limits: Limits) -> (StreamInbox, AsyncThrowingStream<[UInt8], any Error>) {
        // Oldest first: a reader that falls behind keeps a gap-free run of messages, then the error.
        let (raw, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(limits.maxMessages))
        let inbox = StreamInbox(continuation: continuation, limits: limits)
        // The reader's side releases each message's bytes as it takes it. Pull-based, so dropping
        // this stream drops the raw iterator, which cancels the call (`onTermination`).
        let box = IteratorBox(raw.makeAsyncIterator())
        let reader = AsyncThrowingStream<[UInt8], any Error>(unfolding: { [inbox] in
            guard let message = try await box.next() else { return nil }
            inbox.heldBytes.withLockedValue { $0 -= message.count }
            return message
        })
        return (inbox, reader)
    }

    private init(continuation: AsyncThrowingStream<[UInt8], any Error>.Continuation, limits: Limits) {
        self.continuation = continuation
        self.limits = limits
    }

    /// Hands `message` to the reader. False when holding it would pass a limit: the message is
    /// not kept, and the caller ends the stream. A message larger than `maxBytes` still goes
    /// through to a reader that holds nothing else (the frame limit already bounds it).
    func deliver(_ message: [UInt8]) -> Bool {
        let fits = heldBytes.withLockedValue { held -> Bool in
            guard held == 0 || held + message.count <= limits.maxBytes else { return false }
            held += message.count
            return true
        }
        guard fits else { return false }
        if case .dropped = continuation.yield(message) {
            heldBytes.withLockedValue { $0 -= message.count }
            return false
        }
        return true
    }

    func finish(throwing error: (any Error)? = nil) {
        continuation.finish(throwing: error)
    }

    /// Runs when the reader stops: `.cancelled` when it dropped the stream or its task was cancelled.
    func onTermination(_ body: @escaping @Sendable (AsyncThrowingStream<[UInt8], any Error>.Continuation.Termination) -> Void) {
        continuation.onTermination = body
    }

    /// The stream's end when the reader fell behind.
    var fellBehind: RPCError { .streamReaderFellBehind(limits) }
}
