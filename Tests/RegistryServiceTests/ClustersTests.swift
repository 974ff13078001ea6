import PlatosProto
import PlatosRPC
import Testing

@Suite struct ClustersTests {
    func threeAgents(_ f: RegistryFixture) async throws -> (V1.Agent, V1.Agent, V1.Agent) {
        (try await f.createAgent("wally-chat"), try await f.createAgent("wally-bgo"), try await f.createAgent("other"))
    }

    @Test func createGetListUpdateDelete() async throws {
        let f = try RegistryFixture()
        let (chat, bgo, _) = try await threeAgents(f)
        let admin = f.admin()
        let wally = try await admin.call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "Wally", slug: "wally", agentIds: [chat.id, bgo.id]))
        #expect(Set(wally.agentIds) == [chat.id, bgo.id])
        #expect(try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: chat.id)).clusterId == wally.id)
        #expect(try await admin.call(V1.ClustersService.get, V1.GetClusterRequest(clusterId: wally.id)) == wally)
        #expect(try await admin.call(V1.ClustersService.list, V1.ListClustersRequest()).clusters.map(\.id) == [wally.id])
        let renamed = try await admin.call(
            V1.ClustersService.update, V1.UpdateClusterRequest(clusterId: wally.id, slug: V1.StringValue(value: "wally-2")))
        #expect(renamed.slug == "wally-2")
        let deleted = try await admin.call(V1.ClustersService.delete, V1.DeleteClusterRequest(clusterId: wally.id))
        #expect(deleted.deleted)
        #expect(deleted.membershipVersion > 0)
        // Its members are free again.
        #expect(try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: chat.id)).clusterId == "")
    }

    @Test func createRulesHaveClearErrors() async throws {
        let f = try RegistryFixture()
        let (chat, bgo, other) = try await threeAgents(f)
        let admin = f.admin()
        _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "Wally", slug: "wally", agentIds: [chat.id, bgo.id]))

        let one = await rpcError { _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "X", slug: "x", agentIds: [other.id])) }
        #expect(one == RPCError(.invalidArgument, "agent_ids needs at least two agents, got 1"))

        let twice = await rpcError { _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "X", slug: "x", agentIds: [other.id, other.id])) }
        #expect(twice?.code == .invalidArgument)
        #expect(twice?.message.contains("more than once") == true)

        let taken = await rpcError { _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "X", slug: "x", agentIds: [other.id, bgo.id])) }
        #expect(taken?.code == .failedPrecondition)
        #expect(taken?.message.contains("wally-bgo") == true)
        #expect(taken?.message.contains("'wally'") == true)
        // All or nothing: `other` was not claimed by the failed create.
        #expect(try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: other.id)).clusterId == "")

        let free = try await f.createAgent("free")
        let slug = await rpcError { _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "W", slug: "wally", agentIds: [other.id, free.id])) }
        #expect(slug?.code == .alreadyExists)

        let missing = await rpcError { _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "W", slug: "w", agentIds: [other.id, "agt_nope"])) }
        #expect(missing == RPCError(.notFound, "agent 'agt_nope' not found"))

        let badSlug = await rpcError { _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "W", slug: "W!", agentIds: [other.id, free.id])) }
        #expect(badSlug?.code == .invalidArgument)
        #expect(badSlug?.message.hasPrefix("slug") == true)

        let noName = await rpcError { _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "", slug: "w", agentIds: [other.id, free.id])) }
        #expect(noName == RPCError(.invalidArgument, "name must not be empty"))
    }

    @Test func addRemoveAndMoveMembers() async throws {
        let f = try RegistryFixture()
        let (chat, bgo, other) = try await threeAgents(f)
        let fourth = try await f.createAgent("fourth")
        let admin = f.admin()
        let wally = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "Wally", slug: "wally", agentIds: [chat.id, bgo.id]))
        let added = try await admin.call(V1.ClustersService.addMember, V1.AddMemberRequest(clusterId: wally.id, agentId: other.id))
        #expect(Set(added.cluster?.agentIds ?? []) == [chat.id, bgo.id, other.id])

        let again = await rpcError { _ = try await admin.call(V1.ClustersService.addMember, V1.AddMemberRequest(clusterId: wally.id, agentId: other.id)) }
        #expect(again?.code == .failedPrecondition)

        let removed = try await admin.call(V1.ClustersService.removeMember, V1.RemoveMemberRequest(clusterId: wally.id, agentId: other.id))
        #expect(removed.membershipVersion > added.membershipVersion)
        #expect(Set(removed.cluster?.agentIds ?? []) == [chat.id, bgo.id])

        let notMember = await rpcError { _ = try await admin.call(V1.ClustersService.removeMember, V1.RemoveMemberRequest(clusterId: wally.id, agentId: other.id)) }
        #expect(notMember?.code == .failedPrecondition)

        let second = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "Second", slug: "second", agentIds: [other.id, fourth.id]))
        let moved = try await admin.call(V1.ClustersService.moveMember, V1.MoveMemberRequest(agentId: bgo.id, toClusterId: second.id))
        #expect(Set(moved.cluster?.agentIds ?? []) == [other.id, fourth.id, bgo.id])
        #expect(try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: bgo.id)).clusterId == second.id)
        #expect(try await admin.call(V1.ClustersService.get, V1.GetClusterRequest(clusterId: wally.id)).agentIds == [chat.id])
    }

    /// 50 creates race for one agent: the unique key on membership lets exactly one win.
    @Test func fiftyRacingCreatesClaimAnAgentExactlyOnce() async throws {
        let f = try RegistryFixture()
        let contested = try await f.createAgent("contested")
        var partners: [String] = []
        for i in 0..<50 { partners.append(try await f.createAgent("p\(i)").id) }
        let admin = f.admin()
        let outcomes = await withTaskGroup(of: RPCError.Code.self) { group in
            for (i, partner) in partners.enumerated() {
                group.addTask {
                    do {
                        _ = try await admin.call(
                            V1.ClustersService.create,
                            V1.CreateClusterRequest(name: "C\(i)", slug: "c\(i)", agentIds: [contested.id, partner]))
                        return .ok
                    } catch let error as RPCError {
                        return error.code
                    } catch {
                        return .unknown
                    }
                }
            }
            return await group.reduce(into: [RPCError.Code]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == .ok }.count == 1)
        #expect(outcomes.filter { $0 == .failedPrecondition }.count == 49)
        let clusters = try await admin.call(V1.ClustersService.list, V1.ListClustersRequest(page: V1.PageRequest(pageSize: 500)))
        #expect(clusters.clusters.filter { $0.agentIds.contains(contested.id) }.count == 1)
    }
}
