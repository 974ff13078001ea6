import Foundation
import GRDB
import PlatosProto
import PlatosRPC
import PlatosService
import PlatosStorage

extension SQLiteThreadsStore {
    public func spawnTask(_ draft: TaskDraft, access: ThreadAccess, now: Int64) async throws -> V1.Task {
        try await database.write { db in
            if !draft.idempotencyKey.isEmpty {
                var arguments: StatementArguments = [access.agentId, draft.idempotencyKey]
                // The agent's own key, whichever user its task was spawned for: a retry for
                // another user is refused below as a reused key (as threads.create does), not
                // taken for an unused one and then refused by the unique index as ALREADY_EXISTS.
                // Nothing of the first task is returned unless the user matches.
                arguments += access.anyUser.taskVisibleArguments
                let existing = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT \(V1.Task.columns) FROM tasks k
                            WHERE k.spawner_agent_id = ? AND k.idempotency_key = ? AND \(ThreadAccess.taskVisible("k"))
                            """), arguments: arguments)
                if let existing {
                    let first = V1.Task(row: existing)
                    // What a spawn asked for never changes, whatever state the task is in now.
                    guard first.threadId == draft.threadId, first.targetAgentId == draft.targetAgentId,
                        first.prompt == draft.prompt, first.metadata == draft.metadata, first.userId == draft.userId
                    else { throw ThreadsErrors.idempotencyKeyReused(draft.idempotencyKey, for: "task") }
                    return first
                }
            }
            guard let thread = try Self.visibleThread(db, draft.threadId, access) else {
                throw ThreadsErrors.threadNotFound(draft.threadId)
            }
            // The sibling must be able to read the thread it answers into; a thread the spawner
            // owns as an agent (made before it joined) is invisible to every other member.
            guard thread.ownerKind == .cluster, thread.ownerId == access.clusterId else {
                throw RPCError(
                    .failedPrecondition,
                    "thread '\(draft.threadId)' belongs to agent '\(thread.ownerId)', not to its cluster; spawn into a cluster thread")
            }
            let task = V1.Task(
                id: ResourceID.make("task"), clusterId: access.clusterId, threadId: draft.threadId,
                spawnerAgentId: access.agentId, targetAgentId: draft.targetAgentId, userId: draft.userId,
                prompt: draft.prompt, state: .queued, attempts: 0, metadata: draft.metadata, createdAtUnixMs: now,
                updatedAtUnixMs: now)
            do {
                try task.insert(db, access: access, idempotencyKey: draft.idempotencyKey)
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                throw RPCError(.alreadyExists, "idempotency_key was already used for another task")
            }
            return task
        }
    }

    // The statements of the task round trip, built once rather than on every call: the statement
    // cache is keyed by the SQL text, which was rebuilt and rehashed each time.
    // Lapsed leases are few (the reaper requeues them too), so the lookup goes through the small
    // index of running tasks by expiry; left to itself the planner would walk every task of the
    // cluster.
    private static let lapsedLeasesSQL = """
        SELECT \(V1.Task.columns) FROM tasks k INDEXED BY tasks_running
        WHERE k.target_agent_id = ? AND k.state = \(V1.TaskState.running.protoValue)
            AND k.lease_expires_at <= ? AND \(ThreadAccess.taskVisible("k"))
        """
    private static let oldestQueuedSQL = """
        SELECT \(V1.Task.columns) FROM tasks k
        WHERE k.target_agent_id = ? AND k.state = \(V1.TaskState.queued.protoValue)
            AND \(ThreadAccess.taskVisible("k"))
        -- rowid (insertion order) breaks ties within a millisecond: claims are FIFO.
        ORDER BY k.created_at, k.rowid LIMIT 1
        """
    /// The caller's queued tasks in clusters other than its own: it left them before claiming
    /// (a move, or a requeue after it lost its lease across one). Claims only ever look in the
    /// caller's current cluster, so nothing else would ever end them. Only tasks untouched for
    /// ``strandedAfterMs``: a claim admitted just before its agent moved still names the old
    /// cluster, and must not take a task just queued in the new one for stranded. Only tasks the
    /// caller's end user may act on, as every other task statement: a claim acting for one user
    /// does not end another user's task (the target's next claim acting for none, or for that
    /// user, does).
    private static let strandedSQL = """
        SELECT \(V1.Task.columns) FROM tasks k INDEXED BY tasks_queued
        WHERE k.org = ? AND k.project = ? AND k.env = ? AND k.target_agent_id = ?
            AND k.state = \(V1.TaskState.queued.protoValue) AND k.cluster_id <> ? AND k.updated_at < ?
            AND \(ThreadAccess.userVisible("k"))
        LIMIT 100
        """

    /// Longer than a claim can wait (30 s) plus the gateway's principal cache lifetime (30 s): no
    /// claim this much younger than a task can still carry its agent's previous cluster.
    static let strandedAfterMs: Int64 = 120_000
    private static let visibleTaskSQL =
        "SELECT \(V1.Task.columns) FROM tasks k WHERE k.id = ? AND \(ThreadAccess.taskVisible("k"))"

    public func claimTask(access: ThreadAccess, leaseMs: Int64, maxAttempts: Int, now: Int64) async throws
        -> (claimed: V1.Task?, changed: [V1.Task])
    {
        try await database.write { db in
            var changed: [V1.Task] = []
            // Lazy requeue: the caller's own lapsed leases go back to the queue first, so a worker
            // that restarts after a crash gets its task back without waiting for the reaper. Only
            // those of tasks its end user may act on, which are the only ones it could claim back;
            // the reaper requeues the others.
            var lapsedArguments: StatementArguments = [access.agentId, now]
            lapsedArguments += access.taskVisibleArguments
            let lapsed = try Row.fetchAll(
                db.cachedStatement(sql: Self.lapsedLeasesSQL), arguments: lapsedArguments)
            for row in lapsed {
                var task = V1.Task(row: row)
                task.lapse(maxAttempts: maxAttempts, now: now)
                try task.save(db, access: access)
                changed.append(task)
            }
            var strandedArguments: StatementArguments = [
                access.org, access.project, access.env, access.agentId, access.clusterId, now - Self.strandedAfterMs,
            ]
            strandedArguments += access.userVisibleArguments
            let stranded = try Row.fetchAll(
                db.cachedStatement(sql: Self.strandedSQL), arguments: strandedArguments)
            for row in stranded {
                var task = V1.Task(row: row)
                task.strand(now: now)
                try task.save(db, access: access)
                changed.append(task)
            }
            var queuedArguments: StatementArguments = [access.agentId]
            queuedArguments += access.taskVisibleArguments
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: Self.oldestQueuedSQL), arguments: queuedArguments)
            else { return (nil, changed) }
            var task = V1.Task(row: row)
            task.lease(for: leaseMs, now: now)
            try task.save(db, access: access)
            changed.append(task)
            return (task, changed)
        }
    }

    /// Gives back a claim the caller never received (it was cancelled or out of time when the
    /// claim committed): the task is queued again with its attempt returned, unless the lease has
    /// already changed hands.
    public func unclaimTask(_ claimed: V1.Task, access: ThreadAccess, now: Int64) async throws -> V1.Task? {
        try await database.write { db in
            guard var task = try Self.visibleTask(db, claimed.id, access), task.isLeased(to: claimed.leaseId, now: now)
            else { return nil }
            task.unclaim(now: now)
            try task.save(db, access: access)
            return task
        }
    }

    /// The task as its target agent sees it inside a write: `NOT_FOUND` when the caller cannot
    /// see it, `PERMISSION_DENIED` when it can but is not the worker it was spawned for.
    private static func workerTask(_ db: Database, _ taskId: String, _ access: ThreadAccess) throws -> V1.Task {
        guard let task = try visibleTask(db, taskId, access) else { throw ThreadsErrors.taskNotFound(taskId) }
        guard task.targetAgentId == access.agentId else {
            throw RPCError(.permissionDenied, "task '\(taskId)' was spawned for another agent")
        }
        return task
    }

    static func visibleTask(_ db: Database, _ taskId: String, _ access: ThreadAccess) throws -> V1.Task? {
        var arguments: StatementArguments = [taskId]
        arguments += access.taskVisibleArguments
        return try Row.fetchOne(
            db.cachedStatement(sql: visibleTaskSQL),
            arguments: arguments
        ).map(V1.Task.init(row:))
    }

    public func heartbeat(taskId: String, leaseId: String, leaseMs: Int64, access: ThreadAccess, now: Int64)
        async throws -> V1.Task
    {
        try await database.write { db in
            var task = try Self.workerTask(db, taskId, access)
            guard task.isLeased(to: leaseId, now: now) else { throw ThreadsErrors.staleLease(taskId) }
            task.leaseExpiresAtUnixMs = now + leaseMs
            task.updatedAtUnixMs = now
            try task.save(db, access: access, recordEvent: false)
            return task
        }
    }

    public func completeTask(taskId: String, leaseId: String, result: String, access: ThreadAccess, now: Int64)
        async throws -> (task: V1.Task, message: V1.Message?)
    {
        try await database.write { db in
            var task = try Self.workerTask(db, taskId, access)
            // A retry of a completion whose answer was lost gets the same answer, not an error;
            // one with another result is not a retry, and must not be told its result was kept.
            if task.state == .succeeded, !leaseId.isEmpty, task.leaseId == leaseId {
                guard task.result == result else { throw ThreadsErrors.alreadyFinished(taskId, "completed", "result") }
                return (task, nil)
            }
            guard task.isLeased(to: leaseId, now: now) else { throw ThreadsErrors.staleLease(taskId) }
            // The result goes into the task's thread by the task's authority (its cluster owns the
            // thread), authored by the worker and attributed to the spawner's user.
            let threadAccess = ThreadAccess(scope: access.scope, agentId: "", clusterId: task.clusterId)
            guard let seq = try SeqAllocator.next(db, threadId: task.threadId, access: threadAccess, now: now) else {
                throw ThreadsErrors.taskNotFound(taskId)
            }
            let message = V1.Message(
                id: ResourceID.make("msg"), threadId: task.threadId, seq: seq, role: .agent, content: result,
                metadata: [:], authorAgentId: access.agentId, userId: task.userId, taskId: task.id,
                createdAtUnixMs: now)
            try message.insert(db, access: access, idempotencyKey: "")
            task.state = .succeeded
            task.result = result
            task.resultMessageId = message.id
            task.leaseExpiresAtUnixMs = 0
            task.updatedAtUnixMs = now
            try task.save(db, access: access)
            return (task, message)
        }
    }

    public func failTask(taskId: String, leaseId: String, error: String, access: ThreadAccess, now: Int64)
        async throws -> V1.Task
    {
        try await database.write { db in
            var task = try Self.workerTask(db, taskId, access)
            if task.state == .failed, !leaseId.isEmpty, task.leaseId == leaseId {
                guard task.error == error else { throw ThreadsErrors.alreadyFinished(taskId, "failed", "error") }
                return task
            }
            guard task.isLeased(to: leaseId, now: now) else { throw ThreadsErrors.staleLease(taskId) }
            task.state = .failed
            task.error = error
            task.leaseExpiresAtUnixMs = 0
            task.updatedAtUnixMs = now
            try task.save(db, access: access)
            return task
        }
    }

    public func cancelTask(taskId: String, access: ThreadAccess, now: Int64) async throws -> V1.Task {
        try await database.write { db in
            guard var task = try Self.visibleTask(db, taskId, access) else { throw ThreadsErrors.taskNotFound(taskId) }
            guard task.spawnerAgentId == access.agentId else {
                throw RPCError(.permissionDenied, "only the agent that spawned task '\(taskId)' may cancel it")
            }
            if task.state == .cancelled { return task }
            guard !task.isFinished else {
                throw RPCError(.failedPrecondition, "task '\(taskId)' has already finished")
            }
            // Clearing the lease makes the worker's next heartbeat or completion fail, which is
            // how it learns to stop.
            task.state = .cancelled
            task.leaseId = ""
            task.leaseExpiresAtUnixMs = 0
            task.updatedAtUnixMs = now
            try task.save(db, access: access)
            return task
        }
    }

    public func task(_ id: String, access: ThreadAccess) async throws -> V1.Task {
        try await database.read { db in
            guard let task = try Self.visibleTask(db, id, access) else { throw ThreadsErrors.taskNotFound(id) }
            return task
        }
    }

    public func listTasks(
        access: ThreadAccess, threadId: String, state: V1.TaskState?, after: PageCursor?, limit: Int
    ) async throws -> (tasks: [V1.Task], next: PageCursor?) {
        try await database.read { db in
            // A thread the caller cannot see (another cluster's, another user's, or none) is
            // NOT_FOUND, as on every other call naming a thread, rather than an empty list.
            if !threadId.isEmpty, try Self.visibleThread(db, threadId, access) == nil {
                throw ThreadsErrors.threadNotFound(threadId)
            }
            // By thread, through the thread's index: without statistics SQLite prefers the
            // cluster index (more equal columns, already in page order) and reads every task of
            // the cluster to find one thread's.
            var sql = "SELECT \(V1.Task.columns) FROM tasks k \(threadId.isEmpty ? "" : "INDEXED BY tasks_by_thread ")"
                + "WHERE \(ThreadAccess.taskVisible("k"))"
            var arguments = access.taskVisibleArguments
            if !threadId.isEmpty {
                sql += " AND k.thread_id = ?"
                arguments += [threadId]
            }
            if let state {
                sql += " AND k.state = ?"
                arguments += [state.protoValue]
            }
            if let after {
                sql += " AND (k.created_at, k.id) < (?, ?)"
                arguments += [after.createdAt, after.id]
            }
            sql += " ORDER BY k.created_at DESC, k.id DESC LIMIT ?"
            arguments += [limit + 1]
            let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
            // Prompt and result are up to 64 KiB each: a page also ends when full by size.
            let (tasks, more) = try ResponseBudget.page(limit: limit, size: V1.Task.answerSize) {
                try rows.next().map(V1.Task.init(row:))
            }
            let next = more ? tasks.last.map { PageCursor(createdAt: $0.createdAtUnixMs, id: $0.id) } : nil
            return (tasks, next)
        }
    }

    // MARK: watching

    public func taskSnapshot(_ selector: TaskSelector, access: ThreadAccess, now: Int64) async throws -> TaskSnapshot {
        try await database.read { db in
            // Cursor and states come from one read transaction, so every later event is one the
            // snapshot does not already show.
            let cursor = try Self.eventCursor(db, selector, access)
            switch selector {
            case .task(let id):
                guard let task = try Self.visibleTask(db, id, access) else { throw ThreadsErrors.taskNotFound(id) }
                return TaskSnapshot(tasks: [task], cursor: cursor)
            case .thread(let id):
                guard try Self.visibleThread(db, id, access) != nil else { throw ThreadsErrors.threadNotFound(id) }
                var arguments: StatementArguments = [id]
                arguments += access.taskVisibleArguments
                arguments += [now - Self.eventRetentionMs]
                // Finished ones too, while their last event is still in the log: the watch has
                // no cursor of its own, and a spawner that reconnects after its task ended would
                // otherwise never learn the result (the snapshot's cursor is already past it).
                // At most `snapshotLimit` of them and as many as fit in the answer budget: a
                // snapshot is held whole while it is sent, and a task carries up to 160 KiB
                // (prompt, result, error, metadata), so a thousand of them could be 160 MiB per
                // watch. Queued and running tasks come first, then finished ones, each newest
                // first: what a cut leaves out is finished history before any task still under
                // way (whose next change the watcher will see anyway). Read in that order from
                // the cursor, so rows past the cut are never decoded.
                arguments += [Self.snapshotLimit]
                let rows = try Row.fetchCursor(
                    db.cachedStatement(
                        sql: """
                            SELECT \(V1.Task.columns) FROM tasks k INDEXED BY tasks_by_thread
                            WHERE k.thread_id = ? AND \(ThreadAccess.taskVisible("k"))
                                AND (k.state IN (\(V1.TaskState.queued.protoValue), \(V1.TaskState.running.protoValue))
                                    OR k.updated_at >= ?)
                            ORDER BY k.state IN (\(V1.TaskState.queued.protoValue), \(V1.TaskState.running.protoValue)) DESC,
                                k.created_at DESC, k.rowid DESC
                            LIMIT ?
                            """), arguments: arguments)
                let (tasks, _) = try ResponseBudget.page(limit: Self.snapshotLimit, size: V1.Task.answerSize) {
                    try rows.next().map(V1.Task.init(row:))
                }
                return TaskSnapshot(tasks: tasks.reversed(), cursor: cursor)
            }
        }
    }

    /// The most tasks a thread's `tasks.watch` snapshot shows (the newest), fewer when they do
    /// not fit in ``ResponseBudget/bytes``.
    static let snapshotLimit = 1_000

    private static func selectorColumn(_ selector: TaskSelector) -> (column: String, id: String) {
        switch selector {
        case .task(let id): return ("task_id", id)
        case .thread(let id): return ("thread_id", id)
        }
    }

    private static func eventCursor(_ db: Database, _ selector: TaskSelector, _ access: ThreadAccess) throws -> Int64 {
        let (column, id) = selectorColumn(selector)
        var arguments: StatementArguments = [id]
        arguments += access.taskVisibleArguments
        return try Int64.fetchOne(
            db.cachedStatement(
                sql: "SELECT MAX(e.seq) FROM task_events e WHERE e.\(column) = ? AND \(ThreadAccess.taskVisible("e"))"),
            arguments: arguments) ?? 0
    }

    public func taskEvents(_ selector: TaskSelector, access: ThreadAccess, after cursor: Int64, limit: Int)
        async throws -> (events: [(cursor: Int64, task: V1.Task)], more: Bool)
    {
        try await database.read { db in
            // Checked on every read, so a watch ends (NOT_FOUND) once its thread or task is gone.
            switch selector {
            case .task(let id):
                guard try Self.visibleTask(db, id, access) != nil else { throw ThreadsErrors.taskNotFound(id) }
            case .thread(let id):
                guard try Self.visibleThread(db, id, access) != nil else { throw ThreadsErrors.threadNotFound(id) }
            }
            let (column, id) = Self.selectorColumn(selector)
            var arguments: StatementArguments = [id, cursor]
            arguments += access.taskVisibleArguments
            // One more than a batch, so that a batch full by count knows whether more follow.
            arguments += [limit + 1]
            let rows = try Row.fetchCursor(
                db.cachedStatement(
                    sql: """
                        SELECT e.seq, e.task FROM task_events e
                        WHERE e.\(column) = ? AND e.seq > ? AND \(ThreadAccess.taskVisible("e"))
                        ORDER BY e.seq LIMIT ?
                        """), arguments: arguments)
            // Oldest first, as many as fit in the answer budget (each event is a whole task, up to
            // 160 KiB), sized by the stored encoding itself before anything is decoded. A batch
            // cut short says so; the watch sends it, moves its cursor to the last event it sent
            // and reads on from there, so the event left out comes next, neither lost nor twice.
            let (page, more) = try ResponseBudget.page(limit: limit, size: { (event: (Int64, Data)) in event.1.count }) {
                try rows.next().map { row -> (Int64, Data) in (row[0], row[1]) }
            }
            let events = try page.map { seq, bytes in (cursor: seq, task: try V1.Task(serializedBytes: [UInt8](bytes))) }
            return (events, more)
        }
    }

    // MARK: maintenance

    /// How long the task event log keeps an entry. Watches follow it live, so only a watcher this
    /// far behind could miss one.
    static let eventRetentionMs: Int64 = 3_600_000

    public func lapsedTasks(now: Int64, limit: Int) async throws -> [LapsedTask] {
        try await database.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT \(V1.Task.columns), k.org, k.project, k.env FROM tasks k
                        WHERE k.state = \(V1.TaskState.running.protoValue) AND k.lease_expires_at <= ?
                        ORDER BY k.lease_expires_at LIMIT ?
                        """), arguments: [now, limit]
            ).map { row in LapsedTask(scope: V1.Scope(org: row[17], project: row[18], env: row[19]), task: V1.Task(row: row)) }
        }
    }

    public func reapExpiredLeases(_ lapsed: [LapsedTask], stranded: Set<String>, maxAttempts: Int, now: Int64)
        async throws -> [V1.Task]
    {
        try await database.write { db in
            var changed: [V1.Task] = []
            for entry in lapsed {
                let access = ThreadAccess(scope: entry.scope, agentId: "", clusterId: entry.task.clusterId)
                // Decided on what was read before the write: only a task nothing touched since
                // (still running under that lease, which cannot be renewed once it ran out).
                guard var task = try Self.visibleTask(db, entry.task.id, access), task.state == .running,
                    task.leaseId == entry.task.leaseId, task.leaseExpiresAtUnixMs <= now
                else { continue }
                if stranded.contains(task.id) {
                    task.strand(now: now)
                } else {
                    task.lapse(maxAttempts: maxAttempts, now: now)
                }
                try task.save(db, access: access)
                changed.append(task)
            }
            // seq grows with commit time, so the old entries are a prefix of the log: find where
            // it ends by reading from the start (only the entries about to go, plus one), with no
            // index on age for every event to maintain. Timestamps come from the handlers and can
            // be out of order by the writer's queueing time; an entry that close to the line goes
            // on the next pass.
            try db.cachedStatement(
                sql: """
                    DELETE FROM task_events WHERE seq < coalesce(
                        (SELECT seq FROM task_events WHERE created_at >= ? ORDER BY seq LIMIT 1),
                        (SELECT max(seq) + 1 FROM task_events))
                    """
            ).execute(arguments: [now - Self.eventRetentionMs])
            return changed
        }
    }
}
