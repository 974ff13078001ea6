import Foundation
import GRDB
import PlatosProto
import PlatosRPC
import PlatosService
import PlatosStorage

/// ``ThreadsStore`` on the service's SQLite database. Reads run on the reader pool; every write
/// goes through the database's group-commit writer and is acknowledged after its commit.
public struct SQLiteThreadsStore: ThreadsStore {
    let database: ServiceDatabase

    public init(database: ServiceDatabase) {
        self.database = database
    }

    /// Opens (creating and migrating) the threads database at `path`.
    public static func open(path: String, synchronous: SynchronousMode = .normal) throws -> SQLiteThreadsStore {
        SQLiteThreadsStore(
            database: try ServiceDatabase.open(
                path: path, synchronous: synchronous, label: "threads", migrations: ThreadsSchema.register))
    }

    // MARK: threads

    public func createThread(_ draft: ThreadDraft, access: ThreadAccess, now: Int64) async throws -> V1.Thread {
        try await database.write { db in
            if !draft.idempotencyKey.isEmpty {
                var arguments: StatementArguments = [access.agentId, draft.idempotencyKey]
                // The agent's own key, whichever user its thread is bound to: a retry for another
                // user is refused below as a reused key, not taken for an unused one.
                arguments += access.anyUser.threadVisibleArguments
                let existing = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT \(V1.Thread.columns) FROM threads t
                            WHERE t.created_by_agent_id = ? AND t.idempotency_key = ? AND \(ThreadAccess.threadVisible("t"))
                            """), arguments: arguments)
                if let existing {
                    let first = V1.Thread(row: existing)
                    // Only the end user is compared: title and metadata may have been changed by
                    // threads.update since, and a retry must still get its thread. A retry acting
                    // for another user must not get a thread bound to the first one.
                    guard first.userId == draft.userId else {
                        throw ThreadsErrors.idempotencyKeyReused(draft.idempotencyKey, for: "thread")
                    }
                    return first
                }
            }
            let owner = access.newThreadOwner
            let thread = V1.Thread(
                id: ResourceID.make("thr"), ownerKind: owner.kind, ownerId: owner.id, userId: draft.userId,
                title: draft.title, metadata: draft.metadata, createdByAgentId: access.agentId, lastSeq: 0,
                createdAtUnixMs: now, updatedAtUnixMs: now)
            do {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO threads (id, org, project, env, owner_kind, owner_id, user_id, title, metadata,
                            created_by_agent_id, last_seq, idempotency_key, created_at, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
                        """
                ).execute(arguments: [
                    thread.id, access.org, access.project, access.env, owner.kind.protoValue, owner.id, draft.userId,
                    draft.title, MetadataColumn.encode(draft.metadata), access.agentId,
                    draft.idempotencyKey.isEmpty ? nil : draft.idempotencyKey, now, now,
                ])
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                // The key made a thread this agent can no longer see (it has changed cluster since).
                throw RPCError(.alreadyExists, "idempotency_key was already used for another thread")
            }
            return thread
        }
    }

    public func thread(_ id: String, access: ThreadAccess) async throws -> V1.Thread {
        try await database.read { db in
            guard let thread = try Self.visibleThread(db, id, access) else { throw ThreadsErrors.threadNotFound(id) }
            return thread
        }
    }

    /// Built once, not per call (the statement cache is keyed by this text).
    private static let visibleThreadSQL =
        "SELECT \(V1.Thread.columns) FROM threads t WHERE t.id = ? AND \(ThreadAccess.threadVisible("t"))"

    static func visibleThread(_ db: Database, _ id: String, _ access: ThreadAccess) throws -> V1.Thread? {
        var arguments: StatementArguments = [id]
        arguments += access.threadVisibleArguments
        return try Row.fetchOne(
            db.cachedStatement(sql: visibleThreadSQL),
            arguments: arguments
        ).map(V1.Thread.init(row:))
    }

    public func listThreads(
        access: ThreadAccess, metadataFilter: [String: String], after: PageCursor?, limit: Int
    ) async throws -> (threads: [V1.Thread], next: PageCursor?) {
        try await database.read { db in
            var sql = "SELECT \(V1.Thread.columns) FROM threads t WHERE \(ThreadAccess.threadVisible("t"))"
            var arguments = access.threadVisibleArguments
            if let after {
                sql += " AND (t.created_at, t.id) < (?, ?)"
                arguments += [after.createdAt, after.id]
            }
            // Sorted so that the statement text, and so its cached plan, is the same for equal filters.
            for (key, value) in metadataFilter.sorted(by: { $0.key < $1.key }) {
                sql += " AND EXISTS (SELECT 1 FROM json_each(t.metadata) j WHERE j.key = ? AND j.value = ?)"
                arguments += [key, value]
            }
            sql += " ORDER BY t.created_at DESC, t.id DESC LIMIT ?"
            arguments += [limit + 1]
            let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
            // A page also ends when full by size (metadata is up to 16 KiB a thread).
            let (threads, more) = try ResponseBudget.page(limit: limit, size: ResponseBudget.size(of:)) {
                try rows.next().map(V1.Thread.init(row:))
            }
            let next = more ? threads.last.map { PageCursor(createdAt: $0.createdAtUnixMs, id: $0.id) } : nil
            return (threads, next)
        }
    }

    public func updateThread(_ id: String, _ change: ThreadChange, access: ThreadAccess, now: Int64) async throws
        -> V1.Thread
    {
        try await database.write { db in
            guard var thread = try Self.visibleThread(db, id, access) else { throw ThreadsErrors.threadNotFound(id) }
            if let title = change.title { thread.title = title }
            if change.replaceMetadata {
                thread.metadata = change.metadata
            } else {
                thread.metadata.merge(change.metadata) { _, new in new }
            }
            try RequestLimits.metadata(thread.metadata)
            thread.updatedAtUnixMs = now
            var arguments: StatementArguments = [thread.title, MetadataColumn.encode(thread.metadata), now, id]
            arguments += access.threadVisibleArguments
            try db.cachedStatement(
                sql: """
                    UPDATE threads AS t SET title = ?, metadata = ?, updated_at = ?
                    WHERE t.id = ? AND \(ThreadAccess.threadVisible("t"))
                    """
            ).execute(arguments: arguments)
            return thread
        }
    }

    public func deleteThread(_ id: String, access: ThreadAccess) async throws {
        try await database.write { db in
            var arguments: StatementArguments = [id]
            arguments += access.threadVisibleArguments
            // Messages and tasks go with the thread (ON DELETE CASCADE); their event log too.
            try db.cachedStatement(sql: "DELETE FROM threads AS t WHERE t.id = ? AND \(ThreadAccess.threadVisible("t"))")
                .execute(arguments: arguments)
            guard db.changesCount > 0 else { throw ThreadsErrors.threadNotFound(id) }
            try db.cachedStatement(
                sql: "DELETE FROM task_events WHERE thread_id = ? AND org = ? AND project = ? AND env = ?"
            ).execute(arguments: [id, access.org, access.project, access.env])
        }
    }
}
