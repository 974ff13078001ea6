import PlatosProto
import Testing

/// The seed's rules (DESIGN §1, §5.2): who recalls what inside and across clusters.
@Suite struct ClusterSharingTests {
    let harness: MemoryHarness
    init() throws { harness = try MemoryHarness() }

    @Test func memberOfTheSameClusterRecallsWhatAnotherMemberWrote() async throws {
        let chat = harness.client(agent: "wally-chat", cluster: "wally")
        let bgo = harness.client(agent: "wally-bgo", cluster: "wally")
        let written = try await chat.write("The user prefers oat milk in their coffee")

        #expect(written.ownerKind == .cluster)
        #expect(written.ownerId == "wally")
        #expect(written.authorAgentId == "wally-chat")
        let recalled = try await bgo.recall("what milk for coffee")
        #expect(recalled.map(\.id) == [written.id])
        #expect(recalled.first?.authorAgentId == "wally-chat")
        #expect(try await bgo.get(written.id).content == written.content)
    }

    @Test func anotherClusterOrAnotherUserRecallsNothing() async throws {
        let chat = harness.client(agent: "wally-chat", cluster: "wally", user: "alice")
        let written = try await chat.write("alice is allergic to peanuts")

        let otherCluster = harness.client(agent: "eve-chat", cluster: "eve", user: "alice")
        #expect(try await otherCluster.recall("peanuts allergic").isEmpty)
        #expect(await rpcError { try await otherCluster.get(written.id) }?.code == .notFound)

        let sameClusterOtherUser = harness.client(agent: "wally-bgo", cluster: "wally", user: "bob")
        #expect(try await sameClusterOtherUser.recall("peanuts allergic").isEmpty)
        #expect(await rpcError { try await sameClusterOtherUser.get(written.id) }?.code == .notFound)

        let otherProject = harness.client(
            agent: "wally-bgo", cluster: "wally", user: "alice",
            scope: V1.Scope(org: "acme", project: "other", env: "prod"))
        #expect(try await otherProject.recall("peanuts allergic").isEmpty)
        let otherEnv = harness.client(
            agent: "wally-bgo", cluster: "wally", user: "alice",
            scope: V1.Scope(org: "acme", project: "wally", env: "dev"))
        #expect(try await otherEnv.recall("peanuts allergic").isEmpty)
    }

    @Test func memoryWrittenBeforeJoiningStaysWithTheAgent() async throws {
        let soloChat = harness.client(agent: "wally-chat", cluster: "")
        let before = try await soloChat.write("the user's birthday is in March")
        #expect(before.ownerKind == .agent)
        #expect(before.ownerId == "wally-chat")

        // Both agents join cluster "wally" (the registry now stamps that cluster).
        let chat = harness.client(agent: "wally-chat", cluster: "wally")
        let bgo = harness.client(agent: "wally-bgo", cluster: "wally")
        #expect(try await chat.recall("birthday").map(\.id) == [before.id])
        #expect(try await bgo.recall("birthday").isEmpty)
        #expect(await rpcError { try await bgo.get(before.id) }?.code == .notFound)

        let shared = try await chat.write("the user's birthday party is on Saturday")
        #expect(Set(try await chat.recall("birthday").map(\.id)) == [before.id, shared.id])
        #expect(try await bgo.recall("birthday").map(\.id) == [shared.id])
    }

    @Test func movingToAnotherClusterDropsTheOldClustersMemory() async throws {
        let chatInA = harness.client(agent: "wally-chat", cluster: "cluster-a")
        let siblingInA = harness.client(agent: "wally-bgo", cluster: "cluster-a")
        let siblingInB = harness.client(agent: "other-bgo", cluster: "cluster-b")
        let oldWrite = try await chatInA.write("project codename is bluebird")
        let oldSiblingWrite = try await siblingInA.write("bluebird launches in May")
        let bWrite = try await siblingInB.write("bluebird budget is approved")

        // wally-chat moves from cluster-a to cluster-b.
        let chatInB = harness.client(agent: "wally-chat", cluster: "cluster-b")
        #expect(try await chatInB.recall("bluebird").map(\.id) == [bWrite.id])
        #expect(await rpcError { try await chatInB.get(oldWrite.id) }?.code == .notFound)
        #expect(await rpcError { try await chatInB.get(oldSiblingWrite.id) }?.code == .notFound)

        // Its old writes stay with the old cluster.
        let stillInA = try await siblingInA.recall("bluebird")
        #expect(Set(stillInA.map(\.id)) == [oldWrite.id, oldSiblingWrite.id])
        #expect(stillInA.allSatisfy { $0.ownerKind == .cluster && $0.ownerId == "cluster-a" })

        let newWrite = try await chatInB.write("bluebird moved to cluster b")
        #expect(newWrite.ownerId == "cluster-b")
        #expect(try await siblingInA.recall("moved").isEmpty)
        #expect(try await siblingInB.recall("moved").map(\.id) == [newWrite.id])
    }

    @Test func privateMemoryOfAClusteredAgentStaysItsOwn() async throws {
        let chat = harness.client(agent: "wally-chat", cluster: "wally")
        let bgo = harness.client(agent: "wally-bgo", cluster: "wally")
        let secret = try await chat.write("draft reply kept private", visibility: .private)

        #expect(secret.ownerKind == .agent)
        #expect(secret.ownerId == "wally-chat")
        #expect(secret.visibility == .private)
        #expect(try await chat.recall("draft reply").map(\.id) == [secret.id])
        #expect(try await bgo.recall("draft reply").isEmpty)
    }

    @Test func anyMemberMayChangeClusterMemoryButNotAnotherAgentsOwn() async throws {
        let chat = harness.client(agent: "wally-chat", cluster: "wally")
        let bgo = harness.client(agent: "wally-bgo", cluster: "wally")
        let shared = try await chat.write("shared note")
        let own = try await chat.write("own note", visibility: .private)

        let updated = try await bgo.rpc.call(
            V1.MemoryService.update,
            V1.UpdateMemoryRequest(memoryId: shared.id, expectedVersion: 1, content: V1.StringValue(value: "edited")))
        #expect(updated.version == 2)
        #expect(updated.authorAgentId == "wally-chat")
        let denied = await rpcError {
            try await bgo.rpc.call(V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: own.id))
        }
        #expect(denied?.code == .notFound)
        #expect(try await bgo.rpc.call(V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: shared.id)).deleted)
    }
}
