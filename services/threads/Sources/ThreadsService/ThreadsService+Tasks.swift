import PlatosProto
import PlatosRPC
import PlatosService

extension ThreadsService {
    func registerTasks(_ routes: inout AuthenticatedRouter) {
        routes.register(V1.TasksService.spawn) { [self] request, caller in try await spawnTask(request, caller) }
        routes.register(V1.TasksService.claim) { [self] request, caller in try await claimTask(request, caller) }
        routes.register(V1.TasksService.heartbeat) { [self] request, caller in
            let access = try access(caller)
            try RequestLimits.require(request.taskId, "task_id")
            try RequestLimits.require(request.leaseId, "lease_id")
            let leaseMs = try configuration.lease.leaseMs(request.leaseMs)
            return try await store.heartbeat(
                taskId: request.taskId, leaseId: request.leaseId, leaseMs: leaseMs, access: access, now: now)
        }
        routes.register(V1.TasksService.complete) { [self] request, caller in
            let access = try access(caller)
            try RequestLimits.require(request.taskId, "task_id")
            try RequestLimits.require(request.leaseId, "lease_id")
            // Posted into the thread as the worker's message, and a message has content.
            guard !request.result.isEmpty else { throw RPCError(.invalidArgument, "result is required") }
            try RequestLimits.limit(request.result, "result", RequestLimits.maxResultBytes)
            let (task, message) = try await store.completeTask(
                taskId: request.taskId, leaseId: request.leaseId, result: request.result, access: access, now: now)
            if message != nil {
                messageSignal.signal(task.threadId)
                announce([task])
            }
            return task
        }
        routes.register(V1.TasksService.fail) { [self] request, caller in
            let access = try access(caller)
            try RequestLimits.require(request.taskId, "task_id")
            try RequestLimits.require(request.leaseId, "lease_id")
            try RequestLimits.limit(request.error, "error", RequestLimits.maxErrorBytes)
            let task = try await store.failTask(
                taskId: request.taskId, leaseId: request.leaseId, error: request.error, access: access, now: now)
            announce([task])
            return task
        }
        routes.register(V1.TasksService.cancel) { [self] request, caller in
            let access = try access(caller)
            try RequestLimits.require(request.taskId, "task_id")
            let task = try await store.cancelTask(taskId: request.taskId, access: access, now: now)
            announce([task])
            return task
        }
        routes.register(V1.TasksService.get) { [self] request, caller in
            let access = try access(caller)
            try RequestLimits.require(request.taskId, "task_id")
            return try await store.task(request.taskId, access: access)
        }
        routes.register(V1.TasksService.list) { [self] request, caller in
            let access = try access(caller)
            try RequestLimits.optionalId(request.threadId, "thread_id")
            let limit = try PageCursor.pageSize(request.page)
            let after = try PageCursor.decode(request.page?.pageToken ?? "")
            let state: V1.TaskState?
            switch request.state {
            case .unspecified: state = nil
            case .unrecognized(let value): throw RPCError(.invalidArgument, "state \(value) is not a TaskState")
            default: state = request.state
            }
            let page = try await store.listTasks(
                access: access, threadId: request.threadId, state: state, after: after, limit: limit)
            return V1.ListTasksResponse(tasks: page.tasks, nextPageToken: page.next?.token ?? "")
        }
        routes.register(V1.TasksService.watch, stream: { [self] request, caller, writer in
            try await watchTasks(request, caller, writer)
        })
    }

    /// spawn_bgo: queues a task for a sibling. The target is resolved through the directory, never
    /// taken from the request's `target_agent_id`, so a client cannot name an agent outside its
    /// cluster by id.
    func spawnTask(_ request: V1.SpawnTaskRequest, _ caller: Caller) async throws -> V1.Task {
        let access = try access(caller)
        try RequestLimits.require(request.targetAgent, "target_agent")
        try RequestLimits.require(request.threadId, "thread_id")
        guard !request.prompt.isEmpty else { throw RPCError(.invalidArgument, "prompt is required") }
        try RequestLimits.limit(request.prompt, "prompt", RequestLimits.maxPromptBytes)
        try RequestLimits.metadata(request.metadata)
        try RequestLimits.idempotencyKey(request.idempotencyKey)
        guard !access.clusterId.isEmpty else {
            throw RPCError(.permissionDenied, "tasks.spawn needs a caller in a cluster: it dispatches to siblings")
        }
        // One answer for "no such agent", "in another cluster" and "in no cluster", so a spawn
        // cannot probe who exists elsewhere.
        guard let target = try await directory.agent(request.targetAgent, in: caller.scope),
            target.clusterId == access.clusterId, target.agentId != access.agentId
        else {
            throw RPCError(
                .permissionDenied, "target_agent '\(request.targetAgent)' is not another member of your cluster")
        }
        let draft = TaskDraft(
            threadId: request.threadId, targetAgentId: target.agentId, prompt: request.prompt,
            metadata: request.metadata, userId: caller.userId, idempotencyKey: request.idempotencyKey)
        let task = try await store.spawnTask(draft, access: access, now: now)
        announce([task])
        return task
    }

