import Crypto
import Foundation
import NIOConcurrencyHelpers
import PlatosProto

/// Resolved tokens, reused only while they are known fresh.
///
/// "Known fresh" means: the `registry.watch` feed is connected and caught up (so any membership
/// change or revocation since the entry was stored would have dropped it), and the entry is
/// younger than the TTL. When the feed is down, nothing is reused: every call asks the registry,
/// and if the registry cannot answer the call fails with `UNAVAILABLE` — never stale access.
final class PrincipalCache: Sendable {
    struct Entry: Sendable {
        let principal: V1.Principal
        let tokenId: String
        let expiresAtUnixMs: Int64
        let storedAt: ContinuousClock.Instant
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var feedLive = false
        /// Moves on every invalidation, so a resolution that raced one is not stored.
        var generation: UInt64 = 0
    }

    private let ttl: Duration
    private let state = NIOLockedValueBox(State())

    init(ttl: Duration) { self.ttl = ttl }

    /// Secrets are keyed by their SHA-256, so the cache holds no usable credential.
    static func key(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    func lookup(_ key: String, now: ContinuousClock.Instant = .now) -> Entry? {
        state.withLockedValue { state in
            guard state.feedLive, let entry = state.entries[key], now - entry.storedAt < ttl else { return nil }
            let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
            guard entry.expiresAtUnixMs == 0 || entry.expiresAtUnixMs > nowMs else { return nil }
            return entry
        }
    }

    var generation: UInt64 { state.withLockedValue { $0.generation } }

    func store(_ entry: Entry, for key: String, readAt generation: UInt64) {
        state.withLockedValue { state in
            guard state.feedLive, state.generation == generation else { return }
            if state.entries.count > 100_000 { state.entries.removeAll(keepingCapacity: true) }
            state.entries[key] = entry
        }
    }

    /// Applies one event from `registry.watch`.
    func apply(_ event: V1.MembershipEvent) {
        state.withLockedValue { state in
            guard !event.agentId.isEmpty || !event.revokedTokenId.isEmpty else { return }
            state.generation &+= 1
            state.entries = state.entries.filter { _, entry in
                entry.principal.agentId != event.agentId && entry.tokenId != event.revokedTokenId
            }
        }
    }

    /// Drops everything: after an admin change made through this gateway, so the very next call
    /// sees it even before the watch feed delivers the event.
    func invalidateAll() {
        state.withLockedValue { state in
            state.generation &+= 1
            state.entries.removeAll()
        }
    }

    /// The feed connected and caught up (`true`) or was lost (`false`: everything is dropped).
    func setFeedLive(_ live: Bool) {
        state.withLockedValue { state in
            state.feedLive = live
            state.generation &+= 1
            if !live { state.entries.removeAll() }
        }
    }
}
