import PlatosProto
import PlatosRPC
import Testing

@Suite struct AgentsTests {
    @Test func createGetListUpdateDelete() async throws {
        let f = try RegistryFixture()
        let admin = f.admin()
        let chat = try await admin.call(
            V1.AgentsService.create,
            V1.CreateAgentRequest(slug: "wally-chat", name: "Wally Chat", description: "talks", metadata: ["tier": "gold"]))
        #expect(chat.id.hasPrefix("agt_"))
        #expect(chat.scope == RegistryFixture.scopeP)
        #expect(chat.metadata == ["tier": "gold"])
        #expect(try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: chat.id)) == chat)

        let bgo = try await f.createAgent("wally-bgo")
        let all = try await admin.call(V1.AgentsService.list, V1.ListAgentsRequest())
        #expect(Set(all.agents.map(\.id)) == [chat.id, bgo.id])

        let renamed = try await admin.call(
            V1.AgentsService.update, V1.UpdateAgentRequest(agentId: chat.id, name: V1.StringValue(value: "Wally")))
        #expect(renamed.name == "Wally")
        #expect(renamed.slug == "wally-chat")

        #expect(try await admin.call(V1.AgentsService.delete, V1.DeleteAgentRequest(agentId: chat.id)).deleted)
        let gone = await rpcError { _ = try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: chat.id)) }
        #expect(gone == RPCError(.notFound, "agent '\(chat.id)' not found"))
    }

    @Test func listPagesWithACursorAndFiltersUnclustered() async throws {
        let f = try RegistryFixture()
        var ids: [String] = []
        for i in 0..<7 { ids.append(try await f.createAgent("a\(i)").id) }
        _ = try await f.admin().call(V1.ClustersService.create, V1.CreateClusterRequest(name: "C", slug: "c", agentIds: [ids[0], ids[1]]))
        var seen: [String] = []
        var page = V1.PageRequest(pageSize: 3)
        repeat {
            let response = try await f.admin().call(V1.AgentsService.list, V1.ListAgentsRequest(page: page))
            #expect(response.agents.count <= 3)
            seen += response.agents.map(\.id)
            page.pageToken = response.nextPageToken
        } while !page.pageToken.isEmpty
        #expect(seen.sorted() == ids.sorted())
        let free = try await f.admin().call(V1.AgentsService.list, V1.ListAgentsRequest(unclusteredOnly: true))
        #expect(Set(free.agents.map(\.id)) == Set(ids[2...]))
    }

    @Test func duplicateSlugIsAlreadyExists() async throws {
        let f = try RegistryFixture()
        try await f.createAgent("wally-chat")
        let error = await rpcError { try await f.createAgent("wally-chat") }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message.contains("wally-chat") == true)
        // The same slug in another project is fine.
        try await f.createAgent("wally-chat", scope: RegistryFixture.scopeQ)
    }

    @Test func invalidInputNamesTheField() async throws {
        let f = try RegistryFixture()
        let cases: [(V1.CreateAgentRequest, String)] = [
            (V1.CreateAgentRequest(slug: "Wally Chat", name: "x"), "slug"),
            (V1.CreateAgentRequest(slug: "", name: "x"), "slug"),
            (V1.CreateAgentRequest(slug: String(repeating: "a", count: 64), name: "x"), "slug"),
            (V1.CreateAgentRequest(slug: "ok", name: ""), "name"),
            (V1.CreateAgentRequest(slug: "ok", name: "   "), "name"),
            (V1.CreateAgentRequest(slug: "ok", name: "x", metadata: ["k": String(repeating: "v", count: 20_000)]), "metadata"),
        ]
        for (request, field) in cases {
            let error = await rpcError { _ = try await f.admin().call(V1.AgentsService.create, request) }
            #expect(error?.code == .invalidArgument, "\(request)")
            #expect(error?.message.hasPrefix(field) == true, "\(error?.message ?? "")")
        }
    }

    /// Updates are held to create's limits, a merged map to the metadata limit, and numbers that
    /// once overflowed (a token's lifetime) are refused, not a crash of the shared registry.
    @Test func updatesMergesKeysAndLifetimesAreHeldToLimits() async throws {
        let f = try RegistryFixture()
        let agent = try await f.createAgent("a")
        let admin = f.admin()
        let long = String(repeating: "x", count: 5000)
        let refusals: [(String, () async throws -> Void)] = [
            ("avatar_url", { _ = try await admin.call(V1.AgentsService.update, V1.UpdateAgentRequest(agentId: agent.id, avatarUrl: V1.StringValue(value: long))) }),
            ("description", { _ = try await admin.call(V1.AgentsService.update, V1.UpdateAgentRequest(agentId: agent.id, description: V1.StringValue(value: long))) }),
            ("idempotency_key", { _ = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "b", name: "B", idempotencyKey: String(repeating: "k", count: 257))) }),
            ("ttl_seconds", { _ = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .admin, ttlSeconds: .max)) }),
            ("ttl_seconds", { _ = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .admin, ttlSeconds: -1)) }),
        ]
        for (field, call) in refusals {
            let error = await rpcError(call)
            #expect(error?.code == .invalidArgument, "\(field)")
            #expect(error?.message.hasPrefix(field) == true, "\(error?.message ?? "")")
        }
        // Two merges of 10 KiB each under different keys: the second would pass 16 KiB.
        let tenKiB = String(repeating: "v", count: 10 * 1024)
        _ = try await admin.call(V1.AgentsService.update, V1.UpdateAgentRequest(agentId: agent.id, metadata: ["one": tenKiB]))
        let merged = await rpcError {
            _ = try await admin.call(V1.AgentsService.update, V1.UpdateAgentRequest(agentId: agent.id, metadata: ["two": tenKiB]))
        }
        #expect(merged?.code == .invalidArgument)
        #expect(merged?.message.hasPrefix("metadata (merged") == true, "\(merged?.message ?? "")")
        let stored = try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: agent.id))
        #expect(stored.metadata == ["one": tenKiB])
        // A token for ten years is fine.
        let token = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .admin, ttlSeconds: 10 * 365 * 24 * 3600))
        #expect(token.token?.expiresAtUnixMs ?? 0 > 0)
    }

    @Test func onlyAdminsChangeAgents() async throws {
        let f = try RegistryFixture()
        let agent = try await f.createAgent("a")
        let error = await rpcError {
            _ = try await f.agent(agent.id).call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "b", name: "B"))
        }
        #expect(error?.code == .permissionDenied)
        // Agents may read themselves (and their own cluster: ScopeIsolationTests).
        #expect(try await f.agent(agent.id).call(V1.AgentsService.get, V1.GetAgentRequest(agentId: agent.id)).id == agent.id)
    }

    @Test func callsWithoutASignedPrincipalAreUnauthenticated() async throws {
        let f = try RegistryFixture()
        for call in [
            { _ = try await f.unsigned.call(V1.AgentsService.list, V1.ListAgentsRequest()) },
            { _ = try await f.unsigned.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: "x")) },
        ] as [() async throws -> Void] {
            #expect(await rpcError(call)?.code == .unauthenticated)
        }
    }
}
