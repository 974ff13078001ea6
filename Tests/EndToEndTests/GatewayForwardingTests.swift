import Foundation
import PlatosProto
import PlatosRPC
import PlatosTestSupport
import Testing

/// What the gateway forwards besides the payload: the caller's deadline, and its cancellation.
@Suite(.serialized) struct GatewayForwardingTests {
    /// A watch (which never ends by itself) with a short deadline: the caller gets
    /// DEADLINE_EXCEEDED, and the threads service ends its side of the call too (it was given the
    /// caller's budget, or the gateway cancelled it), leaving nothing in flight there.
    @Test func theCallersDeadlineEndsTheBackendsCallToo() async throws {
        let stack = try await SeedStoryTests.startStack()
        let admin = SeedStoryTests.client(stack.gateway.port, token: stack.adminSecret)
        let a = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "a", name: "A"))
        let b = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "b", name: "B"))
        _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "C", slug: "c", agentIds: [a.id, b.id]))
        let token = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: b.id)).secret
        let worker = SeedStoryTests.client(stack.gateway.port, token: token, user: "u1")

        /// Calls the threads service ended early (deadline or cancellation), and calls in flight there.
        func threads() async throws -> (endedEarly: Double, inFlight: Double) {
            let samples = try await AdminHTTPEndToEndTests.scrape(stack.threads)
            let server = ["server": "platos-threads"]
            return (
                AdminHTTPEndToEndTests.total(samples, "rpc_server_events_total", server.merging(["event": "deadline"]) { $1 })
                    + AdminHTTPEndToEndTests.total(samples, "rpc_server_events_total", server.merging(["event": "cancelled"]) { $1 }),
                AdminHTTPEndToEndTests.total(samples, "rpc_server_calls_in_flight", server)
            )
        }
        let before = try await threads().endedEarly
        let thread = try await worker.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "t"))
        await #expect {
            for try await _ in worker.stream(V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: thread.id), timeout: .milliseconds(500)) {}
        } throws: { error in
            (error as? RPCError)?.code == .deadlineExceeded
        }
        // The backend's side of the call ends by itself (its own deadline or the gateway's CANCEL).
        let deadline = ContinuousClock.now + .seconds(20)
        var now = try await threads()
        while now.endedEarly - before < 1 || now.inFlight > 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            now = try await threads()
        }
        #expect(now.endedEarly - before >= 1)
        #expect(now.inFlight == 0)
        #expect(await stack.stop() == [0, 0, 0, 0])
    }
}
