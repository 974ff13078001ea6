import NIOConcurrencyHelpers

/// Wakes in-process waiters when something keyed by `Key` changes: a thread gets a message, a
/// thread's tasks change state, an agent gets a queued task.
///
/// It carries no data. A waiter re-reads the database after waking, so nothing it needs can be
/// lost in a full buffer, and a slow watcher costs no memory here. To miss nothing, a waiter
/// subscribes first, then notes the generation, reads, and waits for a newer generation:
/// a change committed after the read bumps the generation, so the wait returns at once.
final class ChangeSignal<Key: Hashable & Sendable>: Sendable {
    /// One subscriber's place: the wait in progress, if any.
    private struct Waiter {
        var continuation: CheckedContinuation<Void, Never>?
    }

    /// Kept only while someone is subscribed, so keys nobody watches cost nothing.
    private struct Entry {
        var generation: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var nextId: UInt64 = 0
        /// Waits that parked (found no newer generation) so far.
        var parkedWaits: UInt64 = 0
    }

    /// A subscription; pass it back to ``generation(_:)``, ``wait(_:since:timeout:)`` and
    /// ``unsubscribe(_:)``.
    struct Subscription: Sendable {
        let key: Key
        let id: UInt64
    }

    private let state = NIOLockedValueBox(State())

    func subscribe(_ key: Key) -> Subscription {
        state.withLockedValue { state in
            state.nextId &+= 1
            state.entries[key, default: Entry()].waiters[state.nextId] = Waiter()
            return Subscription(key: key, id: state.nextId)
        }
    }

    func unsubscribe(_ subscription: Subscription) {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard var entry = state.entries[subscription.key] else { return nil }
            let waiter = entry.waiters.removeValue(forKey: subscription.id)
            state.entries[subscription.key] = entry.waiters.isEmpty ? nil : entry
            return waiter?.continuation
        }
        continuation?.resume()
    }

    func generation(_ subscription: Subscription) -> UInt64 {
        state.withLockedValue { $0.entries[subscription.key]?.generation ?? 0 }
    }

    /// How many waits have parked since this signal was made, counted when each one parks: lets
    /// a test know that a waiter has really gone to wait (and so that a wake-up, not a re-check
    /// when the wait ends, is what answers it), without sleeping.
    var parkedWaits: UInt64 {
        state.withLockedValue { $0.parkedWaits }
    }

    /// Wakes everyone subscribed to `key`. Cheap when nobody is.
    func signal(_ key: Key) {
        let continuations = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            guard var entry = state.entries[key] else { return [] }
            entry.generation &+= 1
            var woken: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in entry.waiters {
                if let continuation = waiter.continuation {
                    woken.append(continuation)
                    entry.waiters[id]?.continuation = nil
                }
            }
            state.entries[key] = entry
            return woken
        }
        for continuation in continuations { continuation.resume() }
    }

    /// Returns once the generation differs from `since`, the timeout passes, or the task is
    /// cancelled (check `Task.isCancelled` after). Never throws, never waits past cancellation.
    func wait(_ subscription: Subscription, since: UInt64, timeout: Duration? = nil) async {
        guard let timeout else {
            await waitForChange(subscription, since: since)
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForChange(subscription, since: since) }
            group.addTask { try? await Task.sleep(for: timeout) }
            // Whichever ends first; cancelling the other resumes it promptly.
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForChange(_ subscription: Subscription, since: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { state -> Bool in
                    // Task.isCancelled is read under the lock the cancellation handler takes: either
                    // the handler runs first and the flag is already set here, or it runs after and
                    // finds the continuation to resume.
                    guard var entry = state.entries[subscription.key], entry.waiters[subscription.id] != nil,
                        entry.generation == since, !Task.isCancelled
                    else { return true }
                    entry.waiters[subscription.id]?.continuation = continuation
                    state.entries[subscription.key] = entry
                    state.parkedWaits &+= 1
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                guard var entry = state.entries[subscription.key], let waiter = entry.waiters[subscription.id] else {
                    return nil
                }
                entry.waiters[subscription.id]?.continuation = nil
                state.entries[subscription.key] = entry
                return waiter.continuation
            }
            continuation?.resume()
        }
    }
}
