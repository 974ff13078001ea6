import GRDB
import PlatosProto
import PlatosService
import PlatosStorage

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
                                AND m.org = ? AND m.project = ? AND m.env = ? AND \(ThreadAccess.threadVisible("t"))
                            """), arguments: arguments)
                if let existing {
                    let first = V1.Message(row: existing)
                    // Messages never change, so the first one is exactly what was posted.
                    guard first.role == draft.role, first.content == draft.content, first.metadata == draft.metadata,
                        first.userId == draft.userId
                    else { throw ThreadsErrors.idempotencyKeyReused(draft.idempotencyKey, for: "message") }
                    return first
                }
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
        threadId: String, access: ThreadAccess, afterSeq: UInt64, limit: Int, authorAgentId: String, newest: Bool,
        includeThread: Bool
    ) async throws -> (messages: [V1.Message], hasMore: Bool, thread: V1.Thread?) {
        try await database.read { db in
            // One statement for the access check and the page: the join yields no row for a
            // thread the caller may not see. Only an empty page needs a second look, in the same
            // read transaction, to tell "no such thread" from "no messages" (and a caller that
            // asked for the thread itself gets it from that look).
            // A seq past Int64.max cannot exist; clamp so the bind cannot trap.
            var arguments: StatementArguments = [
                threadId, access.org, access.project, access.env, Int64(clamping: afterSeq),
            ]
            arguments += access.threadVisibleArguments
            if !authorAgentId.isEmpty { arguments += [authorAgentId] }
            arguments += [limit + 1]
            let statement = try db.cachedStatement(
                sql: newest
                    ? (authorAgentId.isEmpty ? Self.newestPageSQL : Self.newestPageByAuthorSQL)
                    : (authorAgentId.isEmpty ? Self.pageSQL : Self.pageByAuthorSQL))
            // Decoded straight from the statement: no intermediate copy of every row. A page also
            // ends when it is full by size (ResponseBudget).
            let cursor = try Row.fetchCursor(statement, arguments: arguments)
            var (messages, more) = try ResponseBudget.page(limit: limit, size: ResponseBudget.size(of:)) {
                try cursor.next().map(V1.Message.init(row:))
            }
            let thread = messages.isEmpty || includeThread ? try Self.visibleThread(db, threadId, access) : nil
            if messages.isEmpty, thread == nil {
                throw ThreadsErrors.threadNotFound(threadId)
            }
            // Read newest first, what was left out is older than the page: nothing after its last
            // message is.
            if newest { messages.reverse() }
            return (messages, !newest && more, includeThread ? thread : nil)
        }
    }

    // Built once: the statement cache is keyed by the SQL text, so building it per call cost a
    // string build and a hash of the whole text on every call.
    private static let pageBaseSQL = """
        SELECT \(V1.Message.columns) FROM messages m JOIN threads t ON t.id = m.thread_id
        WHERE m.thread_id = ? AND m.org = ? AND m.project = ? AND m.env = ? AND m.seq > ?
            AND \(ThreadAccess.threadVisible("t"))
        """
    private static let pageSQL = pageBaseSQL + " ORDER BY m.seq LIMIT ?"
    private static let pageByAuthorSQL = pageBaseSQL + " AND m.author_agent_id = ? ORDER BY m.seq LIMIT ?"
    private static let newestPageSQL = pageBaseSQL + " ORDER BY m.seq DESC LIMIT ?"
    private static let newestPageByAuthorSQL = pageBaseSQL + " AND m.author_agent_id = ? ORDER BY m.seq DESC LIMIT ?"
}
