import PlatosProto
import PlatosRPC
import Testing

/// User text reaches FTS5 only as quoted, scope-bound terms: FTS syntax, quotes, unicode and
/// floods of `*` never error and never return another scope's memories.
@Suite struct HostileQueryTests {
    let harness: MemoryHarness
    let mine: MemoryClient
    let ownIds: Set<String>

    init() async throws {
        harness = try MemoryHarness()
        mine = harness.client(agent: "wally-chat", cluster: "wally", user: "alice")
        // Someone else's memories, full of the words and symbols the hostile queries use.
        let other = harness.client(agent: "eve-chat", cluster: "eve", user: "alice")
        let otherUser = harness.client(agent: "wally-bgo", cluster: "wally", user: "mallory")
        for client in [other, otherUser] {
            try await client.write("secret OR NEAR star * quote \" minus - café naïve 東京 emoji 🚀 password")
        }
        var ids = Set<String>()
        ids.insert(try await mine.write("my own note about café and 東京 with a rocket 🚀").id)
        ids.insert(try await mine.write("my password hint is the name of the dog").id)
        ownIds = ids
    }

    static let queries: [String] = [
        "\"", "\"\"", "\"secret", "*", "secret*", "NEAR(secret password)", "NEAR(", "OR", "secret OR password",
        "AND", "NOT", "-", "-secret", "- password", "secret -password", "terms:secret", "{terms}: secret",
        "^secret", "(secret", "secret)", "'", "';DROP TABLE memories;--", "\\", "\u{0}", "café", "CAFE", "東京",
        "🚀", "Ω≈ç√∫", "\u{202E}drowssap", "a\u{301}", String(repeating: "*", count: 1024),
        String(repeating: "\"", count: 1024), String(repeating: "OR ", count: 341), "*:*", "rowid:1", "memory_fts",
    ]

    /// The bar: results from the caller's scope only, or a clear INVALID_ARGUMENT.
    @Test(arguments: queries)
    func hostileQueryStaysInScope(_ query: String) async throws {
        do {
            let found = try await mine.recall(query, limit: 100)
            #expect(Set(found.map(\.id)).isSubset(of: ownIds))
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
        }
    }

    @Test func quotedOperatorsAreSearchedAsWords() async throws {
        // "password" is in one of our memories and in the strangers'; the operators around it
        // must neither fail nor reach beyond our scope.
        let found = try await mine.recall("NEAR(\"password\" OR secret*) -dog", limit: 100)
        #expect(!found.isEmpty)
        #expect(Set(found.map(\.id)).isSubset(of: ownIds))
    }

    @Test func diacriticsAndCaseMatchAcrossForms() async throws {
        let found = try await mine.recall("CAFE")
        #expect(found.count == 1)
        #expect(found.first?.content.contains("café") == true)
        #expect(try await mine.recall("東京").count == 1)
    }

    @Test func aQueryWithoutWordsRecallsTheScopeByRecency() async throws {
        let found = try await mine.recall("*", limit: 100)
        #expect(Set(found.map(\.id)) == ownIds)
    }

    @Test func aQueryOverOneKibibyteIsInvalid() async throws {
        let error = await rpcError { try await mine.recall(String(repeating: "*", count: 1025)) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("query") == true)
    }
}
