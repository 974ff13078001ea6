import GRDB
import PlatosProto

extension SQLiteThreadsStore {
    public func postMessage(_ draft: MessageDraft, access: ThreadAccess, now: Int64) async throws -> V1.Message {
        try await database.write { db in
            if !draft.idempotencyKey.isEmpty {
                var arguments: StatementArguments = [
                    draft.threadId, access.agentId, draft.idempotencyKey, access.org, access.project, access.env,
                ]
                arguments += access.threadVisibleArguments
                let existing = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT \(V1.Message.columns) FROM messages m JOIN threads t ON t.id = m.thread_id
                            WHERE m.thread_id = ? AND m.author_agent_id = ? AND m.idempotency_key = ?
                                AND m.org = ? AND m.project = ? AND m.env = ? AND \(access.threadVisible("t"))
                            """), arguments: arguments)
                if let existing { return V1.Message(row: existing) }
            }
            guard let seq = try SeqAllocator.next(db, threadId: draft.threadId, access: access, now: now) else {
                throw ThreadsErrors.threadNotFound(draft.threadId)
            }
            let message = V1.Message(
                id: ResourceID.make("msg"), threadId: draft.threadId, seq: seq, role: draft.role,
                content: draft.content, metadata: draft.metadata, authorAgentId: access.agentId, userId: draft.userId,
                taskId: "", createdAtUnixMs: now)
            try message.insert(db, access: access, idempotencyKey: draft.idempotencyKey)
            return message
        }
    }

    public func listMessages(
        threadId: String, access: ThreadAccess, afterSeq: UInt64, limit: Int, authorAgentId: String
    ) async throws -> (messages: [V1.Message], hasMore: Bool) {
        try await database.read { db in
            // One read transaction: the access check and the page see the same snapshot.
            var threadArguments: StatementArguments = [threadId]
            threadArguments += access.threadVisibleArguments
            let visible = try Bool.fetchOne(
                db.cachedStatement(
                    sql: "SELECT 1 FROM threads t WHERE t.id = ? AND \(access.threadVisible("t"))"),
                arguments: threadArguments) ?? false
            guard visible else { throw ThreadsErrors.threadNotFound(threadId) }

            var sql = """
                SELECT \(V1.Message.columns) FROM messages m
                WHERE m.thread_id = ? AND m.org = ? AND m.project = ? AND m.env = ? AND m.seq > ?
                """
            // A seq past Int64.max cannot exist; clamp so the bind cannot trap.
            var arguments: StatementArguments = [
                threadId, access.org, access.project, access.env, Int64(clamping: afterSeq),
            ]
            if !authorAgentId.isEmpty {
                sql += " AND m.author_agent_id = ?"
                arguments += [authorAgentId]
            }
            sql += " ORDER BY m.seq LIMIT ?"
            arguments += [limit + 1]
            var messages = try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map(
                V1.Message.init(row:))
            let hasMore = messages.count > limit
            if hasMore { messages.removeLast(messages.count - limit) }
            return (messages, hasMore)
        }
    }
}
