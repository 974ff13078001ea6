import Foundation
import GRDB
import PlatosProto
import PlatosRPC
import Testing
import PlatosTestSupport
@testable import ThreadsService

/// Tasks follow the end-user rule threads follow: a task records the user its spawner acted for,
/// and a caller acting for another user gets, on every call naming it, the answer a made-up id
/// gets, does not see it listed or watched, and cannot claim it. A caller acting for no user (the
/// agent as itself) sees all of its cluster's tasks.
///
/// The tasks here are spawned into a thread bound to no user, which every member sees acting for
/// any user: what hides them is the task's own user, not its thread's.
@Suite("tasks: whose user sees what", .timeLimit(.minutes(1)))
struct TaskUserAccessTests {
    typealias H = ThreadsHarness

    static let user1 = H.chat.user
    static let user2 = "user_2"

    /// The spawner, acting for `user`. A millisecond apart, so that lists (newest first, by
    /// creation time and then id) come in spawn order.
    func spawn(_ h: H, _ threadId: String, for user: String, prompt: String) async throws -> V1.Task {
        h.clock.advance(ms: 1)
        return try await h.client(H.chat.acting(for: user)).call(
            V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: H.bgo.slug, prompt: prompt, threadId: threadId))
    }

    func claim(_ h: H, _ worker: TestAgent, leaseMs: UInt32 = 0) async throws -> V1.Task? {
        try await h.client(worker).call(V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 0, leaseMs: leaseMs)).task
    }

    /// A call made once on the real task id and once on a made-up one: both NOT_FOUND, with the
    /// same text once the id is blanked.
    func sameAnswer(
        _ realId: String, sourceLocation: SourceLocation = #_sourceLocation, _ call: @escaping (String) async throws -> Void
    ) async {
        let fakeId = "task_doesnotexist00000000000"
        let real = await rpcError({ try await call(realId) }, sourceLocation: sourceLocation)
        let fake = await rpcError({ try await call(fakeId) }, sourceLocation: sourceLocation)
        #expect(real?.code == .notFound, "\(String(describing: real))", sourceLocation: sourceLocation)
        #expect(fake?.code == .notFound, sourceLocation: sourceLocation)
        #expect(
            real?.message.replacingOccurrences(of: realId, with: "ID")
                == fake?.message.replacingOccurrences(of: fakeId, with: "ID"), sourceLocation: sourceLocation)
    }

    /// user_1's running task, to the worker and the spawner acting for user_2: not found on every
    /// call naming it, and none of those calls changes it; the worker acting for user_1 (as the
    /// gateway makes it for `x-platos-task`) still finishes it, into the thread, for user_1.
    @Test func aTaskOfOneUserIsNotFoundToAMemberActingForAnother() async throws {
        let h = try H()
        let thread = try await h.createThread(H.bgo)
        #expect(thread.userId.isEmpty)
        let spawned = try await spawn(h, thread.id, for: Self.user1, prompt: "user_1's secret prompt")
        #expect(spawned.userId == Self.user1)
        let task = try #require(try await claim(h, H.bgo))
        #expect(task.id == spawned.id)

        let worker = h.client(H.bgo.acting(for: Self.user2))
        let spawner = h.client(H.chat.acting(for: Self.user2))
        for client in [worker, spawner] {
            await sameAnswer(task.id) { _ = try await client.call(V1.TasksService.get, V1.GetTaskRequest(taskId: $0)) }
            await sameAnswer(task.id) { id in
                var watch = client.stream(V1.TasksService.watch, V1.WatchTasksRequest(taskId: id)).makeAsyncIterator()
                _ = try await watch.next()
            }
        }
        await sameAnswer(task.id) {
            _ = try await worker.call(V1.TasksService.heartbeat, V1.TaskLeaseRequest(taskId: $0, leaseId: task.leaseId))
        }
        await sameAnswer(task.id) {
            _ = try await worker.call(
                V1.TasksService.complete, V1.CompleteTaskRequest(taskId: $0, leaseId: task.leaseId, result: "stolen"))
        }
        await sameAnswer(task.id) {
            _ = try await worker.call(V1.TasksService.fail, V1.FailTaskRequest(taskId: $0, leaseId: task.leaseId, error: "x"))
        }
        // The agent that spawned it, acting for another user, cannot cancel it either.
        await sameAnswer(task.id) { _ = try await spawner.call(V1.TasksService.cancel, V1.CancelTaskRequest(taskId: $0)) }

        // Untouched: still running under the same lease, with no result.
        let forUser1 = h.client(H.bgo.acting(for: Self.user1))
        let kept = try await forUser1.call(V1.TasksService.get, V1.GetTaskRequest(taskId: task.id))
        #expect(kept.state == .running && kept.leaseId == task.leaseId && kept.attempts == 1 && kept.result.isEmpty)

        _ = try await forUser1.call(V1.TasksService.heartbeat, V1.TaskLeaseRequest(taskId: task.id, leaseId: task.leaseId))
        let done = try await forUser1.call(
            V1.TasksService.complete, V1.CompleteTaskRequest(taskId: task.id, leaseId: task.leaseId, result: "found it"))
        #expect(done.state == .succeeded)
        let messages = try await h.client(H.chat).call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(messages.messages.map(\.content) == ["found it"])
        #expect(messages.messages.first?.userId == Self.user1)
        #expect(messages.messages.first?.authorAgentId == H.bgo.id)
    }

    /// tasks.list, with and without a thread, and a thread's tasks.watch (its snapshot and the
    /// events that follow) show a caller acting for a user only that user's tasks and those
    /// spawned for no user.
    @Test func anotherUsersTasksAreNeitherListedNorWatched() async throws {
        let h = try H()
        let thread = try await h.createThread(H.bgo)
        let ofUser1 = try await spawn(h, thread.id, for: Self.user1, prompt: "one")
        let ofUser2 = try await spawn(h, thread.id, for: Self.user2, prompt: "two")
        let ofNobody = try await spawn(h, thread.id, for: "", prompt: "none")
        #expect(ofNobody.userId.isEmpty)

        let user2 = h.client(H.bgo.acting(for: Self.user2))
        let listed = try await user2.call(V1.TasksService.list, V1.ListTasksRequest())
        #expect(listed.tasks.map(\.id) == [ofNobody.id, ofUser2.id])
        let byThread = try await user2.call(V1.TasksService.list, V1.ListTasksRequest(threadId: thread.id))
        #expect(byThread.tasks.map(\.id) == [ofNobody.id, ofUser2.id])
        let queued = try await user2.call(V1.TasksService.list, V1.ListTasksRequest(state: .queued))
        #expect(queued.tasks.map(\.id) == [ofNobody.id, ofUser2.id])
        let user1 = h.client(H.chat.acting(for: Self.user1))
        #expect(try await user1.call(V1.TasksService.list, V1.ListTasksRequest()).tasks.map(\.id) == [ofNobody.id, ofUser1.id])

        var watch = user2.stream(V1.TasksService.watch, V1.WatchTasksRequest(threadId: thread.id)).makeAsyncIterator()
        #expect(try await watch.next()?.id == ofUser2.id)
        #expect(try await watch.next()?.id == ofNobody.id)
        // user_1's task changes, then user_2's: the watch's next event is user_2's, so user_1's
        // event (logged first) was not delivered.
        _ = try await user1.call(V1.TasksService.cancel, V1.CancelTaskRequest(taskId: ofUser1.id))
        _ = try await h.client(H.chat.acting(for: Self.user2)).call(
            V1.TasksService.cancel, V1.CancelTaskRequest(taskId: ofUser2.id))
        let next = try #require(try await watch.next())
        #expect(next.id == ofUser2.id && next.state == .cancelled)
    }

    /// A worker claiming for user_2 does not take user_1's task, nor requeue it when its lease
    /// lapses; claiming as itself, or for user_1, it does.
    @Test func aClaimActingForOneUserLeavesAnotherUsersTaskAlone() async throws {
        let h = try H()
        let thread = try await h.createThread(H.bgo)
        let first = try await spawn(h, thread.id, for: Self.user1, prompt: "first")
        let second = try await spawn(h, thread.id, for: Self.user1, prompt: "second")

        #expect(try await claim(h, H.bgo.acting(for: Self.user2)) == nil)
        #expect(try await claim(h, H.bgo.acting(for: Self.user1), leaseMs: 1_000)?.id == first.id)
        #expect(try await claim(h, H.bgo)?.id == second.id)

        // first's lease runs out: a claim for user_2 neither gets it back nor requeues it.
        h.clock.advance(ms: 1_001)
        #expect(try await claim(h, H.bgo.acting(for: Self.user2)) == nil)
        let lapsed = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: first.id))
        #expect(lapsed.state == .running && lapsed.attempts == 1)
        let again = try #require(try await claim(h, H.bgo))
        #expect(again.id == first.id && again.attempts == 2)

        // A task spawned for user_2 is the claim for user_2's to take.
        let ofUser2 = try await spawn(h, thread.id, for: Self.user2, prompt: "theirs")
        #expect(try await claim(h, H.bgo.acting(for: Self.user2))?.id == ofUser2.id)
    }

    /// A task stranded in a cluster its target left is ended by the target's claim only when
    /// that claim may act on it: one for another user leaves it queued, one as itself ends it.
    @Test func aStrandedTaskOfAnotherUserIsLeftToAClaimThatMayActOnIt() async throws {
        let h = try H()
        let thread = try await h.createThread(H.bgo)
        let leftBehind = try await spawn(h, thread.id, for: Self.user1, prompt: "left behind")
        var moved = H.bgo
        moved.cluster = H.stranger.cluster
        h.directory.set(DirectoryAgent(agentId: moved.id, clusterId: moved.cluster), slug: moved.slug, in: H.scope)
        h.clock.advance(ms: 121_000)

        #expect(try await claim(h, moved.acting(for: Self.user2)) == nil)
        let stillQueued = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: leftBehind.id))
        #expect(stillQueued.state == .queued)
        #expect(try await claim(h, moved) == nil)
        let ended = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: leftBehind.id))
        #expect(ended.state == .expired)
    }

    /// The agent acting for no user reaches every task of its cluster, whatever user each was
    /// spawned for: gets, lists, watches, works on them, and cancels those it spawned.
    @Test func aCallerActingForNoUserSeesEveryUsersTasks() async throws {
        let h = try H()
        let thread = try await h.createThread(H.bgo)
        let ofUser1 = try await spawn(h, thread.id, for: Self.user1, prompt: "one")
        let ofUser2 = try await spawn(h, thread.id, for: Self.user2, prompt: "two")
        let ofNobody = try await spawn(h, thread.id, for: "", prompt: "none")
        let all = [ofUser1.id, ofUser2.id, ofNobody.id]

        let worker = h.client(H.bgo)
        for id in all { #expect(try await worker.call(V1.TasksService.get, V1.GetTaskRequest(taskId: id)).id == id) }
        #expect(try await worker.call(V1.TasksService.list, V1.ListTasksRequest()).tasks.map(\.id) == all.reversed())
        var watch = worker.stream(V1.TasksService.watch, V1.WatchTasksRequest(threadId: thread.id)).makeAsyncIterator()
        for id in all { #expect(try await watch.next()?.id == id) }
        var claimed: [V1.Task] = []
        for _ in all { claimed.append(try #require(try await claim(h, H.bgo))) }
        #expect(claimed.map(\.id) == all)
        for task in claimed {
            #expect(try await watch.next()?.state == .running)
            _ = try await worker.call(V1.TasksService.heartbeat, V1.TaskLeaseRequest(taskId: task.id, leaseId: task.leaseId))
        }
        let done = try await worker.call(
            V1.TasksService.complete, V1.CompleteTaskRequest(taskId: ofUser1.id, leaseId: claimed[0].leaseId, result: "r1"))
        #expect(done.state == .succeeded)
        let failed = try await worker.call(
            V1.TasksService.fail, V1.FailTaskRequest(taskId: ofUser2.id, leaseId: claimed[1].leaseId, error: "e2"))
        #expect(failed.state == .failed)
        let cancelled = try await h.client(H.chat.acting(for: "")).call(
            V1.TasksService.cancel, V1.CancelTaskRequest(taskId: ofNobody.id))
        #expect(cancelled.state == .cancelled)
        #expect(try await watch.next()?.id == ofUser1.id)
        #expect(try await watch.next()?.id == ofUser2.id)
        #expect(try await watch.next()?.id == ofNobody.id)
    }

    /// A spawn retried with its idempotency key while acting for another user finds the agent's
    /// own key and is refused as a reused key (FAILED_PRECONDITION, as threads.create is), not
    /// answered with the other user's task.
    @Test func aRetriedSpawnActingForAnotherUserIsAReusedKey() async throws {
        let h = try H()
        let thread = try await h.createThread(H.bgo)
        let request = V1.SpawnTaskRequest(targetAgent: H.bgo.slug, prompt: "once", threadId: thread.id, idempotencyKey: "s1")
        let first = try await h.client(H.chat).call(V1.TasksService.spawn, request)
        #expect(try await h.client(H.chat).call(V1.TasksService.spawn, request).id == first.id)
        let otherUser = await rpcError {
            _ = try await h.client(H.chat.acting(for: Self.user2)).call(V1.TasksService.spawn, request)
        }
        #expect(otherUser?.code == .failedPrecondition)
    }

    /// task_events gained its task's user in v5: events logged before carry it once the store
    /// opens the database, so an old event of user_1's task is not followed by a watch for user_2.
    @Test func theUpgradeGivesEachLoggedEventItsTasksUser() async throws {
        let path = TestDirectories.make("threads-v4") + "/threads.sqlite"
        var migrator = DatabaseMigrator()
        ThreadsSchema.register(&migrator)
        let v4 = "v4 idempotency keys are unique per owner, not per agent"
        #expect(migrator.migrations.last != v4, "no migration after v4 to test")
        let scope = H.scope
        let cluster = H.chat.cluster
        func task(_ id: String, user: String, thread: String) -> V1.Task {
            V1.Task(
                id: id, clusterId: cluster, threadId: thread, spawnerAgentId: H.chat.id, targetAgentId: H.bgo.id,
                userId: user, prompt: "p", state: .queued, createdAtUnixMs: 1, updatedAtUnixMs: 1)
        }
        let logged = [
            task("task_u1", user: Self.user1, thread: "thr_old"), task("task_none", user: "", thread: "thr_old"),
            task("task_gone", user: Self.user1, thread: "thr_gone"),
        ]
        do {
            let old = try DatabaseQueue(path: path)
            try migrator.migrate(old, upTo: v4)
            try await old.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO threads (id, org, project, env, owner_kind, owner_id, user_id, title, metadata,
                            created_by_agent_id, created_at, updated_at)
                        VALUES ('thr_old', ?, ?, ?, ?, ?, '', 't', '{}', ?, 1, 1)
                        """, arguments: [scope.org, scope.project, scope.env, V1.OwnerKind.cluster.protoValue, cluster, H.chat.id])
                for task in logged {
                    // The task of the last event is gone: only its event is left.
                    if task.id != "task_gone" {
                        try db.execute(
                            sql: """
                                INSERT INTO tasks (id, org, project, env, cluster_id, thread_id, spawner_agent_id,
                                    target_agent_id, user_id, prompt, state, metadata, created_at, updated_at)
                                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'p', ?, '{}', 1, 1)
                                """,
                            arguments: [
                                task.id, scope.org, scope.project, scope.env, cluster, task.threadId, H.chat.id, H.bgo.id,
                                task.userId, task.state.protoValue,
                            ])
                    }
                    try db.execute(
                        sql: """
                            INSERT INTO task_events (org, project, env, cluster_id, thread_id, task_id, task, created_at)
                            VALUES (?, ?, ?, ?, ?, ?, ?, 1)
                            """,
                        arguments: [
                            scope.org, scope.project, scope.env, cluster, task.threadId, task.id,
                            Data(try task.serializedBytes()),
                        ])
                }
            }
        }

        let store = try SQLiteThreadsStore.open(path: path)
        let check = try DatabaseQueue(path: path)
        let users = try await check.read { db in
            try Row.fetchAll(db, sql: "SELECT task_id, user_id FROM task_events ORDER BY seq").map { [$0[0], $0[1]] as [String] }
        }
        #expect(users == [["task_u1", Self.user1], ["task_none", ""], ["task_gone", ""]])
        let upgraded = migrator
        #expect(try await check.read { db in try upgraded.appliedIdentifiers(db) } == Set(upgraded.migrations))

        func followed(for user: String) async throws -> [String] {
            let access = ThreadAccess(scope: scope, agentId: H.bgo.id, clusterId: cluster, userId: user)
            return try await store.taskEvents(.thread("thr_old"), access: access, after: 0, limit: 10).events.map(\.task.id)
        }
        #expect(try await followed(for: Self.user2) == ["task_none"])
        #expect(try await followed(for: Self.user1) == ["task_u1", "task_none"])
        #expect(try await followed(for: "") == ["task_u1", "task_none"])
    }
}
