import GRDB
import PlatosProto

extension SQLiteMemoryStore {
    public func update(_ change: MemoryUpdate) async throws -> V1.MemoryItem {
        let filter = ScopeFilter(alias: "m", access: change.access)
        let selectSQL = "SELECT \(MemoryRow.columns) FROM memories m WHERE m.id = ? AND \(filter.sql)"
        let selectArguments: StatementArguments = [change.id] + filter.arguments
        return try await database.write { db in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: selectSQL), arguments: selectArguments) else {
                throw MemoryStoreError.notFound(id: change.id)
            }
            let rowid = MemoryRow.rowid(row)
            let old = MemoryRow.item(row)
            if change.expectedVersion != 0, change.expectedVersion != old.version {
                throw MemoryStoreError.versionConflict(
                    id: change.id, expected: change.expectedVersion, current: old.version)
            }
            var new = old
            new.version = old.version + 1
            new.updatedAtUnixMs = change.nowMs
            if let content = change.content { new.content = content }
            if change.replaceTags || !change.tags.isEmpty {
                new.tags = MemoryValidation.distinct(change.replaceTags ? change.tags : old.tags + change.tags)
                guard new.tags.count <= MemoryLimits.maxTags else {
                    throw MemoryStoreError.invalidUpdate(
                        "tags would have \(new.tags.count) entries after the update; "
                            + "the limit is \(MemoryLimits.maxTags)")
                }
            }
            if change.replaceMetadata || !change.metadata.isEmpty {
                new.metadata = change.replaceMetadata ? change.metadata : old.metadata.merging(change.metadata) { $1 }
                let bytes = new.metadata.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
                guard bytes <= MemoryLimits.maxMetadataBytes else {
                    throw MemoryStoreError.invalidUpdate(
                        "metadata would be \(bytes) bytes after the update; "
                            + "the limit is \(MemoryLimits.maxMetadataBytes) (16 KiB)")
                }
            }
            if let expires = change.expiresAtUnixMs { new.expiresAtUnixMs = expires }

            try db.cachedStatement(
                sql: """
                    UPDATE memories SET content = ?, tags_json = ?, metadata_json = ?, expires_at_ms = ?,
                        version = ?, updated_at_ms = ?
                    WHERE rowid = ?
                    """
            ).execute(arguments: [
                new.content, JSONColumn.encode(new.tags), JSONColumn.encode(new.metadata), new.expiresAtUnixMs,
                Int64(new.version), new.updatedAtUnixMs, rowid,
            ])
            let scope = Self.scope(of: old, access: change.access)
            if new.content != old.content {
                // The owner and user do not change, so neither does the scope prefix.
                try db.cachedStatement(sql: "UPDATE memory_terms SET terms = ? WHERE rowid = ?")
                    .execute(arguments: [FTSQueryEscaper.indexTerms(content: new.content, scope: scope), rowid])
            }
            if new.tags != old.tags {
                try db.cachedStatement(sql: "DELETE FROM memory_tags WHERE memory_rowid = ?").execute(arguments: [rowid]
                )
                try Self.insertTags(db, rowid: rowid, new.tags)
            }
            try Self.appendHistory(
                db, memoryId: old.id, scope: scope, action: .update, actor: change.actorAgentId, version: new.version,
                atMs: change.nowMs, old: old.content, new: new.content)
            return new
        }
    }

    public func delete(
        id: String, expectedVersion: UInt64, access: MemoryAccess, actorAgentId: String, nowMs: Int64
    ) async throws {
        let filter = ScopeFilter(alias: "m", access: access)
        let selectSQL = "SELECT \(MemoryRow.columns) FROM memories m WHERE m.id = ? AND \(filter.sql)"
        let selectArguments: StatementArguments = [id] + filter.arguments
        try await database.write { db in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: selectSQL), arguments: selectArguments) else {
                throw MemoryStoreError.notFound(id: id)
            }
            let rowid = MemoryRow.rowid(row)
            let old = MemoryRow.item(row)
            if expectedVersion != 0, expectedVersion != old.version {
                throw MemoryStoreError.versionConflict(id: id, expected: expectedVersion, current: old.version)
            }
            try Self.deleteRows(db, whereSQL: "rowid = ?", [rowid])
            try Self.appendHistory(
                db, memoryId: id, scope: Self.scope(of: old, access: access), action: .delete, actor: actorAgentId,
                version: old.version, atMs: nowMs, old: old.content, new: "")
        }
    }

    /// Deletes the memories whose `memories` rows satisfy `whereSQL` (on unaliased columns), with
    /// their index text (the trigger removes the index entries) and tags. Returns how many.
    @discardableResult
    static func deleteRows(_ db: Database, whereSQL: String, _ arguments: StatementArguments) throws -> Int {
        try db.execute(
            sql: "DELETE FROM memory_terms WHERE rowid IN (SELECT rowid FROM memories WHERE \(whereSQL))",
            arguments: arguments)
        try db.execute(
            sql: "DELETE FROM memory_tags WHERE memory_rowid IN (SELECT rowid FROM memories WHERE \(whereSQL))",
            arguments: arguments)
        try db.execute(sql: "DELETE FROM memories WHERE \(whereSQL)", arguments: arguments)
        return db.changesCount
    }

    /// The scope a stored memory belongs to.
    static func scope(of item: V1.MemoryItem, access: MemoryAccess) -> MemoryScope {
        MemoryScope(
            org: access.org, project: access.project, env: access.env,
            owner: MemoryOwner(kind: item.ownerKind, id: item.ownerId), userId: item.userId)
    }
}
