import Foundation
import GRDB
import NIOConcurrencyHelpers
import PlatosProto
import PlatosRPC
import PlatosTestSupport
import Testing

/// The real `platos-threads` executable over TCP. The registry is not started: thread and
/// message calls never ask it.
@Suite("platos-threads end to end", .timeLimit(.minutes(2)))
struct ThreadsEndToEndTests {
    static let scope = V1.Scope(org: "acme", project: "wally", env: "dev")
    static let chat = V1.Principal(scope: scope, agentId: "agent_chat", clusterId: "cluster_one", userId: "user_1", role: .agent)
    static let bgo = V1.Principal(scope: scope, agentId: "agent_bgo", clusterId: "cluster_one", role: .agent)

    /// Every message of `threadId`, page after page.
    static func allMessages(of threadId: String, _ reader: RPCClient) async throws -> [V1.Message] {
        var messages: [V1.Message] = []
        while true {
            let page = try await reader.call(
                V1.MessagesService.list,
                V1.ListMessagesRequest(threadId: threadId, afterSeq: messages.last?.seq ?? 0, limit: 1000))
            messages += page.messages
            if !page.hasMore { return messages }
        }
    }

    static func start(_ dataDir: String) async throws -> ServiceProcess {
        try await ServiceProcess("threads", dataDir: dataDir, extraArguments: ["--registry", "127.0.0.1:1"])
    }

    /// Lets `loads` run until `enough` holds (or 3 s passed; the suite's time limit bounds the
    /// rest), then SIGKILLs `process` mid-load and waits for the loads to stop.
    static func kill(
        _ process: ServiceProcess, under loads: [Task<Void, Never>], once enough: () -> Bool
    ) async throws {
        let start = ContinuousClock.now
        while !enough(), ContinuousClock.now - start < .seconds(3) {
            try await Task.sleep(for: .milliseconds(20))
        }
        await process.kill()
        for load in loads { load.cancel() }
        for load in loads { await load.value }
    }

    /// `PRAGMA integrity_check` of the threads database in `dataDir`, read from the closed file
    /// before the service opens it again.
    static func integrity(_ dataDir: String) async throws -> String? {
        let pool = try DatabasePool(path: "\(dataDir)/threads.sqlite")
        let result = try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
        try pool.close()
        return result
    }

    @Test func signedCallsWorkAndAnUnsignedCallGetsNothing() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let process = try await Self.start(dataDir)
        let signer = try TestSigner(dataDir: dataDir)
        let chat = signer.client(port: process.port, principal: Self.chat)
        let bgo = signer.client(port: process.port, principal: Self.bgo)

        let thread = try await chat.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "over tcp"))
        _ = try await chat.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, content: "one"))
        _ = try await bgo.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, content: "two"))
        let listed = try await bgo.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(listed.messages.map(\.authorAgentId) == ["agent_chat", "agent_bgo"])

        let direct = RPCClient(transport: RPCConnectionPool(host: "127.0.0.1", port: process.port))
        do {
            _ = try await direct.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id))
            Issue.record("an unsigned call succeeded")
        } catch let error as RPCError {
            #expect(error.code == .unauthenticated)
        }
        #expect(await process.stop() == 0)
    }

    /// Seventy messages of 64 KiB are more than one 4 MiB frame holds: the default page ends
    /// early by size and says more follows, instead of failing the call, and reading on gets all.
    @Test func pagesOfLargeMessagesEndBySizeAndReadOn() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let process = try await Self.start(dataDir)
        let chat = try TestSigner(dataDir: dataDir).client(port: process.port, principal: Self.chat)
        let thread = try await chat.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "large"))
        for i in 0..<70 {
            let content = "\(i) " + String(repeating: "x", count: 64 * 1024 - 4)  // ≤ 64 KiB, the limit
            _ = try await chat.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, content: content))
        }
        let first = try await chat.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(first.hasMore)
        #expect(!first.messages.isEmpty && first.messages.count < 70)
        let all = try await Self.allMessages(of: thread.id, chat)
        #expect(all.map(\.seq) == Array(1...70))
        #expect(await process.stop() == 0)
    }

    /// Threads carry up to 16 KiB of metadata each: a page of 500 would pass the frame limit, so
    /// it ends early by size and its token reads on.
    @Test func pagesOfThreadsEndBySizeAndReadOn() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let process = try await Self.start(dataDir)
        let chat = try TestSigner(dataDir: dataDir).client(port: process.port, principal: Self.chat)
        let metadata = ["notes": String(repeating: "n", count: 16 * 1024 - 16)]
        var created: Set<String> = []
        for i in 0..<300 {
            created.insert(try await chat.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "t\(i)", metadata: metadata)).id)
        }
        var listed: [String] = []
        var pages = 0
        var token = ""
        repeat {
            let page = try await chat.call(
                V1.ThreadsService.list, V1.ListThreadsRequest(page: V1.PageRequest(pageSize: 500, pageToken: token)))
            listed += page.threads.map(\.id)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty
        #expect(listed.count == 300 && Set(listed) == created)
        #expect(pages >= 3)
        #expect(await process.stop() == 0)
    }

    /// Many posters for a few seconds, then SIGKILL: every post that was acknowledged is there
    /// after a restart on the same data directory, and the file passes integrity_check.
    @Test func kill9LosesNoAcknowledgedMessage() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let process = try await Self.start(dataDir)
        let signer = try TestSigner(dataDir: dataDir)
        let client = signer.client(port: process.port, principal: Self.chat)
        let threads = try await (0..<4).asyncMap { i in
            try await client.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "kill \(i)")).id
        }
        let acknowledged = NIOLockedValueBox<[String: Set<UInt64>]>([:])
        let posters = concurrentLoops(32) { p, i in
            let threadId = threads[p % threads.count]
            let message = try await client.call(
                V1.MessagesService.post, V1.PostMessageRequest(threadId: threadId, content: "p\(p) \(i)"),
                timeout: .seconds(5))
            acknowledged.withLockedValue { _ = $0[threadId, default: []].insert(message.seq) }
        }
        // Until a good number of posts were acknowledged, so the kill lands mid-stream.
        try await Self.kill(process, under: [posters]) {
            acknowledged.withLockedValue { $0.values.reduce(0) { $0 + $1.count } } >= 5_000
        }
        let acked = acknowledged.withLockedValue { $0 }
        #expect(acked.values.reduce(0) { $0 + $1.count } > 0)
        #expect(try await Self.integrity(dataDir) == "ok")

        let restarted = try await Self.start(dataDir)
        let reader = signer.client(port: restarted.port, principal: Self.bgo)
        for threadId in threads {
            let stored = Set(try await Self.allMessages(of: threadId, reader).map(\.seq))
            let mine = acked[threadId] ?? []
            #expect(mine.isSubset(of: stored), "thread \(threadId) lost \(mine.subtracting(stored).count) messages")
            // Seqs stay gap-free across the crash: unique and starting at 1, so the count is the top.
            #expect(stored.count == Int(stored.max() ?? 0))
        }
        #expect(await restarted.stop() == 0)
    }
}

