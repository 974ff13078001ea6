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
        /// Which entries each agent, token and project scope has, so that a change drops just
        /// the entries it touches, in time proportional to them and not to the whole cache.
        var keysByAgent: [String: Set<Key>] = [:]
        var keyByToken: [String: Key] = [:]
        var keysByScope: [ScopeKey: Set<Key>] = [:]
        var feedLive = false
        /// Moves on every invalidation, so a resolution that raced one is not stored.
        var generation: UInt64 = 0
        /// The newest membership version heard from `registry.watch` (events and catch-up
        /// markers): a resolution made at an older one is not stored.
        var knownVersion: UInt64 = 0

        mutating func insert(_ entry: Entry, for key: Key) {
            remove(key)
            entries[key] = entry
            keysByAgent[entry.principal.agentId, default: []].insert(key)
            if let stale = keyByToken.updateValue(key, forKey: entry.tokenId), stale != key { remove(stale) }
            keysByScope[ScopeKey(entry.principal.scope), default: []].insert(key)
        }

        mutating func remove(_ key: Key) {
            guard let entry = entries.removeValue(forKey: key) else { return }
            let agent = entry.principal.agentId
            keysByAgent[agent]?.remove(key)
            if keysByAgent[agent]?.isEmpty == true { keysByAgent[agent] = nil }
            if keyByToken[entry.tokenId] == key { keyByToken[entry.tokenId] = nil }
            let scope = ScopeKey(entry.principal.scope)
            keysByScope[scope]?.remove(key)
            if keysByScope[scope]?.isEmpty == true { keysByScope[scope] = nil }
        }

        mutating func removeAll() {
            entries.removeAll(keepingCapacity: true)
            keysByAgent.removeAll()
            keyByToken.removeAll()
            keysByScope.removeAll()
        }
    }

    /// A project scope as a dictionary key.
    struct ScopeKey: Hashable, Sendable {
        let org: String
        let project: String
        let env: String

        init(_ scope: V1.Scope?) {
            org = scope?.org ?? ""
            project = scope?.project ?? ""
            env = scope?.env ?? ""
        }
    }

    private let ttl: Duration
    /// Past this many tokens the cache starts again from empty: bounded memory whatever callers
    /// present (only tokens the registry resolved are stored).
    static let maxEntries = 100_000
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
            if state.entries.count >= Self.maxEntries { state.removeAll() }
            state.insert(entry, for: key)
        }
    }

    /// Applies one event from `registry.watch`: drops the entries of the agent it moved and of
    /// the token it revoked.
    func apply(_ event: V1.MembershipEvent) {
        state.withLockedValue { state in
            guard !event.agentId.isEmpty || !event.revokedTokenId.isEmpty else { return }
            state.knownVersion = max(state.knownVersion, event.version)
            state.generation &+= 1
            if !event.agentId.isEmpty {
                for key in state.keysByAgent[event.agentId] ?? [] { state.remove(key) }
            }
            if !event.revokedTokenId.isEmpty, let key = state.keyByToken[event.revokedTokenId] {
                state.remove(key)
            }
        }
    }

    /// Drops one project scope's entries: after an admin change made through this gateway in
    /// that scope, so the very next call sees it even before the watch feed delivers the event.
    /// Other tenants' entries stay: one tenant's admin calls cost nobody else a registry lookup.
    func invalidate(scope: V1.Scope?) {
        state.withLockedValue { state in
            state.generation &+= 1
            for key in state.keysByScope[ScopeKey(scope)] ?? [] { state.remove(key) }
        }
    }

    /// Drops everything (the registry's history was reset).
    func invalidateAll() {
        state.withLockedValue { state in
            state.generation &+= 1
            state.removeAll()
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
            state.removeAll()
        }
    }
}
