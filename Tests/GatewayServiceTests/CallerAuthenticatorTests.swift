import Foundation
import PlatosProto
import Testing

@testable import GatewayService

/// The per-call parts of authentication that were rewritten for speed behave as before.
@Suite struct CallerAuthenticatorTests {
    @Test func theSecretIsWhatFollowsBearerWithoutSpacesAndTabs() {
        #expect(CallerAuthenticator.bearerSecret("Bearer pt_abc_123") == "pt_abc_123")
        #expect(CallerAuthenticator.bearerSecret("Bearer  \tpt_abc_123 \t ") == "pt_abc_123")
        #expect(CallerAuthenticator.bearerSecret("Bearer ") == "")
        #expect(CallerAuthenticator.bearerSecret("Bearer \t  ") == "")
        // Inner whitespace is part of the secret, as with `trimmingCharacters`.
        #expect(CallerAuthenticator.bearerSecret("Bearer a b") == "a b")
    }

    /// The scheme is case-insensitive, as HTTP's are; anything else is not a bearer credential.
    @Test func theSchemeIsMatchedWithoutRegardToCase() {
        #expect(CallerAuthenticator.bearerSecret("bearer pt_x") == "pt_x")
        #expect(CallerAuthenticator.bearerSecret("BEARER pt_x") == "pt_x")
        #expect(CallerAuthenticator.bearerSecret("Basic cHQ6eA==") == nil)
        #expect(CallerAuthenticator.bearerSecret("Bearerpt_x") == nil)
        #expect(CallerAuthenticator.bearerSecret("Bearer\u{0}pt_x") == nil)
        #expect(CallerAuthenticator.bearerSecret("pt_x") == nil)
    }

    @Test func nonASCIIHeadersAreTrimmedAsFoundationTrimsThem() {
        for header in ["Bearer \u{00A0}pt_x\u{2003}", "Bearer  tök ", "Bearer \u{3000}"] {
            let expected = String(header.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)
            #expect(CallerAuthenticator.bearerSecret(header) == expected)
        }
    }

    @Test func cacheKeysAreTheSecretsDigests() {
        let a = PrincipalCache.key("pt_abc_123")
        #expect(a == PrincipalCache.key("pt_abc_123"))
        #expect(a != PrincipalCache.key("pt_abc_124"))
        #expect(a != PrincipalCache.key(""))
        #expect(Set([a, PrincipalCache.key("pt_abc_123"), PrincipalCache.key("other")]).count == 2)
    }
}

/// What the principal cache keeps, and when it stops keeping it.
@Suite struct PrincipalCacheTests {
    static func entry(agent: String, version: UInt64, org: String = "o", token: String? = nil) -> PrincipalCache.Entry {
        PrincipalCache.Entry(
            principal: V1.Principal(
                scope: V1.Scope(org: org, project: "p", env: "dev"), agentId: agent, clusterId: "c1", role: .agent,
                membershipVersion: version),
            tokenId: token ?? "tok-\(agent)", expiresAtUnixMs: 0, storedAt: .now)
    }

    /// A cache holding `agent`'s token (secret `secret-<agent>`) for each of `agents`.
    static func filled(_ agents: [(agent: String, org: String)]) -> PrincipalCache {
        let cache = PrincipalCache(ttl: .seconds(30))
        cache.feedCaughtUp(at: 1)
        for (agent, org) in agents {
            cache.store(entry(agent: agent, version: 1, org: org), for: PrincipalCache.key("secret-\(agent)"), readAt: cache.generation)
        }
        return cache
    }

    /// An admin change through the gateway drops its own project scope's tokens, not every
    /// tenant's: one tenant's admin calls must not cost the others a registry lookup per call.
    @Test func invalidatingAScopeKeepsOtherScopesTokens() {
        let cache = Self.filled([("a1", "tenant-a"), ("a2", "tenant-a"), ("b1", "tenant-b")])
        cache.invalidate(scope: V1.Scope(org: "tenant-a", project: "p", env: "dev"))
        #expect(cache.lookup(PrincipalCache.key("secret-a1")) == nil)
        #expect(cache.lookup(PrincipalCache.key("secret-a2")) == nil)
        #expect(cache.lookup(PrincipalCache.key("secret-b1"))?.principal.agentId == "b1")
    }

