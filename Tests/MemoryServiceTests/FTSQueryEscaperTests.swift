import PlatosProto
import Testing

@testable import MemoryService

@Suite struct FTSQueryEscaperTests {
    let scope = MemoryScope(org: "o", project: "p", env: "e", owner: .cluster("c"), userId: "u")
    let other = MemoryScope(org: "o", project: "p", env: "e", owner: .agent("a"), userId: "u")

    @Test func tokenizerFoldsCaseAndDiacriticsAndDropsSyntax() {
        #expect(
            TextTokenizer.words("Hello, WORLD! café-Naïve \"x\" *y* NEAR(z)", limit: 100)
                == ["hello", "world", "cafe", "naive", "x", "y", "near", "z"])
        #expect(TextTokenizer.words("ÉCOLE École", limit: 100) == ["ecole", "ecole"])
        #expect(TextTokenizer.words("a b c d", limit: 2) == ["a", "b"])
        #expect(TextTokenizer.words("*** \" -- ", limit: 10).isEmpty)
    }

    @Test func everyQueryTermIsQuotedAndCarriesAScopePrefix() {
        let (expression, hasWords) = FTSQueryEscaper.matchExpression(
            query: "NEAR(secret \"pass\" OR -x*", scopes: [scope, other])
        #expect(hasWords)
        let terms = expression.components(separatedBy: " OR ")
        // near, secret, pass, or, x: five words, one term per scope each.
        #expect(terms.count == 10)
        for term in terms {
            #expect(term.hasPrefix("\"") && term.hasSuffix("\""))
            let body = term.dropFirst().dropLast()
            #expect(body.allSatisfy { ("0"..."9").contains($0) || ("a"..."z").contains($0) })
            #expect(body.hasPrefix(scope.termPrefix) || body.hasPrefix(other.termPrefix))
        }
    }

    @Test func aQueryWithoutWordsMatchesTheBareScopeTerms() {
        let (expression, hasWords) = FTSQueryEscaper.matchExpression(query: "\"*\" - ()", scopes: [scope])
        #expect(!hasWords)
        #expect(expression == "\"\(scope.termPrefix)\"")
    }

    @Test func scopesDifferInEveryField() {
        let variants = [
            scope,
            MemoryScope(org: "o2", project: "p", env: "e", owner: .cluster("c"), userId: "u"),
            MemoryScope(org: "o", project: "p2", env: "e", owner: .cluster("c"), userId: "u"),
            MemoryScope(org: "o", project: "p", env: "e2", owner: .cluster("c"), userId: "u"),
            MemoryScope(org: "o", project: "p", env: "e", owner: .agent("c"), userId: "u"),
            MemoryScope(org: "o", project: "p", env: "e", owner: .cluster("c2"), userId: "u"),
            MemoryScope(org: "o", project: "p", env: "e", owner: .cluster("c"), userId: "u2"),
        ]
        #expect(Set(variants.map(\.termPrefix)).count == variants.count)
    }

    @Test func indexTermsStartWithTheBareScopeTerm() {
        let terms = FTSQueryEscaper.indexTerms(content: "Hello hello", scope: scope).split(separator: " ")
        #expect(terms.count == 3)
        #expect(terms[0] == scope.termPrefix)
        #expect(terms[1] == terms[2])
        #expect(terms[1] == scope.termPrefix + FTSQueryEscaper.wordHash("hello"))
    }

    @Test func ownerFollowsClusterAndVisibility() {
        #expect(MemoryOwner.forWrite(agentId: "a", clusterId: "c", visibility: .shared) == .cluster("c"))
        #expect(MemoryOwner.forWrite(agentId: "a", clusterId: "c", visibility: .private) == .agent("a"))
        #expect(MemoryOwner.forWrite(agentId: "a", clusterId: "", visibility: .shared) == .agent("a"))
    }
}
