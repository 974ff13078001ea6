import Foundation
import GRDB
import NIOConcurrencyHelpers
import PlatosProto
import PlatosRPC
import PlatosService
import Testing
@testable import ThreadsService

@Suite("tasks: spawn_bgo", .timeLimit(.minutes(1)))
struct TaskTests {
    typealias H = ThreadsHarness

    func spawn(_ h: H, _ threadId: String, target: String = H.bgo.slug, prompt: String = "research this")
        async throws -> V1.Task
    {
        try await h.client(H.chat).call(
            V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: target, prompt: prompt, threadId: threadId))
    }

    func claim(_ h: H, _ agent: TestAgent = H.bgo, leaseMs: UInt32 = 0) async throws -> V1.Task? {
        try await h.client(agent).call(V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 0, leaseMs: leaseMs)).task
    }

    @Test func spawnClaimCompletePostsTheResultAsTheWorkerForTheSpawnersUser() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let spawned = try await spawn(h, thread.id)
        #expect(spawned.state == .queued)
        #expect(spawned.targetAgentId == H.bgo.id)
        #expect(spawned.userId == H.chat.user)
        #expect(spawned.clusterId == H.chat.cluster)

        // The gateway gives a worker on a task its spawner's user; here the worker runs without.
        let task = try #require(try await claim(h))
        #expect(task.id == spawned.id)
        #expect(task.state == .running)
        #expect(!task.leaseId.isEmpty)

        // A running task does not block the thread.
        try await h.post(H.chat, thread.id, "still chatting")

        // The result becomes the worker's message in the thread: an empty one is refused.
        await #expect(throws: RPCError(.invalidArgument, "result is required")) {
            _ = try await h.client(H.bgo).call(
                V1.TasksService.complete, V1.CompleteTaskRequest(taskId: task.id, leaseId: task.leaseId, result: ""))
        }
        let done = try await h.client(H.bgo).call(
            V1.TasksService.complete, V1.CompleteTaskRequest(taskId: task.id, leaseId: task.leaseId, result: "found it"))
        #expect(done.state == .succeeded)
        #expect(done.result == "found it")

        let messages = try await h.client(H.chat).call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        let result = try #require(messages.messages.last)
        #expect(result.id == done.resultMessageId)
        #expect(result.content == "found it")
        #expect(result.authorAgentId == H.bgo.id)
        #expect(result.userId == H.chat.user)
        #expect(result.taskId == task.id)
        #expect(messages.messages.map(\.seq) == [1, 2])

        let fetched = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: task.id))
        #expect(fetched.state == .succeeded)
    }

    @Test func spawnOutsideTheCallersClusterIsPermissionDenied() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        for target in [H.stranger.slug, H.stranger.id, H.loner.slug, H.chat.slug, "no-such-agent"] {
            let error = await rpcError { _ = try await spawn(h, thread.id, target: target) }
            #expect(error?.code == .permissionDenied, "target \(target)")
        }
        let lonerThread = try await h.createThread(H.loner)
        let unclustered = await rpcError {
            _ = try await h.client(H.loner).call(
                V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: H.drifter.slug, prompt: "p", threadId: lonerThread.id))
        }
        #expect(unclustered?.code == .permissionDenied)
        // A target_agent_id set by a client is ignored: the directory decides.
        let smuggled = await rpcError {
            _ = try await h.client(H.chat).call(
                V1.TasksService.spawn,
                V1.SpawnTaskRequest(targetAgent: H.stranger.slug, prompt: "p", threadId: thread.id, targetAgentId: H.bgo.id))
        }
        #expect(smuggled?.code == .permissionDenied)
    }

    @Test func spawnIntoAnotherClustersThreadIsNotFound() async throws {
        let h = try H()
        let foreign = try await h.createThread(H.stranger)
        let error = await rpcError { _ = try await spawn(h, foreign.id) }
        #expect(error?.code == .notFound)
        #expect(error?.message == "thread '\(foreign.id)' not found")
    }

    @Test func aWorkerThatDiesLosesItsTaskToTheNextClaimAndItsStaleLeaseIsRefused() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let spawned = try await spawn(h, thread.id)
        let first = try #require(try await claim(h, leaseMs: 1_000))
        #expect(try await claim(h) == nil)  // leased: nobody else gets it

        h.clock.advance(ms: 1_001)  // the first worker died; its lease runs out
        let second = try #require(try await claim(h, leaseMs: 1_000))
        #expect(second.id == spawned.id)
        #expect(second.attempts == 2)
        #expect(second.leaseId != first.leaseId)

        let stale = await rpcError {
            _ = try await h.client(H.bgo).call(
                V1.TasksService.complete, V1.CompleteTaskRequest(taskId: first.id, leaseId: first.leaseId, result: "late"))
        }
        #expect(stale?.code == .failedPrecondition)
        let staleBeat = await rpcError {
            _ = try await h.client(H.bgo).call(
                V1.TasksService.heartbeat, V1.TaskLeaseRequest(taskId: first.id, leaseId: first.leaseId))
        }
        #expect(staleBeat?.code == .failedPrecondition)

        let beat = try await h.client(H.bgo).call(
            V1.TasksService.heartbeat, V1.TaskLeaseRequest(taskId: second.id, leaseId: second.leaseId, leaseMs: 5_000))
        #expect(beat.leaseExpiresAtUnixMs == h.clock.now + 5_000)
        let done = try await h.client(H.bgo).call(
            V1.TasksService.complete, V1.CompleteTaskRequest(taskId: second.id, leaseId: second.leaseId, result: "ok"))
        #expect(done.state == .succeeded)
        let messages = try await h.client(H.chat).call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(messages.messages.map(\.content) == ["ok"])  // exactly one result, from the live lease
    }

    @Test func theReaperRequeuesLapsedLeasesAndExpiresTasksOutOfAttempts() async throws {
        var policy = TaskLeasePolicy()
        policy.maxAttempts = 2
        let h = try H(lease: policy)
        let thread = try await h.createThread(H.chat)
        let spawned = try await spawn(h, thread.id)
        for expected in [V1.TaskState.queued, .expired] {
            _ = try #require(try await claim(h, leaseMs: 100))
            h.clock.advance(ms: 101)
            #expect(try await h.service.reapExpiredLeases() == 1)
            let task = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: spawned.id))
            #expect(task.state == expected)
        }
        #expect(try await claim(h) == nil)
    }

    @Test func theEventLogDropsEntriesPastItsRetentionAndOnlyThose() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let first = try await spawn(h, thread.id)
        h.clock.advance(ms: 30 * 60_000)
        let second = try await spawn(h, thread.id)
        let log = try DatabaseQueue(path: h.databasePath)
        func loggedTasks() throws -> [String] {
            try log.read { db in try String.fetchAll(db, sql: "SELECT task_id FROM task_events ORDER BY seq") }
        }
        #expect(try loggedTasks() == [first.id, second.id])

        // 61 minutes after the first spawn: its entry is past the hour, the second's is not.
        h.clock.advance(ms: 31 * 60_000)
        _ = try await h.service.reapExpiredLeases()
        #expect(try loggedTasks() == [second.id])

        // Every entry past the hour: the log empties.
        h.clock.advance(ms: 30 * 60_000)
        _ = try await h.service.reapExpiredLeases()
        #expect(try loggedTasks() == [])
    }

    /// Waits (yielding, never sleeping) until `signal` has parked one more wait than `before`,
    /// failing the test if that does not happen within `seconds`.
    func waitUntilParked(_ signal: ChangeSignal<String>, beyond before: UInt64, seconds: Int64 = 30) async throws {
        let giveUp = ContinuousClock.now + .seconds(seconds)
        while signal.parkedWaits == before {
            try #require(ContinuousClock.now < giveUp, "the claim never went to wait")
            await Task.yield()
        }
    }

    /// The spawn must be what answers the claim: the task is spawned only once the claim waits
    /// (a spawn before that would be found by its first look), and the claim waits longer than
    /// this suite's time limit (so the look it takes when its wait ends cannot be what answers it
    /// either). A spawn that did not wake it fails the test by its time limit, whatever the
    /// machine's speed.
    @Test func aLongPollingClaimIsWokenBySpawn() async throws {
        let h = try H { $0.maxClaimWaitMs = 600_000 }
        let thread = try await h.createThread(H.chat)
        let worker = h.client(H.bgo)
        let before = h.service.queueSignal.parkedWaits
        async let claimed = worker.call(V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 600_000))
        try await waitUntilParked(h.service.queueSignal, beyond: before)
        let spawned = try await spawn(h, thread.id)
        let task = try #require(try await claimed.task)
        #expect(task.id == spawned.id)
        #expect(task.state == .running)
    }

    @Test func aRetriedSpawnReturnsTheFirstTaskAndAnotherBodyIsRefused() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let request = V1.SpawnTaskRequest(targetAgent: H.bgo.slug, prompt: "once", threadId: thread.id, idempotencyKey: "s1")
        let first = try await h.client(H.chat).call(V1.TasksService.spawn, request)
        let again = try await h.client(H.chat).call(V1.TasksService.spawn, request)
        #expect(again.id == first.id)
        var other = request
        other.prompt = "something else"
        do {
            _ = try await h.client(H.chat).call(V1.TasksService.spawn, other)
            Issue.record("the same key with another prompt was accepted")
        } catch let error as RPCError {
            #expect(error.code == .failedPrecondition)
        }
    }

    /// A tasks.complete or tasks.fail repeated under the same lease (its answer was lost) gets
    /// the same answer; repeated with another result or error it is not a retry: refused with
    /// FAILED_PRECONDITION, as a reused idempotency key is, and the first body stays.
    @Test func aRetriedCompleteOrFailWithAnotherBodyIsRefused() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        _ = try await spawn(h, thread.id, prompt: "one")
        _ = try await spawn(h, thread.id, prompt: "two")
        let worker = h.client(H.bgo)

        let done = try #require(try await claim(h))
        let complete = V1.CompleteTaskRequest(taskId: done.id, leaseId: done.leaseId, result: "found it")
        _ = try await worker.call(V1.TasksService.complete, complete)
        let again = try await worker.call(V1.TasksService.complete, complete)
        #expect(again.state == .succeeded && again.result == "found it")
        var otherResult = complete
        otherResult.result = "found something else"
        let changed = await rpcError { _ = try await worker.call(V1.TasksService.complete, otherResult) }
        #expect(changed?.code == .failedPrecondition)
        #expect(changed?.message.contains("already completed with another result") == true, "\(String(describing: changed))")
        let messages = try await h.client(H.chat).call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id))
        #expect(messages.messages.map(\.content) == ["found it"])

        let failed = try #require(try await claim(h))
        let fail = V1.FailTaskRequest(taskId: failed.id, leaseId: failed.leaseId, error: "no luck")
        _ = try await worker.call(V1.TasksService.fail, fail)
        let failedAgain = try await worker.call(V1.TasksService.fail, fail)
        #expect(failedAgain.state == .failed && failedAgain.error == "no luck")
        var otherError = fail
        otherError.error = "another reason"
        let changedError = await rpcError { _ = try await worker.call(V1.TasksService.fail, otherError) }
        #expect(changedError?.code == .failedPrecondition)
        #expect(changedError?.message.contains("already failed with another error") == true, "\(String(describing: changedError))")
        let kept = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: failed.id))
        #expect(kept.error == "no luck")
    }

    /// With nothing queued, a long poll goes to wait (it does not answer at once) and, when its
    /// wait is over, answers OK with no task rather than failing; it leaves nothing queued or
    /// leased behind.
    @Test func aLongPollWithNothingQueuedAnswersEmptyWhenItsWaitIsOver() async throws {
        let h = try H()
        let before = h.service.queueSignal.parkedWaits
        let answer = try await h.client(H.bgo).call(V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 300))
        #expect(answer.task == nil)
        #expect(h.service.queueSignal.parkedWaits > before, "answered without waiting")
        let tasks = try await h.client(H.bgo).call(V1.TasksService.list, V1.ListTasksRequest())
        #expect(tasks.tasks.isEmpty)
    }

    @Test func onlyTheSpawnerCancelsAndTheWorkerLearnsFromItsNextCall() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let spawned = try await spawn(h, thread.id)
        let task = try #require(try await claim(h))
        let notSpawner = await rpcError {
            _ = try await h.client(H.bgo).call(V1.TasksService.cancel, V1.CancelTaskRequest(taskId: spawned.id))
        }
        #expect(notSpawner?.code == .permissionDenied)
        let cancelled = try await h.client(H.chat).call(V1.TasksService.cancel, V1.CancelTaskRequest(taskId: spawned.id))
        #expect(cancelled.state == .cancelled)
        let late = await rpcError {
            _ = try await h.client(H.bgo).call(
                V1.TasksService.complete, V1.CompleteTaskRequest(taskId: task.id, leaseId: task.leaseId, result: "x"))
        }
        #expect(late?.code == .failedPrecondition)
    }

    @Test func watchingATaskStreamsEachStateChangeAndEndsWhenItFinishes() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let spawned = try await spawn(h, thread.id)
        let stream = h.client(H.chat).stream(V1.TasksService.watch, V1.WatchTasksRequest(taskId: spawned.id))
        var iterator = stream.makeAsyncIterator()
        #expect(try await iterator.next()?.state == .queued)
        let task = try #require(try await claim(h))
        #expect(try await iterator.next()?.state == .running)
        _ = try await h.client(H.bgo).call(
            V1.TasksService.fail, V1.FailTaskRequest(taskId: task.id, leaseId: task.leaseId, error: "no luck"))
        let failed = try await iterator.next()
        #expect(failed?.state == .failed)
        #expect(failed?.error == "no luck")
        #expect(try await iterator.next() == nil)
    }

    /// A spawner whose thread watch dropped while its task finished reconnects and still learns
    /// the result: the watch has no cursor, so its opening state includes recently ended tasks.
    @Test func aThreadWatchOpenedAfterATaskFinishedShowsHowItEnded() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let done = try await spawn(h, thread.id, prompt: "done")
        let task = try #require(try await claim(h))
        _ = try await h.client(H.bgo).call(
            V1.TasksService.complete, V1.CompleteTaskRequest(taskId: task.id, leaseId: task.leaseId, result: "found it"))
        let waiting = try await spawn(h, thread.id, prompt: "waiting")
        var iterator = h.client(H.chat).stream(V1.TasksService.watch, V1.WatchTasksRequest(threadId: thread.id))
            .makeAsyncIterator()
        let first = try #require(try await iterator.next())
        let second = try #require(try await iterator.next())
        #expect(first.id == done.id && first.state == .succeeded && first.result == "found it")
        #expect(second.id == waiting.id && second.state == .queued)
    }

    /// A thread's snapshot is held whole while it is sent: it shows the newest tasks, up to a
    /// bound, oldest first.
    @Test func aThreadsTaskSnapshotShowsItsNewestTasksUpToTheBound() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        var spawned: [String] = []
        for i in 0..<(SQLiteThreadsStore.snapshotLimit + 5) { spawned.append(try await spawn(h, thread.id, prompt: "p\(i)").id) }
        var seen: [String] = []
        var iterator = h.client(H.chat).stream(V1.TasksService.watch, V1.WatchTasksRequest(threadId: thread.id))
            .makeAsyncIterator()
        while seen.count < SQLiteThreadsStore.snapshotLimit, let task = try await iterator.next() { seen.append(task.id) }
        #expect(seen == Array(spawned.suffix(SQLiteThreadsStore.snapshotLimit)))
    }

    /// Tasks of 64 KiB prompts: a thread watch's snapshot, and each batch of events it follows,
    /// is read within the answer budget (a thousand such tasks would be 64 MiB per watch), the
    /// snapshot keeping the newest; a batch cut by size is followed from its last event's cursor,
    /// so the watch still delivers every later change, once each and in order.
    @Test func aThreadWatchReadsWithinTheAnswerBudgetAndStillDeliversEveryChange() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let prompt = String(repeating: "p", count: RequestLimits.maxPromptBytes)
        let count = 40  // 40 × 64 KiB: 2.5 MiB, past the 2 MiB budget
        var spawned: [String] = []
        for _ in 0..<count { spawned.append(try await spawn(h, thread.id, prompt: prompt).id) }
        func bytes(_ tasks: [V1.Task]) -> Int { tasks.reduce(0) { $0 + ResponseBudget.size(of: $1) } }

        let access = ThreadAccess(scope: H.scope, agentId: H.chat.id, clusterId: H.chat.cluster)
        let snapshot = try await h.store.taskSnapshot(.thread(thread.id), access: access, now: h.clock.now)
        #expect(bytes(snapshot.tasks) <= ResponseBudget.bytes)
        #expect(!snapshot.tasks.isEmpty && snapshot.tasks.count < count)
        #expect(snapshot.tasks.map(\.id) == Array(spawned.suffix(snapshot.tasks.count)), "not the newest, oldest first")

        var watch = h.client(H.chat).stream(V1.TasksService.watch, V1.WatchTasksRequest(threadId: thread.id))
            .makeAsyncIterator()
        for expected in snapshot.tasks { #expect(try await watch.next()?.id == expected.id) }

        // Every task claimed: 40 events of 64 KiB, more than one budget's worth.
        var claimed: [String] = []
        for _ in 0..<count { claimed.append(try #require(try await claim(h)).id) }
        #expect(Set(claimed) == Set(spawned))
        for id in claimed {
            let next = try #require(try await watch.next())
            #expect(next.id == id && next.state == .running)
        }

        // The same events read as the watch reads them: the first batch is cut by size and says
        // more follows; following the cursor yields each event once.
        var cursor = snapshot.cursor
        var followed: [String] = []
        var batches = 0
        while true {
            let batch = try await h.store.taskEvents(.thread(thread.id), access: access, after: cursor, limit: 256)
            batches += 1
            #expect(bytes(batch.events.map(\.task)) <= ResponseBudget.bytes)
            followed += batch.events.map(\.task.id)
            cursor = batch.events.last?.cursor ?? cursor
            if !batch.more { break }
        }
        #expect(batches > 1)
        #expect(followed == claimed)
        // A batch full by count says more follows too.
        let five = try await h.store.taskEvents(.thread(thread.id), access: access, after: snapshot.cursor, limit: 5)
        #expect(five.events.map(\.task.id) == Array(claimed.prefix(5)) && five.more)
    }

    /// A task queued for an agent that then moved to another cluster can never be claimed (claims
    /// look only in the caller's cluster): once it has waited past any claim that could still
    /// carry the old cluster, its target's next claim ends it as EXPIRED, saying why, and the
    /// spawner sees that instead of waiting for good. A task queued for it in its new cluster is
    /// claimed as usual, and a claim still naming the old cluster leaves a new task alone.
    @Test func aTaskLeftQueuedInAClusterItsTargetLeftExpiresAtTheTargetsNextClaim() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let claimedBeforeTheMove = try await spawn(h, thread.id, prompt: "first")
        let leftBehind = try await spawn(h, thread.id, prompt: "left behind")
        // bgo moves to cluster two, where stranger spawns a task for it.
        var moved = H.bgo
        moved.cluster = H.stranger.cluster
        h.directory.set(DirectoryAgent(agentId: moved.id, clusterId: moved.cluster), slug: moved.slug, in: H.scope)
        let strangerThread = try await h.createThread(H.stranger)
        let fresh = try await h.client(H.stranger).call(
            V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: moved.slug, prompt: "new home", threadId: strangerThread.id))

        // A claim admitted before the move (it still names cluster one) takes its old cluster's
        // task as before and strands nothing this young, in either cluster.
        #expect(try await claim(h, H.bgo)?.id == claimedBeforeTheMove.id)
        #expect(try await h.client(H.stranger).call(V1.TasksService.get, V1.GetTaskRequest(taskId: fresh.id)).state == .queued)
        #expect(try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: leftBehind.id)).state == .queued)

        // Two minutes on, the claim from its new cluster takes the new task and ends the old one.
        h.clock.advance(ms: 121_000)
        let claimed = try #require(try await claim(h, moved))
        #expect(claimed.id == fresh.id && claimed.state == .running)
        let ended = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: leftBehind.id))
        #expect(ended.state == .expired)
        #expect(ended.error == "its target agent left the cluster before claiming it")
    }

    /// A worker that moves to another cluster while holding a lease never claims in the old one
    /// again, and nothing else can claim a task spawned for it: when the lease runs out, the
    /// reaper ends the task as stranded (EXPIRED, saying why) instead of requeuing it for good,
    /// and the spawner's watch sees it end. In the same pass, a lapsed task whose target is still
    /// a member is requeued as before.
    @Test func theReaperEndsALapsedTaskWhoseTargetLeftTheCluster() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let forBgo = try await spawn(h, thread.id)
        let forChat = try await h.client(H.bgo).call(
            V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: H.chat.slug, prompt: "yours", threadId: thread.id))
        #expect(try await claim(h, H.bgo, leaseMs: 1_000)?.id == forBgo.id)
        #expect(try await claim(h, H.chat, leaseMs: 1_000)?.id == forChat.id)
        var watch = h.client(H.chat).stream(V1.TasksService.watch, V1.WatchTasksRequest(taskId: forBgo.id))
            .makeAsyncIterator()
        #expect(try await watch.next()?.state == .running)

        // bgo moves to cluster two and claims no more; both leases run out.
        h.directory.set(DirectoryAgent(agentId: H.bgo.id, clusterId: H.stranger.cluster), slug: H.bgo.slug, in: H.scope)
        h.clock.advance(ms: 1_001)
        #expect(try await h.service.reapExpiredLeases() == 2)

        let ended = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: forBgo.id))
        #expect(ended.state == .expired)
        #expect(ended.error == "its target agent left the cluster before finishing it")
        #expect(ended.leaseId.isEmpty)
        let seen = try #require(try await watch.next())
        #expect(seen.state == .expired && seen.error == ended.error)
        #expect(try await watch.next() == nil)

        let requeued = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: forChat.id))
        #expect(requeued.state == .queued)
        #expect(try await claim(h, H.chat)?.id == forChat.id)
    }

    /// A claim that commits after its caller gave up (deadline passed while the claim waited for
    /// the writer) puts the task back in the queue with its attempt returned, instead of leaving it
    /// running under a lease nobody holds.
    @Test func aClaimWhoseCallerIsGoneIsGivenBack() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let spawned = try await spawn(h, thread.id)
        let gate = DispatchSemaphore(value: 0)
        let holding = NIOLockedValueBox(false)
        let writerHeld = Task {
            try await h.store.database.write { _ in
                holding.withLockedValue { $0 = true }
                gate.wait()
            }
        }
        let heldBy = ContinuousClock.now + .seconds(10)
        while !holding.withLockedValue({ $0 }), ContinuousClock.now < heldBy { try await Task.sleep(for: .milliseconds(2)) }
        let late = Task {
            await rpcError {
                _ = try await h.client(H.bgo).call(
                    V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 0), timeout: .milliseconds(200))
            }
        }
        // The claim's write is queued behind the held one; release the writer only once the
        // call's 200 ms deadline has passed. The call fixed its deadline before its write was
        // queued, so it is at most 200 ms after the instant the queued write is seen: counting
        // from there (not from before the task started, which a slow machine may start late)
        // the deadline has surely passed 300 ms on.
        let queuedBy = ContinuousClock.now + .seconds(10)
        while h.store.database.writer.queuedWrites == 0, ContinuousClock.now < queuedBy {
            try await Task.sleep(for: .milliseconds(2))
        }
        let queued = ContinuousClock.now
        #expect(h.store.database.writer.queuedWrites == 1)
        try await Task.sleep(until: queued + .milliseconds(300))
        gate.signal()
        try await writerHeld.value
        #expect(await late.value?.code == .deadlineExceeded)
        let deadline = ContinuousClock.now + .seconds(10)
        var task = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: spawned.id))
        while task.state != .queued, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
            task = try await h.client(H.chat).call(V1.TasksService.get, V1.GetTaskRequest(taskId: spawned.id))
        }
        #expect(task.state == .queued)
        #expect(task.attempts == 0)
        #expect(task.leaseId.isEmpty)
        let next = try #require(try await claim(h))
        #expect(next.id == spawned.id && next.attempts == 1)
    }

    @Test func listsTasksOfAThreadByState() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        _ = try await spawn(h, thread.id, prompt: "one")
        _ = try await spawn(h, thread.id, prompt: "two")
        _ = try #require(try await claim(h))
        let queued = try await h.client(H.bgo).call(
            V1.TasksService.list, V1.ListTasksRequest(threadId: thread.id, state: .queued))
        #expect(queued.tasks.map(\.prompt) == ["two"])
        let all = try await h.client(H.chat).call(V1.TasksService.list, V1.ListTasksRequest(threadId: thread.id))
        #expect(all.tasks.count == 2)
        let strangers = try await h.client(H.stranger).call(V1.TasksService.list, V1.ListTasksRequest())
        #expect(strangers.tasks.isEmpty)
    }
}
