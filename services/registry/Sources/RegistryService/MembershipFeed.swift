import NIOConcurrencyHelpers
import PlatosProto

/// Fans committed membership events out to `registry.watch` streams in this process.
///
/// Writers publish only after their transaction committed, so a watcher never sees a change that
/// could still roll back. Each watcher has its own bounded buffer; one that falls too far behind
/// is ended and resumes from its last version (the table keeps every event).
final class MembershipFeed: Sendable {
    private struct State {
        var next = 0
        var subscribers: [Int: AsyncStream<V1.MembershipEvent>.Continuation] = [:]
    }

    private let state = NIOLockedValueBox(State())
    /// Events a watcher may have queued before it is ended.
    let bufferSize: Int

    init(bufferSize: Int = 10_000) { self.bufferSize = bufferSize }

    /// The live events, without a gap but not necessarily in version order: each writer publishes
    /// from its own task once its commit is answered. `registry.watch` takes them as wake-ups and
    /// reads the events themselves from the table, which has them in commit order. A watcher whose
    /// buffer is full gets no more: its stream ends, and it resumes from the last one it sent.
    func subscribe() -> AsyncStream<V1.MembershipEvent> {
        // Oldest, not newest: what a lagging watcher still holds must be a gap-free run, so that
        // resuming after its last event replays exactly what it missed.
        let (stream, continuation) = AsyncStream<V1.MembershipEvent>.makeStream(
            bufferingPolicy: .bufferingOldest(bufferSize))
        let id = state.withLockedValue { state -> Int in
            state.next += 1
            state.subscribers[state.next] = continuation
            return state.next
        }
        continuation.onTermination = { [state] _ in
            _ = state.withLockedValue { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    func publish(_ events: [V1.MembershipEvent]) {
        guard !events.isEmpty else { return }
        let subscribers = state.withLockedValue { Array($0.subscribers.values) }
        for subscriber in subscribers {
            for event in events {
                if case .dropped = subscriber.yield(event) {
                    subscriber.finish()
                    break
                }
            }
        }
    }
}
