import GRDB
import PlatosProto
import PlatosService

extension SQLiteMemoryStore {
    public func history(id: String, access: MemoryAccess, pageSize: Int, after: Int64?) async throws -> HistoryPage {
        // The history rows carry their memory's scope, so this answers for deleted memories too,
        // and only to callers the memory's scope reaches.
        let filter = ScopeFilter(alias: "h", access: access)
        let sql = """
            SELECT h.seq, h.action, h.old_content, h.new_content, h.actor_agent_id, h.version, h.at_ms
            FROM memory_history h
            WHERE h.memory_id = ? AND h.seq > ? AND \(filter.sql)
            ORDER BY h.seq LIMIT ?
            """
        let arguments: StatementArguments = [id, after ?? 0] + filter.arguments + [pageSize + 1]
        let page = try await database.read { db in
            let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
            // Each entry carries two contents of up to 64 KiB: a page also ends when full by size.
            let (page, more) = try ResponseBudget.page(limit: pageSize, size: { ResponseBudget.size(of: $0.entry) }) {
                try rows.next().map { row in
                    (
                        seq: row[0] as Int64,
                        entry: V1.MemoryHistoryEntry(
                            action: V1.HistoryAction(protoValue: row[1]), oldContent: row[2], newContent: row[3],
                            actorAgentId: row[4], version: UInt64(clamping: row[5] as Int64), atUnixMs: row[6])
                    )
                }
            }
            return HistoryPage(entries: page.map(\.entry), next: more ? page.last?.seq : nil)
        }
        if page.entries.isEmpty, after == nil { throw MemoryStoreError.notFound(id: id) }
        return page
    }

    /// Memories (and history entries) `forgetUser` erases per write.
    static let forgetChunk = 2_000

    public func forgetUser(_ userId: String, in scope: ForgetScope) async throws -> UInt64 {
        try await forgetUser(userId, in: scope, chunk: Self.forgetChunk)
    }

    func forgetUser(_ userId: String, in scope: ForgetScope, chunk: Int) async throws -> UInt64 {
        let filter: ScopeFilter
        switch scope {
        case .reachableBy(var access):
            // The user is matched below, for both kinds of scope.
            access.userId = ""
            filter = ScopeFilter(alias: "x", access: access)
        case .project(let org, let project, let env):
            filter = ScopeFilter(alias: "x", org: org, project: project, env: env)
        }
        let arguments = filter.arguments + [userId] + [chunk]
        // The same filter on `memories` and on `memory_history`, which share the scope columns.
        // Each write takes one chunk, in rowid order so that the statements of one write agree
        // on it: a user with a million memories must not hold the one writer (and every other
        // caller's write behind it) for the whole erase. The answer comes once all is gone; an
        // erase cut short (a crash) is finished by calling again.
        let memories = "SELECT rowid FROM memories x WHERE \(filter.sql) AND x.user_id = ? ORDER BY x.rowid LIMIT ?"
        let history = "SELECT seq FROM memory_history x WHERE \(filter.sql) AND x.user_id = ? ORDER BY x.seq LIMIT ?"
        var erased = 0
        while true {
            let (count, historyLeft) = try await database.write { db -> (Int, Bool) in
                // Idempotency rows go too: right to erasure outranks retry protection, and a key
                // may itself carry something of the user. Found through the history, which still
                // names the memories deleted earlier (their keys stay, to answer retries, until
                // now), so a chunk of history goes only after its memories' keys.
                try db.execute(
                    sql: """
                        DELETE FROM memory_idempotency WHERE memory_id IN
                            (SELECT memory_id FROM memory_history WHERE seq IN (\(history)))
                        """,
                    arguments: arguments)
                try db.execute(sql: "DELETE FROM memory_history WHERE seq IN (\(history))", arguments: arguments)
                let historyLeft = db.changesCount > 0
                return (try Self.deleteRows(db, whereSQL: "rowid IN (\(memories))", arguments), historyLeft)
            }
            erased += count
            if count == 0, !historyLeft { break }
        }
        return UInt64(erased)
    }
}
