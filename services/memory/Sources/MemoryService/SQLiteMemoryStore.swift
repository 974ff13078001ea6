import Foundation
import GRDB
import PlatosProto
import PlatosService
import PlatosStorage

/// The SQLite ``MemoryStore``: one database file (WAL), reads on the pool, every write through
/// the database's group-commit writer.
///
/// Work that does not need the database (ids, index terms, JSON) is done before a write is queued,
/// because the single writer thread is the throughput limit.
public final class SQLiteMemoryStore: MemoryStore {
    public let database: ServiceDatabase

    public init(database: ServiceDatabase) {
        self.database = database
    }

    /// Opens (creating and migrating) the memory database at `path`.
    public static func open(path: String, synchronous: SynchronousMode = .normal) throws -> SQLiteMemoryStore {
        let database = try ServiceDatabase.open(
            path: path, synchronous: synchronous, label: "memory", migrations: MemorySchema.register)
        return SQLiteMemoryStore(database: database)
    }

    // MARK: write

    public func write(_ memory: NewMemory) async throws -> (item: V1.MemoryItem, replayed: Bool) {
        let row = Self.prepare(memory)
        let item = row.item
        let key = memory.idempotencyKey
        // Only a keyed write can be a retry, so only it pays for hashing its content: once for the
        // fingerprint it stores, once for the one keys stored before the user was part of it.
        let fingerprints =
            key.isEmpty
            ? [] : [Self.fingerprint(memory, tags: item.tags), Self.fingerprint(memory, tags: item.tags, withUser: false)]
        return try await database.write { db in
            if !key.isEmpty {
                if let replay = try Self.replay(db, memory, key: key, fingerprints) {
                    return (replay, true)
                }
            }
            try Self.insert(db, row)
            if !key.isEmpty {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO memory_idempotency
                            (org, project, env, agent_id, key, memory_id, fingerprint, created_at_ms)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """
                ).execute(arguments: [
                    memory.scope.org, memory.scope.project, memory.scope.env, memory.authorAgentId, key, item.id,
                    Int64(bitPattern: fingerprints[0]), memory.nowMs,
                ])
            }
            return (item, false)
        }
    }

    /// A new memory with everything computed, ready for the writer thread.
    struct PreparedInsert: Sendable {
        var item: V1.MemoryItem
        var scope: MemoryScope
        var terms: String
        var tagsJSON: String
        var metadataJSON: String
    }

    /// Inserts the memory, its index text, tags and ADD history entry. Also used by the
    /// benchmark's bare-SQLite baseline, so both measure the same rows.
    static func insert(_ db: Database, _ row: PreparedInsert) throws {
        let item = row.item
        try db.cachedStatement(
            sql: """
                INSERT INTO memories (id, org, project, env, owner_kind, owner_id, user_id, author_agent_id,
                    visibility, version, created_at_ms, updated_at_ms, expires_at_ms, tags_json, metadata_json, content)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            item.id, row.scope.org, row.scope.project, row.scope.env, item.ownerKind.protoValue, item.ownerId,
            item.userId, item.authorAgentId, item.visibility.protoValue, Int64(item.version), item.createdAtUnixMs,
            item.updatedAtUnixMs, item.expiresAtUnixMs, row.tagsJSON, row.metadataJSON, item.content,
        ])
        let rowid = db.lastInsertedRowID
        try db.cachedStatement(sql: "INSERT INTO memory_terms (rowid, terms) VALUES (?, ?)")
            .execute(arguments: [rowid, row.terms])
        try insertTags(db, rowid: rowid, item.tags)
        try appendHistory(
            db, memoryId: item.id, scope: row.scope, action: .add, actor: item.authorAgentId,
            version: item.version, atMs: item.createdAtUnixMs, old: "", new: item.content)
    }

    static func insertTags(_ db: Database, rowid: Int64, _ tags: [String]) throws {
        guard !tags.isEmpty else { return }
        let statement = try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO memory_tags (memory_rowid, tag) VALUES (?, ?)")
        for tag in tags { try statement.execute(arguments: [rowid, tag]) }
    }

