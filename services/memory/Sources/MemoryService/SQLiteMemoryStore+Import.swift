import GRDB
import PlatosProto
import PlatosStorage

extension SQLiteMemoryStore {
    /// Inserts many memories in one transaction (through the writer, like every write): for
    /// seeding a database, imports, and loading a benchmark corpus. Idempotency keys are ignored.
    /// Returns the new ids in order.
    @discardableResult
    public func importMemories(_ memories: [NewMemory]) async throws -> [String] {
        let rows = memories.map(Self.prepare)
        try await database.write { db in
            try Self.insert(rows, into: db)
        }
        return rows.map(\.item.id)
    }

    /// A memory turned into the rows it is stored as, with nothing left to compute. Preparing is
    /// the part of a write that needs no database, so the writer thread never does it.
    public struct ImportRow: Sendable {
        var prepared: PreparedInsert
        public var id: String { prepared.item.id }
    }

    public static func prepareImport(_ memory: NewMemory) -> ImportRow {
        ImportRow(prepared: prepare(memory))
    }

    /// Inserts prepared rows in the caller's transaction: the same statements a write runs,
    /// without the service around them (the benchmark's bare-SQLite baseline).
    public static func insert(_ rows: [ImportRow], into db: Database) throws {
        try insert(rows.map(\.prepared), into: db)
    }

    static func insert(_ rows: [PreparedInsert], into db: Database) throws {
        for row in rows { try insert(db, row) }
    }

    static func prepare(_ memory: NewMemory) -> PreparedInsert {
        let tags = MemoryValidation.distinct(memory.tags)
        let item = V1.MemoryItem(
            id: ResourceID.make("mem"), ownerKind: memory.scope.owner.kind, ownerId: memory.scope.owner.id,
            authorAgentId: memory.authorAgentId, userId: memory.scope.userId, content: memory.content, tags: tags,
            metadata: memory.metadata, visibility: memory.visibility, version: 1, createdAtUnixMs: memory.nowMs,
            updatedAtUnixMs: memory.nowMs, expiresAtUnixMs: memory.expiresAtUnixMs)
        return PreparedInsert(
            item: item, scope: memory.scope,
            terms: FTSQueryEscaper.indexTerms(content: memory.content, scope: memory.scope),
            tagsJSON: JSONColumn.encode(tags), metadataJSON: JSONColumn.encode(memory.metadata))
    }
}
