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
///
/// Nor is an answer stored that the registry computed before a change this cache has already
/// heard of (its `membershipVersion` is older than the newest event): the change dropped the
/// entries it touched, and an answer from before it would bring one back, with nothing left to
/// drop it again.
final class PrincipalCache: Sendable {
    struct Entry: Sendable {
        let principal: V1.Principal
        let tokenId: String
        let expiresAtUnixMs: Int64
        let storedAt: ContinuousClock.Instant
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var feedLive = false
        /// Moves on every invalidation, so a resolution that raced one is not stored.
        var generation: UInt64 = 0
        /// The newest membership version heard from `registry.watch` (events and catch-up
        /// markers): a resolution made at an older one is not stored.
        var knownVersion: UInt64 = 0
    }

    private let ttl: Duration
    private let state = NIOLockedValueBox(State())

    init(ttl: Duration) { self.ttl = ttl }

    /// A secret's SHA-256: the cache holds no usable credential.
    struct Key: Hashable, Sendable {
        let words: (UInt64, UInt64, UInt64, UInt64)

        static func == (a: Key, b: Key) -> Bool {
            a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(words.0)
            hasher.combine(words.1)
            hasher.combine(words.2)
            hasher.combine(words.3)
        }
    }

    /// Secrets are keyed by their SHA-256, so the cache holds no usable credential. The digest is
    /// the key as it is: this runs on every call, and hex-encoding it with `String(format:)` was
    /// a quarter of the gateway's CPU.
    static func key(_ secret: String) -> Key {
        var secret = secret
        let digest = secret.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        return digest.withUnsafeBytes { bytes in
            Key(
                words: (
                    bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                    bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                    bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                    bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
                ))
        }
    }

    func lookup(_ key: Key, now: ContinuousClock.Instant = .now) -> Entry? {
        state.withLockedValue { state in
            guard state.feedLive, let entry = state.entries[key], now - entry.storedAt < ttl else { return nil }
            let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
            guard entry.expiresAtUnixMs == 0 || entry.expiresAtUnixMs > nowMs else { return nil }
            return entry
        }
    }

    var generation: UInt64 { state.withLockedValue { $0.generation } }

    func store(_ entry: Entry, for key: Key, readAt generation: UInt64) {
        state.withLockedValue { state in
            guard state.feedLive, state.generation == generation,
                entry.principal.membershipVersion >= state.knownVersion
            else { return }
            if state.entries.count > 100_000 { state.entries.removeAll(keepingCapacity: true) }
            state.entries[key] = entry
        }
    }

    /// Applies one event from `registry.watch`.
    func apply(_ event: V1.MembershipEvent) {
        state.withLockedValue { state in
            guard !event.agentId.isEmpty || !event.revokedTokenId.isEmpty else { return }
            state.knownVersion = max(state.knownVersion, event.version)
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

    /// The feed caught up at `version` (a registry restored from a backup may be back at an older
    /// one): entries may be reused from here on.
    func feedCaughtUp(at version: UInt64) {
        state.withLockedValue { state in
            state.knownVersion = version
            state.feedLive = true
            state.generation &+= 1
        }
    }

    /// The feed was lost: everything is dropped, and nothing is reused until it catches up again.
    func feedLost() {
        state.withLockedValue { state in
            state.feedLive = false
            state.generation &+= 1
            state.entries.removeAll()
        }
    }
}
