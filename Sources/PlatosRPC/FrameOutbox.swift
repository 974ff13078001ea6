import NIOConcurrencyHelpers
import NIOCore

/// Frames waiting to be written to one connection, from any thread.
///
/// Handlers and callers encode their frames on their own threads and append the bytes here;
/// the first append into an empty box schedules one task on the event loop, which writes
/// everything queued by then and flushes once. Under load many frames share one flush (one
/// `writev`), which is most of the difference between a syscall per call and a syscall per batch.
final class FrameOutbox: Sendable {
    struct Item {
        let callId: UInt64
        let bytes: ByteBuffer
        /// Ends the call (RESPONSE, STREAM_END): the connection forgets the call when it is written.
        let ends: Bool
        /// A client's deadline for the call this request starts. Its timer is set when the frame
        /// is written, on the event loop: setting it from the caller's thread would wake the loop
        /// a second time for every call.
        var deadline: ContinuousClock.Instant? = nil
    }

    private struct State {
        var items: [Item] = []
        var scheduled = false
        var pendingBytes = 0
        var writable = true
        var closed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Streams pause above this many queued bytes until the event loop catches up.
    static let highWaterMark = 256 * 1024

    private let state = NIOLockedValueBox(State())
    private let eventLoop: any EventLoop
    private let drain: @Sendable ([Item]) -> Void

    /// `drain` runs on `eventLoop` with every queued item, in order.
    init(eventLoop: any EventLoop, drain: @escaping @Sendable ([Item]) -> Void) {
        self.eventLoop = eventLoop
        self.drain = drain
    }

    func enqueue(_ item: Item) {
        let schedule = state.withLockedValue { state -> Bool in
            guard !state.closed else { return false }
            state.items.append(item)
            state.pendingBytes += item.bytes.readableBytes
            defer { state.scheduled = true }
            return !state.scheduled
        }
        if schedule { eventLoop.execute { self.runDrain() } }
    }

    /// Waits until the queue is below the high-water mark and the channel is writable.
    func waitForRoom() async {
        let mustWait = state.withLockedValue { !$0.closed && ($0.pendingBytes > Self.highWaterMark || !$0.writable) }
        guard mustWait else { return }
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLockedValue { state -> Bool in
                if state.closed || (state.pendingBytes <= Self.highWaterMark && state.writable) { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Called on the event loop when the channel's writability changes.
    func setWritable(_ writable: Bool) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.writable = writable
            return takeWaitersIfRoom(&state)
        }
        for w in waiters { w.resume() }
    }

    /// Drops everything queued and releases every waiter: the connection is gone.
    func close() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            state.items.removeAll()
            state.pendingBytes = 0
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for w in waiters { w.resume() }
    }

    private func runDrain() {
        let items = state.withLockedValue { state -> [Item] in
            state.scheduled = false
            defer { state.items.removeAll(keepingCapacity: true) }
            return state.items
        }
        guard !items.isEmpty else { return }
        drain(items)
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.pendingBytes -= items.reduce(0) { $0 + $1.bytes.readableBytes }
            return takeWaitersIfRoom(&state)
        }
        for w in waiters { w.resume() }
    }

    private func takeWaitersIfRoom(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        guard state.pendingBytes <= Self.highWaterMark, state.writable, !state.waiters.isEmpty else { return [] }
        defer { state.waiters.removeAll() }
        return state.waiters
    }
}
