import Foundation
import PlatosProto
import PlatosRPC
import Testing

/// The seed story, end to end: the four real executables, called only through the gateway.
@Suite(.serialized) struct SeedStoryTests {
    struct Stack {
        let registry: ServiceProcess
        let memory: ServiceProcess
        let threads: ServiceProcess
        let gateway: ServiceProcess
        let adminSecret: String

        func stop() async -> [Int32] {
            var codes: [Int32] = []
            for process in [gateway, threads, memory, registry] { codes.append(await process.stop()) }
            return codes
        }
    }

    static func startStack(gatewayArguments: [String] = []) async throws -> Stack {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let (secret, status) = try ServiceProcess.issueAdminToken(dataDir: dataDir)
        guard status == 0 else { throw RPCError(.internal, "issue-admin-token exited \(status)") }
        let registry = try await ServiceProcess("registry", dataDir: dataDir)
        let memory = try await ServiceProcess("memory", dataDir: dataDir)
        let threads = try await ServiceProcess("threads", dataDir: dataDir, extraArguments: ["--registry", "127.0.0.1:\(registry.port)"])
        let gateway = try await ServiceProcess(
            "gateway", dataDir: dataDir,
            extraArguments: [
                "--registry", "127.0.0.1:\(registry.port)", "--memory", "127.0.0.1:\(memory.port)",
                "--threads", "127.0.0.1:\(threads.port)",
            ] + gatewayArguments)
        return Stack(registry: registry, memory: memory, threads: threads, gateway: gateway, adminSecret: secret)
    }

    static func client(_ port: Int, token: String, user: String? = nil, task: String? = nil) -> RPCClient {
        var metadata: Metadata = ["authorization": "Bearer \(token)"]
        if let user { metadata["x-platos-user"] = user }
        if let task { metadata["x-platos-task"] = task }
        return RPCClient(
            transport: RPCConnectionPool(host: "127.0.0.1", port: port), defaultMetadata: metadata,
            defaultTimeout: .seconds(10))
    }