    static func appendHistory(
        _ db: Database, memoryId: String, scope: MemoryScope, action: V1.HistoryAction, actor: String,
        version: UInt64, atMs: Int64, old: String, new: String
    ) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO memory_history (memory_id, org, project, env, owner_kind, owner_id, user_id, action,
                    actor_agent_id, version, at_ms, old_content, new_content)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            memoryId, scope.org, scope.project, scope.env, scope.owner.kind.protoValue, scope.owner.id, scope.userId,
            action.protoValue, actor, Int64(version), atMs, old, new,
        ])
    }

    /// The earlier write with this agent's `key`, or nil when the key is new. Its memory is
    /// answered as it is now, so only while the writer still reaches it, as `memory.get` would.
    private static func replay(
        _ db: Database, _ memory: NewMemory, key: String, _ fingerprints: [UInt64]
    ) throws -> V1.MemoryItem? {
        let scope = memory.scope
        guard
            let earlier = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT memory_id, fingerprint FROM memory_idempotency
                        WHERE org = ? AND project = ? AND env = ? AND agent_id = ? AND key = ?
                        """),
                arguments: [scope.org, scope.project, scope.env, memory.authorAgentId, key])
        else { return nil }
        let memoryId: String = earlier[0]
        guard fingerprints.contains(UInt64(bitPattern: earlier[1] as Int64)) else {
            throw MemoryStoreError.idempotencyKeyReused(key: key)
        }
        let reach = ScopeFilter(
            alias: "m",
            access: MemoryAccess(
                org: scope.org, project: scope.project, env: scope.env, agentId: memory.authorAgentId,
                clusterId: memory.writerClusterId, userId: scope.userId))
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT \(MemoryRow.columns) FROM memories m WHERE m.id = ? AND \(reach.sql)"),
                arguments: [memoryId] + reach.arguments)
        else {
            throw MemoryStoreError.idempotentWriteOutOfReach(key: key)
        }
        return MemoryRow.item(row)
    }

    /// What a retried write must repeat to count as the same write: the end user and what was
    /// written. Not the owner: a retry after the agent joined a cluster is still the same write.
    /// Keys stored before the user was part of it (`withUser: false`) are still honoured; the
    /// replay's reach check then holds the user to the first write's.
    static func fingerprint(_ memory: NewMemory, tags: [String], withUser: Bool = true) -> UInt64 {
        var hash = StableHash()
        if withUser { hash.combine(field: memory.scope.userId) }
        hash.combine(field: memory.content)
        for tag in tags.sorted() { hash.combine(field: tag) }
        hash.combine(field: "|")
        for (key, value) in memory.metadata.sorted(by: { $0.key < $1.key }) {
            hash.combine(field: key)
            hash.combine(field: value)
        }
        hash.combine(field: String(memory.visibility.protoValue))
        hash.combine(field: String(memory.expiresAtUnixMs))
        return hash.value
    }

    // MARK: get and list

    public func get(id: String, access: MemoryAccess) async throws -> V1.MemoryItem {
        let filter = ScopeFilter(alias: "m", access: access)
        let sql = "SELECT \(MemoryRow.columns) FROM memories m WHERE m.id = ? AND \(filter.sql)"
        let arguments: StatementArguments = [id] + filter.arguments
        let item = try await database.read { db in
            try Row.fetchOne(db.cachedStatement(sql: sql), arguments: arguments).map(MemoryRow.item)
        }
        guard let item else { throw MemoryStoreError.notFound(id: id) }
        return item
    }

    public func list(_ query: ListQuery) async throws -> MemoryPage {
        let filter = ScopeFilter(alias: "m", access: query.access)
        var sql = "SELECT \(MemoryRow.columns) FROM memories m WHERE \(filter.sql)"
        var arguments = filter.arguments
        if let after = query.after {
            sql += " AND m.rowid < ?"
            arguments += [after]
        }
        MemoryFilterSQL.appendTagsAndAuthor(tags: query.tags, authorAgentId: query.authorAgentId, to: &sql, &arguments)
        // One more than a page, to learn whether another page follows.
        sql += " ORDER BY m.rowid DESC LIMIT ?"
        arguments += [query.pageSize + 1]
        let (statementSQL, statementArguments) = (sql, arguments)
        let pageSize = query.pageSize
        return try await database.read { db in
            let rows = try Row.fetchCursor(db.cachedStatement(sql: statementSQL), arguments: statementArguments)
            // A page ends early when it is full by size (ResponseBudget); the token then
            // continues after its last item.
            let (page, more) = try ResponseBudget.page(limit: pageSize, size: { ResponseBudget.size(of: $0.item) }) {
                try rows.next().map { (rowid: MemoryRow.rowid($0), item: MemoryRow.item($0)) }
            }
            return MemoryPage(items: page.map(\.item), next: more ? page.last?.rowid : nil)
        }
    }
}

/// The filters `memory.recall` and `memory.list` share, appended to a query over `memories m`.
enum MemoryFilterSQL {
    /// Every tag must be on the memory; an author, when given, must have written it.
    static func appendTagsAndAuthor(
        tags: [String], authorAgentId: String, to sql: inout String, _ arguments: inout StatementArguments
    ) {
        for tag in tags {
            sql += " AND EXISTS (SELECT 1 FROM memory_tags t WHERE t.memory_rowid = m.rowid AND t.tag = ?)"
            arguments += [tag]
        }
        if !authorAgentId.isEmpty {
            sql += " AND m.author_agent_id = ?"
            arguments += [authorAgentId]
        }
    }
}