    /// An event drops the moved agent's tokens and the revoked token, nothing else; an event
    /// for one agent does not touch tokens with no agent (admin tokens).
    @Test func eventsDropOnlyTheTokensTheyTouch() {
        let cache = Self.filled([("x", "o"), ("y", "o"), ("", "o")])
        cache.apply(V1.MembershipEvent(version: 2, agentId: "x", clusterId: "c2", previousClusterId: "c1"))
        #expect(cache.lookup(PrincipalCache.key("secret-x")) == nil)
        #expect(cache.lookup(PrincipalCache.key("secret-y")) != nil)
        cache.apply(V1.MembershipEvent(version: 3, revokedTokenId: "tok-y"))
        #expect(cache.lookup(PrincipalCache.key("secret-y")) == nil)
        #expect(cache.lookup(PrincipalCache.key("secret-")) != nil)
    }

    /// A token stored again (resolved anew) is indexed once: dropping it later leaves nothing.
    @Test func aTokenStoredTwiceIsDroppedByOneEvent() {
        let cache = Self.filled([("x", "o")])
        let key = PrincipalCache.key("secret-x")
        cache.store(Self.entry(agent: "x", version: 1, org: "o"), for: key, readAt: cache.generation)
        cache.apply(V1.MembershipEvent(version: 2, revokedTokenId: "tok-x"))
        #expect(cache.lookup(key) == nil)
        cache.store(Self.entry(agent: "x", version: 2, org: "o"), for: key, readAt: cache.generation)
        cache.invalidate(scope: V1.Scope(org: "o", project: "p", env: "dev"))
        #expect(cache.lookup(key) == nil)
    }

    /// An answer the registry computed before a change the cache has heard of would bring back
    /// what the change dropped (the registry answered from before the commit): not kept.
    @Test func anAnswerOlderThanTheNewestEventHeardIsNotKept() {
        let cache = PrincipalCache(ttl: .seconds(30))
        cache.feedCaughtUp(at: 5)
        cache.apply(V1.MembershipEvent(version: 10, agentId: "x", clusterId: "c2", previousClusterId: "c1"))
        let key = PrincipalCache.key("secret-x")

        cache.store(Self.entry(agent: "x", version: 9), for: key, readAt: cache.generation)
        #expect(cache.lookup(key) == nil)

        cache.store(Self.entry(agent: "x", version: 10), for: key, readAt: cache.generation)
        #expect(cache.lookup(key)?.principal.membershipVersion == 10)
    }

    /// A registry restored from a backup is back at an older version; once the feed has caught up
    /// there, its answers are kept again.
    @Test func afterCatchingUpAtAnOlderVersionAnswersFromThereAreKept() {
        let cache = PrincipalCache(ttl: .seconds(30))
        cache.feedCaughtUp(at: 10)
        cache.feedLost()
        cache.feedCaughtUp(at: 3)
        let key = PrincipalCache.key("secret-y")
        cache.store(Self.entry(agent: "y", version: 3), for: key, readAt: cache.generation)
        #expect(cache.lookup(key) != nil)
    }

    @Test func nothingIsKeptOrReusedWhileTheFeedIsDown() {
        let cache = PrincipalCache(ttl: .seconds(30))
        let key = PrincipalCache.key("secret-z")
        cache.store(Self.entry(agent: "z", version: 1), for: key, readAt: cache.generation)
        #expect(cache.lookup(key) == nil)
        cache.feedCaughtUp(at: 1)
        cache.store(Self.entry(agent: "z", version: 1), for: key, readAt: cache.generation)
        #expect(cache.lookup(key) != nil)
        cache.feedLost()
        #expect(cache.lookup(key) == nil)
    }
}