extension ThreadsEndToEndTests {
    /// Spawners and workers for a few seconds, then SIGKILL of `platos-threads`: after a restart
    /// every acknowledged spawn is there, and every acknowledged completion is still succeeded
    /// with its result message in the thread. The registry runs beside it: spawn asks it whether
    /// the target is a sibling.
    @Test func kill9LosesNoAcknowledgedTask() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let registry = try await ServiceProcess("registry", dataDir: dataDir)
        let process = try await ServiceProcess(
            "threads", dataDir: dataDir, extraArguments: ["--registry", "127.0.0.1:\(registry.port)"])
        let signer = try TestSigner(dataDir: dataDir)
        let admin = signer.client(port: registry.port, principal: V1.Principal(scope: Self.scope, role: .admin))
        let chatAgent = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "chat", name: "Chat"))
        let bgoAgent = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "bgo", name: "BGO"))
        let cluster = try await admin.call(
            V1.ClustersService.create,
            V1.CreateClusterRequest(name: "Kill", slug: "kill", agentIds: [chatAgent.id, bgoAgent.id]))
        let chatPrincipal = V1.Principal(
            scope: Self.scope, agentId: chatAgent.id, clusterId: cluster.id, userId: "user_1", role: .agent)
        let bgoPrincipal = V1.Principal(scope: Self.scope, agentId: bgoAgent.id, clusterId: cluster.id, role: .agent)
        let chat = signer.client(port: process.port, principal: chatPrincipal)
        let bgo = signer.client(port: process.port, principal: bgoPrincipal)
        let thread = try await chat.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "kill tasks")).id

        let spawned = NIOLockedValueBox<Set<String>>([])
        let completed = NIOLockedValueBox<[String: String]>([:])  // task id → result message id
        let spawners = concurrentLoops(16) { s, i in
            let task = try await chat.call(
                V1.TasksService.spawn,
                V1.SpawnTaskRequest(targetAgent: bgoAgent.id, prompt: "job \(s)-\(i)", threadId: thread),
                timeout: .seconds(5))
            spawned.withLockedValue { _ = $0.insert(task.id) }
        }
        let workers = concurrentLoops(8) { _, _ in
            let claim = try await bgo.call(V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 200), timeout: .seconds(5))
            guard let task = claim.task else { return }
            let done = try await bgo.call(
                V1.TasksService.complete,
                V1.CompleteTaskRequest(taskId: task.id, leaseId: task.leaseId, result: "done \(task.id)"),
                timeout: .seconds(5))
            completed.withLockedValue { $0[done.id] = done.resultMessageId }
        }
        try await Self.kill(process, under: [spawners, workers]) { completed.withLockedValue { $0.count } >= 1_000 }
        let (acknowledgedSpawns, acknowledgedCompletions) = (spawned.withLockedValue { $0 }, completed.withLockedValue { $0 })
        #expect(!acknowledgedSpawns.isEmpty)
        #expect(!acknowledgedCompletions.isEmpty)
        #expect(try await Self.integrity(dataDir) == "ok")

        let restarted = try await ServiceProcess(
            "threads", dataDir: dataDir, extraArguments: ["--registry", "127.0.0.1:\(registry.port)"])
        let reader = signer.client(port: restarted.port, principal: chatPrincipal)
        var lost: [String] = []
        for taskId in acknowledgedSpawns {
            do {
                _ = try await reader.call(V1.TasksService.get, V1.GetTaskRequest(taskId: taskId))
            } catch {
                lost.append(taskId)
            }
        }
        #expect(lost.isEmpty, "\(lost.count) acknowledged spawns lost")
        let messageIds = Set(try await Self.allMessages(of: thread, reader).map(\.id))
        var undone: [String] = []
        for (taskId, messageId) in acknowledgedCompletions {
            let task = try await reader.call(V1.TasksService.get, V1.GetTaskRequest(taskId: taskId))
            if task.state != .succeeded || !messageIds.contains(messageId) { undone.append(taskId) }
        }
        #expect(undone.isEmpty, "\(undone.count) acknowledged completions lost")
        #expect(await restarted.stop() == 0)
        #expect(await registry.stop() == 0)
    }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
