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

    func subscribe() -> AsyncStream<V1.MembershipEvent> {
        let (stream, continuation) = AsyncStream<V1.MembershipEvent>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
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
            for event in events { subscriber.yield(event) }
        }
    }
}
