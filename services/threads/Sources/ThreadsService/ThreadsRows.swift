import Foundation
import GRDB
import PlatosProto
import PlatosService

// How each table's rows become proto values. The column lists are spelled once here and the
// decoders read by position, so a query and its decoder cannot disagree on order.

extension V1.Thread {
    /// `threads` columns, for a table aliased `t`.
    static let columns = """
        t.id, t.owner_kind, t.owner_id, t.user_id, t.title, t.metadata, t.created_by_agent_id, t.last_seq, \
        t.created_at, t.updated_at
        """

    init(row: Row) {
        self.init(
            id: row[0], ownerKind: V1.OwnerKind(protoValue: row[1]), ownerId: row[2], userId: row[3], title: row[4],
            metadata: MetadataColumn.decode(row[5]), createdByAgentId: row[6], lastSeq: UInt64(max(0, row[7] as Int64)),
            createdAtUnixMs: row[8], updatedAtUnixMs: row[9])
    }
}

extension V1.Message {
    /// `messages` columns, for a table aliased `m`.
    static let columns = """
        m.id, m.thread_id, m.seq, m.role, m.content, m.metadata, m.author_agent_id, m.user_id, m.task_id, m.created_at
        """

    init(row: Row) {
        self.init(
            id: row[0], threadId: row[1], seq: UInt64(max(0, row[2] as Int64)), role: V1.MessageRole(protoValue: row[3]),
            content: row[4], metadata: MetadataColumn.decode(row[5]), authorAgentId: row[6], userId: row[7],
            taskId: row[8], createdAtUnixMs: row[9])
    }

    /// Inserts this message into its thread's scope. `seq` must come from ``SeqAllocator`` in the
    /// same transaction.
    func insert(_ db: Database, access: ThreadAccess, idempotencyKey: String) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO messages (thread_id, seq, id, org, project, env, role, content, metadata, author_agent_id,
                    user_id, task_id, idempotency_key, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            threadId, Int64(seq), id, access.org, access.project, access.env, role.protoValue, content,
            MetadataColumn.encode(metadata), authorAgentId, userId, taskId,
            idempotencyKey.isEmpty ? nil : idempotencyKey, createdAtUnixMs,
        ])
    }
}

extension V1.Task {
    /// `tasks` columns, for a table aliased `k`.
    static let columns = """
        k.id, k.cluster_id, k.thread_id, k.spawner_agent_id, k.target_agent_id, k.user_id, k.prompt, k.state, \
        k.attempts, k.lease_id, k.lease_expires_at, k.result, k.error, k.result_message_id, k.metadata, \
        k.created_at, k.updated_at
        """

    init(row: Row) {
        self.init(
            id: row[0], clusterId: row[1], threadId: row[2], spawnerAgentId: row[3], targetAgentId: row[4],
            userId: row[5], prompt: row[6], state: V1.TaskState(protoValue: row[7]),
            attempts: UInt32(clamping: row[8] as Int64), leaseId: row[9], leaseExpiresAtUnixMs: row[10],
            result: row[11], error: row[12], resultMessageId: row[13], metadata: MetadataColumn.decode(row[14]),
            createdAtUnixMs: row[15], updatedAtUnixMs: row[16])
    }

    /// What the task takes in an answer, near enough: ``ResponseBudget``'s estimate plus its
    /// metadata (up to 16 KiB), which that estimate leaves out.
    static func answerSize(_ task: V1.Task) -> Int {
        ResponseBudget.size(of: task) + ResponseBudget.size(of: task.metadata)
    }

    var isFinished: Bool {
        switch state {
        case .succeeded, .failed, .cancelled, .expired: return true
        default: return false
        }
    }

    func insert(_ db: Database, access: ThreadAccess, idempotencyKey: String) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO tasks (id, org, project, env, cluster_id, thread_id, spawner_agent_id, target_agent_id,
                    user_id, prompt, state, attempts, metadata, idempotency_key, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            id, access.org, access.project, access.env, clusterId, threadId, spawnerAgentId, targetAgentId, userId,
            prompt, state.protoValue, Int64(attempts), MetadataColumn.encode(metadata),
            idempotencyKey.isEmpty ? nil : idempotencyKey, createdAtUnixMs, updatedAtUnixMs,
        ])
        try recordEvent(db, access: access)
    }

    /// Writes the mutable columns back. `recordEvent` is false for a change that is not a state
    /// change (a heartbeat), which tasks.watch does not report. Only for a task this transaction
    /// has already read under the caller's access (``ThreadAccess/taskVisible(_:)``, or for a
    /// stranded task the same scope and user clauses without the cluster): the row is addressed
    /// by id, scope and its own cluster, which for a stranded task is not the caller's.
    func save(_ db: Database, access: ThreadAccess, recordEvent: Bool = true) throws {
        try db.cachedStatement(
            sql: """
                UPDATE tasks SET state = ?, attempts = ?, lease_id = ?, lease_expires_at = ?, result = ?, error = ?,
                    result_message_id = ?, updated_at = ?
                WHERE id = ? AND org = ? AND project = ? AND env = ? AND cluster_id = ?
                """
        ).execute(arguments: [
            state.protoValue, Int64(attempts), leaseId, leaseExpiresAtUnixMs, result, error, resultMessageId,
            updatedAtUnixMs, id, access.org, access.project, access.env, clusterId,
        ])
        if recordEvent { try self.recordEvent(db, access: access) }
    }

    /// Appends this state to `task_events`, the log tasks.watch follows. The event carries the
    /// task's end user, so that reading the log is held to the same predicate as the task
    /// (``ThreadAccess/taskVisible(_:)``) without a join back to `tasks`.
    func recordEvent(_ db: Database, access: ThreadAccess) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO task_events (org, project, env, cluster_id, thread_id, task_id, user_id, task, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            access.org, access.project, access.env, clusterId, threadId, id, userId, Data(try serializedBytes()),
            updatedAtUnixMs,
        ])
    }
}
