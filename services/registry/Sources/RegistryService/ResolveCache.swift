import Foundation
import NIOConcurrencyHelpers
import PlatosProto

/// What `auth.resolve` read for a token, kept so the gateway's hottest call does not touch
/// SQLite. Every write that can change an answer (membership, revocation, agent deletion)
/// clears it after its commit; a read that overlapped such a write does not store what it read
/// (the generation moved on), so the cache never outlives the database's truth.
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
    }

    /// Bounded so a flood of distinct tokens cannot grow memory without limit.
    static let capacity = 100_000

    private let state = NIOLockedValueBox(State())

    func entry(_ tokenId: String) -> Entry? { state.withLockedValue { $0.entries[tokenId] } }

    var generation: UInt64 { state.withLockedValue { $0.generation } }

    func store(_ entry: Entry, for tokenId: String, readAt generation: UInt64) {
        state.withLockedValue { state in
            guard state.generation == generation else { return }
            if state.entries.count >= Self.capacity { state.entries.removeAll(keepingCapacity: true) }
            state.entries[tokenId] = entry
        }
    }

    func invalidateAll() {
        state.withLockedValue { state in
            state.generation &+= 1
            state.entries.removeAll(keepingCapacity: true)
        }
    }
}
