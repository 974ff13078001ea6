import Foundation
import NIOConcurrencyHelpers
import PlatosProto

/// What `auth.resolve` read for a token, kept so the gateway's hottest call does not touch
/// SQLite. Every write that can change an answer (membership, revocation, agent deletion) runs
/// between ``beginChange()`` and ``endChange()``: in between, the cache answers nothing, and at
/// the end it is cleared. A read that overlapped such a write does not store what it read (the
/// generation moved on), so the cache never outlives the database's truth.
///
/// Clearing only after the commit would leave a window: `registry.watch` reads events from the
/// table, so a watcher woken by some other write sends this write's event as soon as it is
/// committed, and the gateway, dropping its own cache on that event, resolves again at once. Were
/// that answered from an entry read before the commit, the gateway would cache the revoked token
/// or the old cluster under its new generation, and hear of the change never again.
final class ResolveCache: Sendable {
    struct Entry: Sendable {
        let secretHash: Data
        let token: V1.TokenInfo
        let clusterId: String
        let agentExists: Bool
        let membershipVersion: UInt64
    }

    private struct State {
        var generation: UInt64 = 0
        var entries: [String: Entry] = [:]
        /// Writes between ``beginChange()`` and ``endChange()``.
        var changesInFlight = 0
    }

    /// Bounded so a flood of distinct tokens cannot grow memory without limit.
    static let capacity = 100_000

    private let state = NIOLockedValueBox(State())

    func entry(_ tokenId: String) -> Entry? {
        state.withLockedValue { $0.changesInFlight > 0 ? nil : $0.entries[tokenId] }
    }

    var generation: UInt64 { state.withLockedValue { $0.generation } }

    func store(_ entry: Entry, for tokenId: String, readAt generation: UInt64) {
        state.withLockedValue { state in
            guard state.generation == generation, state.changesInFlight == 0 else { return }
            if state.entries.count >= Self.capacity { state.entries.removeAll(keepingCapacity: true) }
            state.entries[tokenId] = entry
        }
    }

    /// Before a write that may change answers: until the matching ``endChange()`` every lookup
    /// misses and nothing read is kept.
    func beginChange() {
        state.withLockedValue { state in
            state.changesInFlight += 1
            state.generation &+= 1
        }
    }

    /// After that write has committed or failed: drops whatever a read that overlapped the write
    /// would store and, when the write `changed` rows, every entry. A write that failed or found
    /// nothing to do (a refused or no-op membership call) leaves the answers as they were: else
    /// any admin's failing calls would empty every tenant's cache.
    func endChange(changed: Bool) {
        state.withLockedValue { state in
            state.changesInFlight -= 1
            state.generation &+= 1
            if changed { state.entries.removeAll(keepingCapacity: true) }
        }
    }
}