    /// Long-polls for the caller's next task. The queue signal is subscribed before each look, so
    /// a task spawned between a look that found nothing and the wait still wakes the wait.
    func claimTask(_ request: V1.ClaimTaskRequest, _ caller: Caller) async throws -> V1.ClaimTaskResponse {
        let access = try access(caller)
        guard request.waitMs <= configuration.maxClaimWaitMs else {
            throw RPCError(.invalidArgument, "wait_ms is \(request.waitMs); the limit is \(configuration.maxClaimWaitMs)")
        }
        let leaseMs = try configuration.lease.leaseMs(request.leaseMs)
        var deadline = ContinuousClock.now + .milliseconds(Int64(request.waitMs))
        // Answer "nothing yet" a little before the caller's own deadline, rather than let the
        // call die of DEADLINE_EXCEEDED.
        if let callDeadline = caller.context.deadline { deadline = min(deadline, callDeadline - .milliseconds(50)) }
        let subscription = queueSignal.subscribe(Self.queueKey(cluster: access.clusterId, agent: access.agentId))
        defer { queueSignal.unsubscribe(subscription) }
        while true {
            try Task.checkCancellation()
            let generation = queueSignal.generation(subscription)
            // Straight to the write, with no read first to see whether there is anything to
            // claim: that read cost every successful claim a second database call, while a claim
            // that finds nothing is a write that changes nothing. A long-poll looks once per call
            // and once per wake-up, and it is woken only when a task is queued for this agent.
            let (claimed, changed) = try await store.claimTask(
                access: access, leaseMs: leaseMs, maxAttempts: configuration.lease.maxAttempts, now: now)
            announce(changed)
            if let claimed {
                // The caller went away (cancelled, or its deadline passed) while the claim waited
                // for its commit: it will never see this lease, so the task must not sit running
                // under it until it lapses, nor lose an attempt to it.
                let gone = Task.isCancelled || caller.context.deadline.map { ContinuousClock.now >= $0 } == true
                guard gone else { return V1.ClaimTaskResponse(task: claimed) }
                if let requeued = try await store.unclaimTask(claimed, access: access, now: now) { announce([requeued]) }
                throw RPCError(.cancelled, "the claim's caller went away; the task was queued again")
            }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return V1.ClaimTaskResponse() }
            await queueSignal.wait(subscription, since: generation, timeout: remaining)
        }
    }

    /// Streams the state of one task, or of every task of one thread: first the current state
    /// (for a thread, its queued and running tasks and those that finished within the last hour),
    /// then each change as it commits. A watch of one task ends once the task has finished.
    func watchTasks(_ request: V1.WatchTasksRequest, _ caller: Caller, _ writer: RPCStreamWriter<V1.Task>)
        async throws
    {
        let access = try access(caller)
        let selector: TaskSelector
        let threadId: String
        switch (request.threadId.isEmpty, request.taskId.isEmpty) {
        case (false, true):
            try RequestLimits.require(request.threadId, "thread_id")
            selector = .thread(request.threadId)
            threadId = request.threadId
        case (true, false):
            try RequestLimits.require(request.taskId, "task_id")
            selector = .task(request.taskId)
            // Changes are signalled per thread; learn the task's thread to listen there.
            threadId = try await store.task(request.taskId, access: access).threadId
        default:
            throw RPCError(.invalidArgument, "set exactly one of thread_id and task_id")
        }
        let subscription = taskSignal.subscribe(threadId)
        defer { taskSignal.unsubscribe(subscription) }
        let snapshot = try await store.taskSnapshot(selector, access: access, now: now)
        for task in snapshot.tasks { try await writer.send(task) }
        if case .task = selector, snapshot.tasks.allSatisfy(\.isFinished) { return }
        var cursor = snapshot.cursor
        while true {
            try Task.checkCancellation()
            let generation = taskSignal.generation(subscription)
            // A batch ends at 256 events or at the answer budget, whichever comes first; one cut
            // short is followed at once from the cursor of the last event sent.
            let batch = try await store.taskEvents(selector, access: access, after: cursor, limit: 256)
            for event in batch.events {
                try await writer.send(event.task)
                cursor = event.cursor
                if case .task = selector, event.task.isFinished { return }
            }
            if batch.more { continue }
            await taskSignal.wait(subscription, since: generation)
        }
    }
}
