import Foundation
import PlatosProto
import PlatosRPC
import Testing
import ThreadsService

@Suite("threads: who sees what", .timeLimit(.minutes(1)))
struct ThreadAccessTests {
    typealias H = ThreadsHarness

    /// A call made once on the real id and once on a made-up one: both NOT_FOUND, and the code and
    /// the text (with the id blanked) must not differ.
    func sameAnswer(
        _ realId: String, sourceLocation: SourceLocation = #_sourceLocation, _ call: @escaping (String) async throws -> Void
    ) async {
        let fakeId = "thr_doesnotexist000000000000"
        let real = await rpcError({ try await call(realId) }, sourceLocation: sourceLocation)
        let fake = await rpcError({ try await call(fakeId) }, sourceLocation: sourceLocation)
        #expect(real?.code == .notFound, sourceLocation: sourceLocation)
        #expect(fake?.code == .notFound, sourceLocation: sourceLocation)
        #expect(
            real?.message.replacingOccurrences(of: realId, with: "ID")
                == fake?.message.replacingOccurrences(of: fakeId, with: "ID"), sourceLocation: sourceLocation)
    }

    /// A thread is bound to the end user it was created for. A member acting for another user
    /// gets, on every call naming it, the answer a made-up id gets, and does not see it listed;
    /// the same member acting for that user, or for no user (the agent as itself), sees it; and a
    /// thread bound to no user is everyone's in the cluster.
    @Test func aThreadBoundToOneUserIsNotFoundToAMemberActingForAnother() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        #expect(thread.userId == "user_1")
        try await h.post(H.chat, thread.id, "for user_1")
        let task = try await h.client(H.chat).call(
            V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: H.bgo.slug, prompt: "dig", threadId: thread.id))

        let other = h.client(H.bgo.acting(for: "user_2"))
        await sameAnswer(thread.id) { _ = try await other.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: $0)) }
        await sameAnswer(thread.id) {
            _ = try await other.call(
                V1.ThreadsService.update, V1.UpdateThreadRequest(threadId: $0, title: V1.StringValue(value: "mine now")))
        }
        await sameAnswer(thread.id) { _ = try await other.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: $0)) }
        await sameAnswer(thread.id) {
            _ = try await other.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: $0, content: "hi"))
        }
        await sameAnswer(thread.id) {
            _ = try await other.call(
                V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: H.chat.slug, prompt: "p", threadId: $0))
        }
        await sameAnswer(thread.id) { _ = try await other.call(V1.TasksService.list, V1.ListTasksRequest(threadId: $0)) }
        // Streams: refused before they yield anything (one yielded item ends the probe as a success).
        await sameAnswer(thread.id) { id in
            var watch = other.stream(V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: id)).makeAsyncIterator()
            _ = try await watch.next()
        }
        await sameAnswer(thread.id) { id in
            var watch = other.stream(V1.TasksService.watch, V1.WatchTasksRequest(threadId: id)).makeAsyncIterator()
            _ = try await watch.next()
        }
        await sameAnswer(thread.id) { _ = try await other.call(V1.ThreadsService.delete, V1.DeleteThreadRequest(threadId: $0)) }
        #expect(try await other.call(V1.ThreadsService.list, V1.ListThreadsRequest()).threads.isEmpty)

        // The member acting for the thread's user, and acting for nobody, sees it all; nothing the
        // other user's calls did reached it.
        for reader in [H.bgo.acting(for: "user_1"), H.bgo] {
            let client = h.client(reader)
            let seen = try await client.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id))
            #expect(seen.title == thread.title, "as \(reader.user)")
            #expect(try await client.call(V1.ThreadsService.list, V1.ListThreadsRequest()).threads.map(\.id) == [thread.id])
            let messages = try await client.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
            #expect(messages.messages.map(\.content) == ["for user_1"])
            let tasks = try await client.call(V1.TasksService.list, V1.ListTasksRequest(threadId: thread.id))
            #expect(tasks.tasks.map(\.id) == [task.id])
            var watch = client.stream(V1.TasksService.watch, V1.WatchTasksRequest(threadId: thread.id)).makeAsyncIterator()
            #expect(try await watch.next()?.id == task.id)
        }

        // A thread bound to no user: visible to the member acting for any user.
        let unbound = try await h.createThread(H.bgo)
        #expect(unbound.userId.isEmpty)
        #expect(try await other.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: unbound.id)).id == unbound.id)
        _ = try await other.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: unbound.id, content: "hi"))
    }

    @Test func membersOfOneClusterShareThreadsAndMessagesWithTheirOwnAuthorIds() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        #expect(thread.ownerKind == .cluster)
        #expect(thread.ownerId == H.chat.cluster)
        #expect(thread.userId == H.chat.user)
        #expect(thread.createdByAgentId == H.chat.id)

        let seenByBgo = try await h.client(H.bgo).call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id))
        #expect(seenByBgo.id == thread.id)

        try await h.post(H.chat, thread.id, "hello from chat")
        try await h.post(H.bgo, thread.id, "hello from bgo")
        let listed = try await h.client(H.bgo).call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(listed.messages.map(\.authorAgentId) == [H.chat.id, H.bgo.id])
        #expect(listed.messages.map(\.seq) == [1, 2])
        #expect(listed.messages.map(\.userId) == [H.chat.user, H.bgo.user])

        let byBgo = try await h.client(H.chat).call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, authorAgentId: H.bgo.id))
        #expect(byBgo.messages.map(\.content) == ["hello from bgo"])

        let threads = try await h.client(H.bgo).call(V1.ThreadsService.list, V1.ListThreadsRequest())
        #expect(threads.threads.map(\.id) == [thread.id])
    }

    /// `newest`: the last `limit` messages, oldest first (what an agent's turn starts from), with
    /// `after_seq` still the lower bound and the author filter still applied.
    @Test func theNewestMessagesComeOldestFirst() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        for i in 1...12 { try await h.post(i % 3 == 0 ? H.bgo : H.chat, thread.id, "m\(i)") }
        let reader = h.client(H.bgo)

        let newest = try await reader.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, limit: 5, newest: true))
        #expect(newest.messages.map(\.seq) == [8, 9, 10, 11, 12])
        #expect(!newest.hasMore)
        let oldest = try await reader.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, limit: 5))
        #expect(oldest.messages.map(\.seq) == [1, 2, 3, 4, 5] && oldest.hasMore)

        let bounded = try await reader.call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, afterSeq: 10, limit: 5, newest: true))
        #expect(bounded.messages.map(\.seq) == [11, 12])
        let byBgo = try await reader.call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, limit: 2, authorAgentId: H.bgo.id, newest: true))
        #expect(byBgo.messages.map(\.content) == ["m9", "m12"])
    }

    /// `include_thread` answers the thread with the page (context.load's one call to threads),
    /// for an empty page too; without it there is none, and a stranger still gets NOT_FOUND.
    @Test func aPageCanCarryItsThread() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let reader = h.client(H.bgo)
        let emptyWithThread = try await reader.call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, includeThread: true))
        #expect(emptyWithThread.messages.isEmpty)
        #expect(emptyWithThread.thread?.id == thread.id)
        #expect(emptyWithThread.thread?.lastSeq == 0)

        for i in 1...3 { try await h.post(H.chat, thread.id, "m\(i)") }
        let page = try await reader.call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, limit: 2, newest: true, includeThread: true))
        #expect(page.messages.map(\.seq) == [2, 3])
        #expect(page.thread?.id == thread.id)
        #expect(page.thread?.title == thread.title)
        #expect(page.thread?.lastSeq == 3)
        let without = try await reader.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(without.thread == nil)

        let stranger = await rpcError {
            _ = try await h.client(H.stranger).call(
                V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, includeThread: true))
        }
        #expect(stranger?.code == .notFound)
    }

    @Test func anotherClustersMemberGetsTheAnswerARandomIdGets() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        try await h.post(H.chat, thread.id, "private to cluster one")
        let task = try await h.client(H.chat).call(
            V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: H.bgo.slug, prompt: "dig", threadId: thread.id))
        let stranger = h.client(H.stranger)
        await sameAnswer(thread.id) { _ = try await stranger.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: $0)) }
        await sameAnswer(thread.id) {
            _ = try await stranger.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: $0))
        }
        await sameAnswer(thread.id) {
            _ = try await stranger.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: $0, content: "hi"))
        }
        await sameAnswer(thread.id) { id in
            for try await _ in stranger.stream(V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: id)) {}
        }
        await sameAnswer(task.id) { _ = try await stranger.call(V1.TasksService.get, V1.GetTaskRequest(taskId: $0)) }
        await sameAnswer(thread.id) {
            _ = try await stranger.call(V1.ThreadsService.delete, V1.DeleteThreadRequest(threadId: $0))
        }

        // Nothing the stranger did reached the thread.
        let messages = try await h.client(H.chat).call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(messages.messages.map(\.content) == ["private to cluster one"])
        let strangersThreads = try await stranger.call(V1.ThreadsService.list, V1.ListThreadsRequest())
        #expect(strangersThreads.threads.isEmpty)
    }

    // messages.list checks access in the same statement as the page, and looks again only when the
    // page is empty: an empty page of a visible thread is not a missing thread, and an empty page
    // of an invisible one is not an empty thread.
    @Test func anEmptyPageIsEmptyForAMemberAndNotFoundForAStranger() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let empty = try await h.client(H.bgo).call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(empty.messages.isEmpty)
        #expect(!empty.hasMore)

        try await h.post(H.chat, thread.id, "one")
        let pastTheEnd = try await h.client(H.bgo).call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, afterSeq: 1))
        #expect(pastTheEnd.messages.isEmpty)
        let byNobody = try await h.client(H.bgo).call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, authorAgentId: H.bgo.id))
        #expect(byNobody.messages.isEmpty)

        let stranger = h.client(H.stranger)
        let pastTheEndForStranger = await rpcError {
            _ = try await stranger.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, afterSeq: 1))
        }
        #expect(pastTheEndForStranger?.code == .notFound)
    }

    @Test func aThreadOfAnUnclusteredAgentIsVisibleOnlyToThatAgent() async throws {
        let h = try H()
        let thread = try await h.createThread(H.loner)
        #expect(thread.ownerKind == .agent)
        #expect(thread.ownerId == H.loner.id)
        _ = try await h.client(H.loner).call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id))
        for other in [H.drifter, H.chat, H.stranger] {
            let error = await rpcError {
                _ = try await h.client(other).call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id))
            }
            #expect(error?.code == .notFound)
        }
    }

    @Test func aCallWithoutTheGatewaysSignatureIsUnauthenticated() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let unsigned = await rpcError {
            _ = try await h.unsignedClient().call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id))
        }
        #expect(unsigned?.code == .unauthenticated)

        let forger = RPCClient(
            transport: SignedPrincipalTransport(
                inner: InProcessTransport(router: h.router),
                signer: try .init(secret: Array("not the secret, but long enough to be one".utf8)),
                principal: H.chat.principal(H.scope)))
        let forged = await rpcError {
            _ = try await forger.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, content: "x"))
        }
        #expect(forged?.code == .unauthenticated)
    }

    @Test func oversizedFieldsAreInvalidArgumentsNamingTheField() async throws {
        let h = try H()
        let client = h.client(H.chat)
        let title = await rpcError {
            _ = try await client.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: String(repeating: "t", count: 513)))
        }
        #expect(title?.code == .invalidArgument)
        #expect(title?.message.hasPrefix("title") == true)
        let thread = try await h.createThread(H.chat)
        let content = await rpcError {
            _ = try await client.call(
                V1.MessagesService.post,
                V1.PostMessageRequest(threadId: thread.id, content: String(repeating: "c", count: 64 * 1024 + 1)))
        }
        #expect(content?.code == .invalidArgument)
        #expect(content?.message.hasPrefix("content") == true)
        let metadata = await rpcError {
            _ = try await client.call(
                V1.ThreadsService.create, V1.CreateThreadRequest(metadata: ["k": String(repeating: "m", count: 16 * 1024)]))
        }
        #expect(metadata?.message.hasPrefix("metadata") == true)
    }

    /// Page tokens and optional id filters are bounded like the other ids: INVALID_ARGUMENT
    /// naming the field and the limit, before anything reaches the database. A token that
    /// decodes (into a 300-byte id) is refused for its length alone.
    @Test func pageTokensAndIdFiltersHaveLimits() async throws {
        let h = try H()
        let client = h.client(H.chat)
        let thread = try await h.createThread(H.chat)
        let longToken = Data("1700000000000:\(String(repeating: "x", count: 300))".utf8).base64EncodedString()
        func expectRefused(
            _ field: String, _ limit: Int, sourceLocation: SourceLocation = #_sourceLocation, _ call: () async throws -> Void
        ) async {
            let error = await rpcError(call, sourceLocation: sourceLocation)
            #expect(error?.code == .invalidArgument, sourceLocation: sourceLocation)
            #expect(
                error?.message.hasPrefix("\(field) is ") == true && error?.message.hasSuffix("the limit is \(limit)") == true,
                "\(String(describing: error))", sourceLocation: sourceLocation)
        }
        await expectRefused("page.page_token", 128) {
            _ = try await client.call(
                V1.ThreadsService.list, V1.ListThreadsRequest(page: V1.PageRequest(pageToken: longToken)))
        }
        await expectRefused("page.page_token", 128) {
            _ = try await client.call(V1.TasksService.list, V1.ListTasksRequest(page: V1.PageRequest(pageToken: longToken)))
        }
        await expectRefused("author_agent_id", 256) {
            _ = try await client.call(
                V1.MessagesService.list,
                V1.ListMessagesRequest(threadId: thread.id, authorAgentId: String(repeating: "a", count: 257)))
        }
        await expectRefused("thread_id", 256) {
            _ = try await client.call(V1.TasksService.list, V1.ListTasksRequest(threadId: String(repeating: "t", count: 257)))
        }
        // At the limit, a filter is a filter.
        let byNobody = try await client.call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, authorAgentId: String(repeating: "a", count: 256)))
        #expect(byNobody.messages.isEmpty)
    }

    @Test func listsPageWithTokensAndFilterOnMetadata() async throws {
        let h = try H()
        let client = h.client(H.chat)
        var created: Set<String> = []
        for i in 0..<5 {
            h.clock.advance(ms: 1)
            let thread = try await client.call(
                V1.ThreadsService.create,
                V1.CreateThreadRequest(title: "t\(i)", metadata: ["kind": i.isMultiple(of: 2) ? "even" : "odd"]))
            created.insert(thread.id)
        }
        var seen: [String] = []
        var token = ""
        repeat {
            let page = try await client.call(
                V1.ThreadsService.list, V1.ListThreadsRequest(page: V1.PageRequest(pageSize: 2, pageToken: token)))
            #expect(page.threads.count <= 2)
            seen += page.threads.map(\.id)
            token = page.nextPageToken
        } while !token.isEmpty
        #expect(seen.count == 5)
        #expect(Set(seen) == created)

        let odd = try await client.call(V1.ThreadsService.list, V1.ListThreadsRequest(metadataFilter: ["kind": "odd"]))
        #expect(odd.threads.map(\.title).sorted() == ["t1", "t3"])

        // Each filter entry is a clause of the statement: a bounded number of them, a clear error past it.
        let many = Dictionary(uniqueKeysWithValues: (0..<1000).map { ("k\($0)", "v") })
        do {
            _ = try await client.call(V1.ThreadsService.list, V1.ListThreadsRequest(metadataFilter: many))
            Issue.record("a filter of 1000 entries was accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument && error.message.contains("metadata_filter has 1000 entries"), "\(error)")
        }
        let sixteen = Dictionary(uniqueKeysWithValues: (0..<16).map { ("k\($0)", "v") })
        #expect(try await client.call(V1.ThreadsService.list, V1.ListThreadsRequest(metadataFilter: sixteen)).threads.isEmpty)
    }

    @Test func aRepeatedIdempotencyKeyReturnsTheFirstMessage() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let request = V1.PostMessageRequest(threadId: thread.id, content: "once", idempotencyKey: "k1")
        let first = try await h.client(H.chat).call(V1.MessagesService.post, request)
        let again = try await h.client(H.chat).call(V1.MessagesService.post, request)
        #expect(again.id == first.id)
        #expect(again.seq == first.seq)
        let next = try await h.post(H.chat, thread.id, "twice")
        #expect(next.seq == first.seq + 1)
        // The same key with another body is not a retry: refused, not silently answered.
        await #expect(throws: RPCError.self) {
            _ = try await h.client(H.chat).call(
                V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, content: "different", idempotencyKey: "k1"))
        }
        let listed = try await h.client(H.chat).call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(listed.messages.map(\.content) == ["once", "twice"])
    }

    /// A retried threads.create gets its thread even after the thread was renamed; the same key
    /// acting for another end user is not a retry.
    @Test func aRepeatedThreadKeyReturnsTheThreadOnlyForTheSameUser() async throws {
        let h = try H()
        let request = V1.CreateThreadRequest(title: "plans", idempotencyKey: "t1")
        let first = try await h.client(H.chat).call(V1.ThreadsService.create, request)
        _ = try await h.client(H.chat).call(
            V1.ThreadsService.update, V1.UpdateThreadRequest(threadId: first.id, title: V1.StringValue(value: "renamed")))
        #expect(try await h.client(H.chat).call(V1.ThreadsService.create, request).id == first.id)
        let otherUser = await rpcError { _ = try await h.client(H.chat.acting(for: "user_2")).call(V1.ThreadsService.create, request) }
        #expect(otherUser?.code == .failedPrecondition)
    }

    /// A key the agent used in a cluster it has left is an unused key in its new one: the answer
    /// must not tell whether the old cluster's thread still exists (ALREADY_EXISTS while it does).
    @Test func aKeyUsedInAClusterTheAgentLeftMakesANewThread() async throws {
        let h = try H()
        let request = V1.CreateThreadRequest(title: "plans", idempotencyKey: "t1")
        let inOldCluster = try await h.client(H.chat).call(V1.ThreadsService.create, request)
        var moved = H.chat
        moved.cluster = H.stranger.cluster
        let inNewCluster = try await h.client(moved).call(V1.ThreadsService.create, request)
        #expect(inNewCluster.id != inOldCluster.id)
        #expect(inNewCluster.ownerId == H.stranger.cluster)
        // And a retry there is a retry.
        #expect(try await h.client(moved).call(V1.ThreadsService.create, request).id == inNewCluster.id)
    }

    @Test func updateAndDeleteAThread() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let updated = try await h.client(H.bgo).call(
            V1.ThreadsService.update,
            V1.UpdateThreadRequest(threadId: thread.id, title: V1.StringValue(value: "renamed"), metadata: ["a": "1"]))
        #expect(updated.title == "renamed")
        #expect(updated.metadata == ["a": "1"])
        let deleted = try await h.client(H.chat).call(V1.ThreadsService.delete, V1.DeleteThreadRequest(threadId: thread.id))
        #expect(deleted.deleted)
        let gone = await rpcError {
            _ = try await h.client(H.chat).call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id))
        }
        #expect(gone?.code == .notFound)
    }
}
