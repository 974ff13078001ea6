import Foundation
import Logging
import PlatosAuth
import PlatosProto
import PlatosRPC
import Testing

@testable import GatewayService

/// Long-lived calls end when a change touches their caller, and only then.
struct LiveCallsTests {
    /// Starts a call whose body waits until cancelled (by default throwing when it is), and
    /// returns how the call ended.
    static func start(
        _ calls: LiveCalls, agent: String, token: String, cluster: String = "", tokenExpiresAtUnixMs: Int64 = 0,
        waitUntilRegistered: Bool = true,
        body: @escaping @Sendable () async throws -> Void = { try await Task.sleep(for: .seconds(60)) }
    ) async -> Task<RPCError.Code?, Never> {
        let before = calls.count
        let task = Task { () -> RPCError.Code? in
            do {
                try await calls.run(
                    agentId: agent, tokenId: token, clusterId: cluster, tokenExpiresAtUnixMs: tokenExpiresAtUnixMs, body)
                return nil
            } catch let error as RPCError {
                return error.code
            } catch {
                return .cancelled
            }
        }
        guard waitUntilRegistered else { return task }
        let deadline = ContinuousClock.now + .seconds(10)
        while calls.count == before, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(1)) }
        #expect(calls.count > before, "the call never registered")
        return task
    }

    @Test func anEventEndsTheCallsOfItsAgentAndOfItsTokenOnly() async throws {
        let calls = LiveCalls()
        let a = await Self.start(calls, agent: "agt_a", token: "tok_a")
        let b = await Self.start(calls, agent: "agt_b", token: "tok_b")
        let c = await Self.start(calls, agent: "agt_c", token: "tok_c")
        #expect(calls.count == 3)

        calls.end(touchedBy: V1.MembershipEvent(version: 1, agentId: "agt_a"))
        #expect(await a.value == .unavailable)
        calls.end(touchedBy: V1.MembershipEvent(version: 2, revokedTokenId: "tok_b"))
        #expect(await b.value == .unavailable)
        #expect(calls.count == 1)

        c.cancel()
        #expect(await c.value == .cancelled)
        #expect(calls.count == 0)
    }

    /// No event announces an expiry: the call of a token that expires ends by itself, with
    /// UNAUTHENTICATED, and the calls of other tokens go on.
    @Test func aCallEndsWhenItsTokenExpires() async throws {
        let calls = LiveCalls()
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let expiring = await Self.start(calls, agent: "agt_a", token: "tok_a", tokenExpiresAtUnixMs: nowMs + 300)
        let lasting = await Self.start(calls, agent: "agt_a", token: "tok_b")
        // Registered and ended at once: there is no moment to wait for.
        let expiredAlready = await Self.start(
            calls, agent: "agt_b", token: "tok_c", tokenExpiresAtUnixMs: nowMs - 1, waitUntilRegistered: false)
        #expect(await expiredAlready.value == .unauthenticated)
        #expect(await expiring.value == .unauthenticated)
        #expect(calls.count == 1)
        lasting.cancel()
        #expect(await lasting.value == .cancelled)
    }

    /// A body that stops quietly when cancelled (as a forwarded stream does) still reports why
    /// its call was ended, so the caller knows to reopen it.
    @Test func anEndedCallWhoseBodyReturnsNormallyStillFailsWithTheReason() async throws {
        let calls = LiveCalls()
        let call = await Self.start(calls, agent: "agt_a", token: "tok_a") {
            try? await Task.sleep(for: .seconds(60))  // cancellation ends it without an error
        }
        calls.end(touchedBy: V1.MembershipEvent(version: 1, agentId: "agt_a"))
        #expect(await call.value == .unavailable)
    }

    @Test func losingTheFeedEndsEveryCall() async throws {
        let calls = LiveCalls()
        let a = await Self.start(calls, agent: "agt_a", token: "tok_a")
        let b = await Self.start(calls, agent: "agt_b", token: "tok_b")
        calls.endAll()
        #expect(await a.value == .unavailable)
        #expect(await b.value == .unavailable)
        #expect(calls.count == 0)
    }

    @Test func aCallThatEndsByItselfKeepsItsOwnResult() async throws {
        let calls = LiveCalls()
        #expect(try await calls.run(agentId: "agt_a", tokenId: "tok_a") { 42 } == 42)
        await #expect(throws: RPCError.self) {
            try await calls.run(agentId: "agt_a", tokenId: "tok_a") { throw RPCError(.notFound, "no such thread") }
        }
        #expect(calls.count == 0)
    }

    /// One agent cannot hold more than its share of the gateway's backend connections: the call
    /// past the cap is refused before it runs, other agents are not affected, and a slot frees
    /// when a call ends.
    @Test func anAgentPastItsCapIsRefusedAndOthersAreNot() async throws {
        let calls = LiveCalls(maxPerAgent: 2)
        let first = await Self.start(calls, agent: "agt_a", token: "tok_a")
        let second = await Self.start(calls, agent: "agt_a", token: "tok_a2")
        do {
            try await calls.run(agentId: "agt_a", tokenId: "tok_a") {}
            Issue.record("a third call of agt_a was admitted")
        } catch let error as RPCError {
            #expect(error.code == .resourceExhausted)
            #expect(error.message.contains("2 open streams"))
        }
        let other = await Self.start(calls, agent: "agt_b", token: "tok_b")
        #expect(calls.count == 3)

        first.cancel()
        #expect(await first.value == .cancelled)
        #expect(try await calls.run(agentId: "agt_a", tokenId: "tok_a") { 7 } == 7)
        second.cancel()
        other.cancel()
        _ = await (second.value, other.value)
        #expect(calls.count == 0)
    }

    /// Tokens tied to no agent (admin tokens, of any tenant) are each counted on their own, not
    /// together under the empty agent id.
    @Test func tokensWithoutAnAgentAreCountedApart() async throws {
        let calls = LiveCalls(maxPerAgent: 1)
        let tenantA = await Self.start(calls, agent: "", token: "tok_admin_a")
        let tenantB = await Self.start(calls, agent: "", token: "tok_admin_b")
        #expect(calls.count == 2)
        do {
            try await calls.run(agentId: "", tokenId: "tok_admin_a") {}
            Issue.record("a second call of one admin token was admitted")
        } catch let error as RPCError {
            #expect(error.code == .resourceExhausted)
            #expect(error.message.hasPrefix("this token already holds 1 open"), "\(error.message)")
        }
        tenantA.cancel()
        tenantB.cancel()
        _ = await (tenantA.value, tenantB.value)
        #expect(calls.count == 0)
    }

    /// An admin change made through the gateway ends the live calls it touches before its answer
    /// goes back, without waiting for the registry's watch feed: by agent (cluster create, move,
    /// add, remove, agent delete), by cluster (delete) and by token (revoke).
    @Test func anAdminChangeThroughTheGatewayEndsTheCallsItTouches() async throws {
        let gateway = Gateway(
            configuration: GatewayConfiguration(), signer: try PrincipalSigner(secret: Array(repeating: 7, count: 32)),
            logger: Logger(label: "test"))
        let calls = gateway.liveCalls
        func start(_ agent: String, token: String, cluster: String = "") async -> Task<RPCError.Code?, Never> {
            await Self.start(calls, agent: agent, token: token, cluster: cluster)
        }
        let moved = await start("agt_moved", token: "tok_1")
        let inDeleted = await start("agt_member", token: "tok_2", cluster: "cls_gone")
        let revoked = await start("agt_other", token: "tok_revoked")
        let untouched = await start("agt_stays", token: "tok_4", cluster: "cls_kept")
        let joined = await start("agt_joins", token: "tok_5")

        gateway.endLiveCalls(
            touchedBy: V1.ClustersService.moveMember.descriptor,
            request: try V1.MoveMemberRequest(agentId: "agt_moved", toClusterId: "cls_x").serializedBytes(), response: [])
        #expect(await moved.value == .unavailable)
        gateway.endLiveCalls(
            touchedBy: V1.ClustersService.delete.descriptor,
            request: try V1.DeleteClusterRequest(clusterId: "cls_gone").serializedBytes(), response: [])
        #expect(await inDeleted.value == .unavailable)
        gateway.endLiveCalls(
            touchedBy: V1.TokensService.revoke.descriptor, request: try V1.RevokeTokenRequest(tokenId: "tok_revoked").serializedBytes(),
            response: [])
        #expect(await revoked.value == .unavailable)
        // A create is read from its answer: a retried create answers the first cluster, whatever
        // members the retry names (here someone else's agent, which must be left alone).
        gateway.endLiveCalls(
            touchedBy: V1.ClustersService.create.descriptor,
            request: try V1.CreateClusterRequest(name: "N", slug: "n", agentIds: ["agt_stays"]).serializedBytes(),
            response: try V1.Cluster(id: "cls_n", agentIds: ["agt_joins", "agt_new"]).serializedBytes())
        #expect(await joined.value == .unavailable)
        // A change that touches nobody's identity ends nothing.
        gateway.endLiveCalls(
            touchedBy: V1.TokensService.issue.descriptor, request: try V1.IssueTokenRequest(agentId: "agt_stays").serializedBytes(),
            response: [])
        #expect(calls.count == 1)
        untouched.cancel()
        #expect(await untouched.value == .cancelled)
    }
}
