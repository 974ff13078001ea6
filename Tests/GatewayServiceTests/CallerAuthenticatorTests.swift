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
    static func entry(agent: String, version: UInt64) -> PrincipalCache.Entry {
        PrincipalCache.Entry(
            principal: V1.Principal(agentId: agent, clusterId: "c1", role: .agent, membershipVersion: version),
            tokenId: "tok-\(agent)", expiresAtUnixMs: 0, storedAt: .now)
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
