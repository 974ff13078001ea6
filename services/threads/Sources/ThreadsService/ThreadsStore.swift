import PlatosProto

/// What a new thread holds besides its owner, which comes from ``ThreadAccess``.
public struct ThreadDraft: Sendable {
    public var title: String
    public var metadata: [String: String]
    public var userId: String
    public var idempotencyKey: String
}

/// A change to a thread's title and metadata.
public struct ThreadChange: Sendable {
    public var title: String?
    public var metadata: [String: String]
    public var replaceMetadata: Bool
}

/// A message as posted; seq, id and time are assigned by the store.
public struct MessageDraft: Sendable {
    public var threadId: String
    public var role: V1.MessageRole
    public var content: String
    public var metadata: [String: String]
    public var userId: String
    public var idempotencyKey: String
}

/// A task as spawned, after the target was resolved to a sibling.
public struct TaskDraft: Sendable {
    public var threadId: String
    public var targetAgentId: String
    public var prompt: String
    public var metadata: [String: String]
    public var userId: String
    public var idempotencyKey: String
}

/// Which tasks a watch follows.
public enum TaskSelector: Sendable, Hashable {
    case thread(String)
    case task(String)
}

/// The state of the tasks a watch follows, and the event cursor it was read at.
public struct TaskSnapshot: Sendable {
    public var tasks: [V1.Task]
    public var cursor: Int64
}

/// Storage for threads, messages and tasks. Every method takes the caller's ``ThreadAccess`` and
/// applies it inside its queries; a row outside it is reported exactly like a missing row.
///
/// Errors are `RPCError`s with the codes the handlers answer with (`NOT_FOUND`,
/// `FAILED_PRECONDITION`, ...), so another implementation (PostgreSQL) plugs in without touching
/// the handlers.
public protocol ThreadsStore: Sendable {
    func createThread(_ draft: ThreadDraft, access: ThreadAccess, now: Int64) async throws -> V1.Thread
    func thread(_ id: String, access: ThreadAccess) async throws -> V1.Thread
    func listThreads(
        access: ThreadAccess, metadataFilter: [String: String], after: PageCursor?, limit: Int
    ) async throws -> (threads: [V1.Thread], next: PageCursor?)
    func updateThread(_ id: String, _ change: ThreadChange, access: ThreadAccess, now: Int64) async throws -> V1.Thread
    func deleteThread(_ id: String, access: ThreadAccess) async throws

    /// Appends a message with the thread's next seq, in the same transaction that allocates it.
    /// A repeated idempotency key returns the message it first created.
    func postMessage(_ draft: MessageDraft, access: ThreadAccess, now: Int64) async throws -> V1.Message
    /// The oldest `limit` messages after `afterSeq` (or the newest, oldest first), whether more
    /// follow the last one, and with `includeThread` the thread itself, from the same snapshot.
    func listMessages(
        threadId: String, access: ThreadAccess, afterSeq: UInt64, limit: Int, authorAgentId: String, newest: Bool,
        includeThread: Bool
    ) async throws -> (messages: [V1.Message], hasMore: Bool, thread: V1.Thread?)

    func spawnTask(_ draft: TaskDraft, access: ThreadAccess, now: Int64) async throws -> V1.Task
    /// Leases the caller's oldest claimable task, first requeuing (or expiring) its lapsed leases.
    /// Returns the claimed task and every task whose state the call changed; finding nothing
    /// changes nothing, so that write commits no pages.
    func claimTask(access: ThreadAccess, leaseMs: Int64, maxAttempts: Int, now: Int64) async throws
        -> (claimed: V1.Task?, changed: [V1.Task])
    func heartbeat(taskId: String, leaseId: String, leaseMs: Int64, access: ThreadAccess, now: Int64)
        async throws -> V1.Task
    /// Finishes the task and posts `result` into its thread, authored by the worker, for the
    /// spawner's user, in one transaction. Returns the task and the result message (nil when the
    /// call repeats a completion that already happened under the same lease with the same result;
    /// with another result it is `FAILED_PRECONDITION`). ``failTask(taskId:leaseId:error:access:now:)``
    /// treats a repeat the same way.
    func completeTask(taskId: String, leaseId: String, result: String, access: ThreadAccess, now: Int64)
        async throws -> (task: V1.Task, message: V1.Message?)
    func failTask(taskId: String, leaseId: String, error: String, access: ThreadAccess, now: Int64)
        async throws -> V1.Task
    func cancelTask(taskId: String, access: ThreadAccess, now: Int64) async throws -> V1.Task
    func task(_ id: String, access: ThreadAccess) async throws -> V1.Task
    func listTasks(
        access: ThreadAccess, threadId: String, state: V1.TaskState?, after: PageCursor?, limit: Int
    ) async throws -> (tasks: [V1.Task], next: PageCursor?)

    /// Requeues a task whose claim the caller never received, giving its attempt back; nil when
    /// the lease has changed hands meanwhile.
    func unclaimTask(_ claimed: V1.Task, access: ThreadAccess, now: Int64) async throws -> V1.Task?
    /// The state a watch starts from: the task, or the thread's queued and running tasks plus
    /// those that finished within the event log's retention (so a watcher that reconnects after a
    /// task finished still sees how it ended), the newest of them that fit in
    /// ``ResponseBudget/bytes``, and the event cursor to follow from.
    func taskSnapshot(_ selector: TaskSelector, access: ThreadAccess, now: Int64) async throws -> TaskSnapshot
    /// Task states recorded after `cursor`, oldest first, with the cursor each one leaves: at
    /// most `limit` of them and as many as fit in ``ResponseBudget/bytes``, and whether more
    /// follow the last one (read on from its cursor).
    func taskEvents(_ selector: TaskSelector, access: ThreadAccess, after cursor: Int64, limit: Int) async throws
        -> (events: [(cursor: Int64, task: V1.Task)], more: Bool)

    /// Running tasks whose lease ran out by `now`, in every scope (the statements that serve no
    /// caller), longest lapsed first, at most `limit`: what the lease reaper decides about.
    func lapsedTasks(now: Int64, limit: Int) async throws -> [LapsedTask]
    /// Ends the lease of each of `lapsed` that is still running under the lease it was read with:
    /// requeued (or, past `maxAttempts`, expired), except those named in `stranded` (their
    /// target has left the task's cluster), which end `EXPIRED` saying so. Also drops event log
    /// entries past their retention. Returns the tasks it changed.
    func reapExpiredLeases(_ lapsed: [LapsedTask], stranded: Set<String>, maxAttempts: Int, now: Int64)
        async throws -> [V1.Task]
}

/// A running task whose lease ran out, and the project scope it lives in.
public struct LapsedTask: Sendable {
    public var scope: V1.Scope
    public var task: V1.Task

    public init(scope: V1.Scope, task: V1.Task) {
        self.scope = scope
        self.task = task
    }
}