    static func code(_ body: () async throws -> Void) async -> RPCError.Code? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error.code
        } catch {
            return .unknown
        }
    }

    @Test func theSeedStory() async throws {
        let stack = try await Self.startStack()
        let port = stack.gateway.port
        let admin = Self.client(port, token: stack.adminSecret)

        // Admin creates the agents and the Wally cluster; a second cluster exists too.
        let chat = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "wally-chat", name: "Wally Chat"))
        let bgo = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "wally-bgo", name: "Wally BGO"))
        let other = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "other", name: "Other"))
        let s1 = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "second-a", name: "Second A"))
        let s2 = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "second-b", name: "Second B"))
        let wally = try await admin.call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "Wally", slug: "wally", agentIds: [chat.id, bgo.id]))
        let second = try await admin.call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "Second", slug: "second", agentIds: [s1.id, s2.id]))
        func token(_ agent: V1.Agent) async throws -> String {
            try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id)).secret
        }
        let (chatToken, bgoToken, otherToken, s1Token) = (try await token(chat), try await token(bgo), try await token(other), try await token(s1))
        let user = "user-U"
        let chatU = Self.client(port, token: chatToken, user: user)
        let bgoU = Self.client(port, token: bgoToken, user: user)
        let otherU = Self.client(port, token: otherToken, user: user)
        let secondU = Self.client(port, token: s1Token, user: user)
        // An end-user id is an id: one of 300 bytes is refused before it is stamped anywhere.
        let longUser = Self.client(port, token: otherToken, user: String(repeating: "u", count: 300))
        #expect(await Self.code {
            _ = try await longUser.call(V1.MemoryService.recall, V1.RecallRequest(query: "x", limit: 1))
        } == .invalidArgument)

        // Shared memory: chat writes for U, bgo recalls it; other and a second-cluster member do not.
        _ = try await chatU.call(V1.MemoryService.write, V1.WriteMemoryRequest(content: "U prefers window seats", tags: ["travel"]))
        let recalled = try await bgoU.call(V1.MemoryService.recall, V1.RecallRequest(query: "window seats", limit: 5))
        #expect(recalled.items.contains { $0.item?.content == "U prefers window seats" })
        #expect(try await otherU.call(V1.MemoryService.recall, V1.RecallRequest(query: "window seats", limit: 5)).items.isEmpty)
        #expect(try await secondU.call(V1.MemoryService.recall, V1.RecallRequest(query: "window seats", limit: 5)).items.isEmpty)

        // Shared threads: chat creates and posts; bgo sees both, attributed to chat.
        let thread = try await chatU.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "Trip"))
        _ = try await chatU.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, role: .agent, content: "Booking."))
        #expect(try await bgoU.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id)).id == thread.id)
        let seen = try await bgoU.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(seen.messages.map(\.authorAgentId) == [chat.id])

        // spawn_bgo: chat hands work to bgo, which acts as U through x-platos-task and posts the result.
        let task = try await chatU.call(
            V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: "wally-bgo", prompt: "find flights", threadId: thread.id))
        #expect(task.userId == user)
        let bgoWorker = Self.client(port, token: bgoToken)
        let claimed = try #require(try await bgoWorker.call(V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 5000)).task)
        #expect(claimed.id == task.id)
        let asTask = Self.client(port, token: bgoToken, task: claimed.id)
        // Acting for U via the task: bgo recalls U's memory without naming U itself.
        #expect(!(try await asTask.call(V1.MemoryService.recall, V1.RecallRequest(query: "window", limit: 5))).items.isEmpty)
        // A token bound to a user acts for that user only: another user's task is not there for
        // it (NOT_FOUND, as for a task that does not exist).
        func bgoBound(to boundUser: String) async throws -> RPCClient {
            let issued = try await admin.call(
                V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: bgo.id, boundUserId: boundUser))
            return Self.client(port, token: issued.secret, task: claimed.id)
        }
        #expect(await Self.code {
            _ = try await bgoBound(to: "user-V").call(V1.MemoryService.recall, V1.RecallRequest(query: "window", limit: 5))
        } == .notFound)
        #expect(!(try await bgoBound(to: user).call(V1.MemoryService.recall, V1.RecallRequest(query: "window", limit: 5))).items.isEmpty)
        _ = try await asTask.call(
            V1.TasksService.complete, V1.CompleteTaskRequest(taskId: claimed.id, leaseId: claimed.leaseId, result: "3 flights"))
        let after = try await chatU.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        let result = try #require(after.messages.last)
        #expect(result.content.contains("3 flights"))
        #expect(result.authorAgentId == bgo.id)
        #expect(result.userId == user)
        // The task is done: naming it no longer makes bgo act for U.
        #expect(await Self.code {
            _ = try await asTask.call(V1.MemoryService.recall, V1.RecallRequest(query: "window", limit: 5))
        } == .failedPrecondition)

        // Isolation: other cannot spawn to wally-bgo, nor read the Wally thread.
        #expect(await Self.code {
            _ = try await otherU.call(V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: "wally-bgo", prompt: "x", threadId: thread.id))
        } == .permissionDenied)
        #expect(await Self.code { _ = try await otherU.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id)) } == .notFound)

        // Memory other wrote before joining a cluster stays its own.
        _ = try await otherU.call(V1.MemoryService.write, V1.WriteMemoryRequest(content: "other's private note about lobsters"))
        _ = try await admin.call(V1.ClustersService.addMember, V1.AddMemberRequest(clusterId: second.id, agentId: other.id))
        #expect(!(try await otherU.call(V1.MemoryService.recall, V1.RecallRequest(query: "lobsters", limit: 5))).items.isEmpty)
        #expect(try await secondU.call(V1.MemoryService.recall, V1.RecallRequest(query: "lobsters", limit: 5)).items.isEmpty)

        // Moving bgo out of Wally removes its access on its very next call.
        _ = try await admin.call(V1.ClustersService.moveMember, V1.MoveMemberRequest(agentId: bgo.id, toClusterId: second.id))
        #expect(try await bgoU.call(V1.MemoryService.recall, V1.RecallRequest(query: "window seats", limit: 5)).items.isEmpty)
        #expect(await Self.code { _ = try await bgoU.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id)) } == .notFound)
        _ = wally

        #expect(await stack.stop() == [0, 0, 0, 0])
    }

    /// A stream is admitted once, when it opens: moving its agent to another cluster must end it,
    /// or a `threads.watch` opened in Wally would keep delivering Wally's messages. A member the
    /// move does not touch keeps its stream.
    @Test func aMoveEndsTheMovedAgentsOpenStreamsAndOnlyThose() async throws {
        let stack = try await Self.startStack()
        let port = stack.gateway.port
        let admin = Self.client(port, token: stack.adminSecret)
        let chat = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "wally-chat", name: "Wally Chat"))
        let bgo = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "wally-bgo", name: "Wally BGO"))
        let away = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "away", name: "Away"))
        let away2 = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "away-2", name: "Away 2"))
        _ = try await admin.call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "Wally", slug: "wally", agentIds: [chat.id, bgo.id]))
        let second = try await admin.call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "Second", slug: "second", agentIds: [away.id, away2.id]))
        func token(_ agent: V1.Agent) async throws -> String {
            try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id)).secret
        }
        let chatU = Self.client(port, token: try await token(chat), user: "user-U")
        let bgoU = Self.client(port, token: try await token(bgo), user: "user-U")
        let thread = try await chatU.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "Trip"))
        _ = try await chatU.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, role: .agent, content: "before"))

        // The streams live in this scope: dropping them cancels them before the stack stops.
        do {
            // Both members follow the thread; each stream has replayed the first message.
            var bgoWatch = bgoU.stream(V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: thread.id), timeout: .seconds(20))
                .makeAsyncIterator()
            var chatWatch = chatU.stream(V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: thread.id), timeout: .seconds(20))
                .makeAsyncIterator()
            #expect(try await bgoWatch.next()?.content == "before")
            #expect(try await chatWatch.next()?.content == "before")

            _ = try await admin.call(V1.ClustersService.moveMember, V1.MoveMemberRequest(agentId: bgo.id, toClusterId: second.id))
            _ = try await chatU.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, role: .agent, content: "after"))

            // bgo's stream ends, with nothing of what Wally posted after the move.
            var bgoSawAfterMove: [String] = []
            var bgoEnd: RPCError.Code?
            do {
                while let message = try await bgoWatch.next() { bgoSawAfterMove.append(message.content) }
            } catch let error as RPCError {
                bgoEnd = error.code
            }
            #expect(bgoEnd == .unavailable)
            #expect(bgoSawAfterMove.isEmpty, "bgo received \(bgoSawAfterMove) after leaving Wally")
            // Reopened, the watch gets what bgo's new identity gets.
            #expect(await Self.code {
                var reopened = bgoU.stream(V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: thread.id)).makeAsyncIterator()
                _ = try await reopened.next()
            } == .notFound)
            // chat, untouched by the move, still follows the thread.
            #expect(try await chatWatch.next()?.content == "after")
        }

        #expect(await stack.stop() == [0, 0, 0, 0])
    }

    /// No event announces a token's expiry: a stream opened with a token that expires ends when
    /// it does (UNAUTHENTICATED), instead of outliving its credential.
    @Test func aStreamEndsWhenItsTokenExpires() async throws {
        let stack = try await Self.startStack()
        let port = stack.gateway.port
        let admin = Self.client(port, token: stack.adminSecret)
        let chat = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "wally-chat", name: "Wally Chat"))
        let issued = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: chat.id, ttlSeconds: 8))
        let chatU = Self.client(port, token: issued.secret, user: "user-U")
        let thread = try await chatU.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "Trip"))
        _ = try await chatU.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, role: .agent, content: "before"))

        do {
            var watch = chatU.stream(V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: thread.id), timeout: .seconds(60))
                .makeAsyncIterator()
            #expect(try await watch.next()?.content == "before")
            var end: RPCError.Code?
            do {
                while try await watch.next() != nil {}
            } catch let error as RPCError {
                end = error.code
            }
            // Ended by the expiry, not by the 60 s deadline (that would be DEADLINE_EXCEEDED).
            #expect(end == .unauthenticated)
            #expect(await Self.code { _ = try await chatU.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id)) } == .unauthenticated)
        }
        #expect(await stack.stop() == [0, 0, 0, 0])
    }

    @Test func unauthenticatedAndBackendPortsGetNothing() async throws {
        let stack = try await Self.startStack()
        let anonymous = RPCClient(transport: RPCConnectionPool(host: "127.0.0.1", port: stack.gateway.port))
        #expect(await Self.code { _ = try await anonymous.call(V1.AgentsService.list, V1.ListAgentsRequest()) } == .unauthenticated)
        let forged = Self.client(stack.gateway.port, token: "pt_tok_00_00")
        #expect(await Self.code { _ = try await forged.call(V1.AgentsService.list, V1.ListAgentsRequest()) } == .unauthenticated)
        // A bad credential, not an outage: UNAVAILABLE would have the caller retry it.
        for secret in ["", "  \t ", String(repeating: "x", count: 5000)] {
            let blank = Self.client(stack.gateway.port, token: secret)
            #expect(await Self.code { _ = try await blank.call(V1.AgentsService.list, V1.ListAgentsRequest()) } == .unauthenticated)
        }
        // Every public method straight at its backend port, unsigned: UNAUTHENTICATED.
        for method in V1.allMethods where method.access != .public {
            let port: Int
            switch method.owner {
            case .registry: port = stack.registry.port
            case .memory: port = stack.memory.port
            case .threads: port = stack.threads.port
            default: continue
            }
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            do {
                if method.kind == .unary {
                    _ = try await connection.unary(method: method.name, payload: [], metadata: [:], deadline: .now + .seconds(5))
                } else {
                    for try await _ in connection.serverStreaming(method: method.name, payload: [], metadata: [:], deadline: .now + .seconds(5)) {}
                }
                Issue.record("\(method.name) answered an unsigned call")
            } catch let error as RPCError {
                #expect(error.code == .unauthenticated, "\(method.name): \(error)")
            }
            await connection.close()
        }
        _ = await stack.stop()
    }
}
