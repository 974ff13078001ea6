import Foundation
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
