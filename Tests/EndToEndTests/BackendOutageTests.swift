import Foundation
import PlatosProto
import PlatosRPC
import Testing

/// A backend that goes away mid-load: its routes fail fast with UNAVAILABLE, the other routes keep
/// working, and traffic resumes by itself when it is back, without restarting the gateway.
@Suite(.serialized) struct BackendOutageTests {
    @Test func memoryDownThenBack() async throws {
        let stack = try await SeedStoryTests.startStack()
        let port = stack.gateway.port
        let admin = SeedStoryTests.client(port, token: stack.adminSecret)
        let a = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "a", name: "A"))
        let b = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "b", name: "B"))
        _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "C", slug: "c", agentIds: [a.id, b.id]))
        let token = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: a.id)).secret
        let agent = SeedStoryTests.client(port, token: token, user: "u1")
        _ = try await agent.call(V1.MemoryService.write, V1.WriteMemoryRequest(content: "the sky is blue"))
        let thread = try await agent.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "t"))
        #expect(!(try await agent.call(V1.MemoryService.recall, V1.RecallRequest(query: "sky", limit: 5))).items.isEmpty)
        for i in 1...30 {
            _ = try await agent.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, role: .agent, content: "m\(i)"))
        }
        // context.load: both sides in one answer, and the thread's newest messages, not its first.
        let context = try await agent.call(
            V1.ContextService.load, V1.LoadContextRequest(threadId: thread.id, query: "sky", recallLimit: 5, messageLimit: 3))
        #expect(context.memories.first?.item?.content == "the sky is blue")
        #expect(context.messages.map(\.content) == ["m28", "m29", "m30"])
        #expect(context.thread?.id == thread.id && context.thread?.lastSeq == 30)
        #expect(context.memoriesStatus?.code == .ok && context.messagesStatus?.code == .ok)
        // A request one side refuses as wrong fails whole, named after that side's call: here no
        // end user for the recall (the token is not bound to one, and no x-platos-user is sent).
        let userless = SeedStoryTests.client(port, token: token)
        await #expect {
            _ = try await userless.call(V1.ContextService.load, V1.LoadContextRequest(threadId: thread.id, query: "sky"))
        } throws: { error in
            (error as? RPCError)?.code == .invalidArgument && (error as? RPCError)?.message.hasPrefix("memory.recall: ") == true
        }

        // Memory goes away (SIGKILL, as in a crash).
        let memoryPort = stack.memory.port
        await stack.memory.kill()
        for _ in 0..<5 {
            do {
                _ = try await agent.call(V1.MemoryService.recall, V1.RecallRequest(query: "sky", limit: 5), timeout: .seconds(5))
                Issue.record("a recall succeeded with memory down")
            } catch let error as RPCError {
                // Within the call's deadline, not at it: that would be DEADLINE_EXCEEDED.
                #expect(error.code == .unavailable, "\(error)")
            }
            // Threads keep working meanwhile.
            _ = try await agent.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, role: .agent, content: "still here"))
        }
        // context.load answers with the side that works, and says which side did not.
        let partial = try await agent.call(
            V1.ContextService.load, V1.LoadContextRequest(threadId: thread.id, query: "sky", messageLimit: 1), timeout: .seconds(5))
        #expect(partial.memoriesStatus?.code == .unavailable)
        #expect(partial.memoriesStatus?.message.hasPrefix("memory:") == true)
        #expect(partial.memories.isEmpty)
        #expect(partial.messagesStatus?.code == .ok && partial.messages.map(\.content) == ["still here"])

        // Memory comes back on the same port and data; recalls work again, same gateway.
        let dataDir = stack.memory.dataDir
        let revived = try await ServiceProcess("memory", dataDir: dataDir, extraArguments: ["--port", "\(memoryPort)"])
        let deadline = ContinuousClock.now + .seconds(20)
        var recalled: V1.RecallResponse?
        while recalled == nil, ContinuousClock.now < deadline {
            recalled = try? await agent.call(V1.MemoryService.recall, V1.RecallRequest(query: "sky", limit: 5), timeout: .seconds(2))
            if recalled == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(recalled?.items.first?.item?.content == "the sky is blue")
        _ = await revived.stop()
        for process in [stack.gateway, stack.threads, stack.registry] { _ = await process.stop() }
    }

    /// The registry goes away: the gateway fails closed. Once it has lost the registry's watch
    /// feed it reuses no cached token (its news of revocations and moves is gone), so every call
    /// is UNAVAILABLE, a token it had cached as much as a new one; nothing is served on a stale
    /// answer. When the registry is back, calls succeed again without restarting the gateway.
    @Test func registryDownFailsClosedThenRecovers() async throws {
        let stack = try await SeedStoryTests.startStack()
        let port = stack.gateway.port
        let admin = SeedStoryTests.client(port, token: stack.adminSecret)
        let a = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "a", name: "A"))
        let cached = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: a.id)).secret
        let unused = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: a.id)).secret
        let agent = SeedStoryTests.client(port, token: cached, user: "u1")
        let thread = try await agent.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "t"))

        let registryPort = stack.registry.port
        await stack.registry.kill()
        // The gateway hears the feed drop (its connection closes with the process); until then
        // the cached token is still known fresh. From the first refusal on, nothing gets through.
        let deadline = ContinuousClock.now + .seconds(20)
        var refusal: RPCError?
        while refusal == nil, ContinuousClock.now < deadline {
            do {
                _ = try await agent.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id), timeout: .seconds(5))
                try await Task.sleep(for: .milliseconds(20))
            } catch let error as RPCError {
                refusal = error
            }
        }
        #expect(refusal?.code == .unavailable, "\(String(describing: refusal))")
        #expect(refusal?.message.contains("registry") == true, "\(String(describing: refusal))")
        for token in [cached, unused, cached] {
            let caller = SeedStoryTests.client(port, token: token, user: "u1")
            #expect(await SeedStoryTests.code {
                _ = try await caller.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id), timeout: .seconds(5))
            } == .unavailable)
        }

        // Back on the same port and data: the gateway reconnects by itself.
        let revived = try await ServiceProcess("registry", dataDir: stack.registry.dataDir, extraArguments: ["--port", "\(registryPort)"])
        let until = ContinuousClock.now + .seconds(30)
        var got: V1.Thread?
        while got == nil, ContinuousClock.now < until {
            got = try? await agent.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id), timeout: .seconds(2))
            if got == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(got?.id == thread.id)
        _ = await revived.stop()
        for process in [stack.gateway, stack.threads, stack.memory] { _ = await process.stop() }
    }
}
