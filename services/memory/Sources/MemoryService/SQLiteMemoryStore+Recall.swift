import GRDB
import PlatosProto
import PlatosService

/// How a recall ranks: FTS5's BM25 (document frequencies counted within the caller's scope, see
/// ``FTSQueryEscaper``) scaled by recency, so that of two equally relevant memories the newer
/// wins, while an old memory that matches much better still beats a new one that barely matches.
enum RecallRanking {
    /// The age at which recency has fallen to half of its weight.
    static let recencyHalfLifeMs = 30.0 * 24 * 3600 * 1000
    /// The share of the score that recency can take away from relevance.
    static let recencyWeight = 0.25

    /// 1 for a memory updated now, 1/2 one half-life ago, towards 0 after; `?` is now.
    static let recencySQL = "(1.0 / (1.0 + max(0, ? - m.updated_at_ms) / \(recencyHalfLifeMs)))"

    /// The score column. With words: relevance × (1 − w + w × recency). Without words (a query
    /// of only punctuation, or empty): recency alone.
    static func scoreSQL(hasWords: Bool) -> String {
        hasWords
            ? "((-bm25(memory_fts)) * (\(1 - recencyWeight) + \(recencyWeight) * \(recencySQL)))"
            : recencySQL
    }
}

extension SQLiteMemoryStore {
    public func recall(_ query: RecallQuery) async throws -> [V1.RecalledMemory] {
        let access = query.access
        let (match, hasWords) = FTSQueryEscaper.matchExpression(
            query: query.text, scopes: access.recallScopes(userId: access.userId))
        let filter = ScopeFilter(alias: "m", access: access)
        // Two steps. The inner query ranks: CROSS JOIN keeps the full-text index as the outer
        // loop (the MATCH, scoped by its terms, picks the rows and `memories` is only probed by
        // rowid, never scanned), and it carries only rowid and score, so the sort keeps no text.
        // The outer query then reads the whole row, content included (up to 64 KiB), for the
        // `limit` winners alone, instead of every matched row's going through the sort.
        var ranked = """
            SELECT m.rowid AS rowid, \(RecallRanking.scoreSQL(hasWords: hasWords)) AS score
            FROM memory_fts CROSS JOIN memories m ON m.rowid = memory_fts.rowid
            WHERE memory_fts MATCH ? AND \(filter.sql) AND (m.expires_at_ms = 0 OR m.expires_at_ms > ?)
            """
        var arguments: StatementArguments = [query.nowMs, match]
        arguments += filter.arguments
        arguments += [query.nowMs]
        MemoryFilterSQL.appendTagsAndAuthor(tags: query.tags, authorAgentId: query.authorAgentId, to: &ranked, &arguments)
        if query.sinceUnixMs > 0 {
            ranked += " AND m.created_at_ms >= ?"
            arguments += [query.sinceUnixMs]
        }
        if query.untilUnixMs > 0 {
            ranked += " AND m.created_at_ms <= ?"
            arguments += [query.untilUnixMs]
        }
        ranked += " ORDER BY score DESC, m.rowid DESC LIMIT ?"
        arguments += [query.limit]
        let sql = """
            SELECT \(MemoryRow.columns), top.score FROM (\(ranked)) top CROSS JOIN memories m ON m.rowid = top.rowid
            ORDER BY top.score DESC, m.rowid DESC
            """
        let (statementSQL, statementArguments) = (sql, arguments)
        return try await database.readStatement { db in
            let rows = try Row.fetchCursor(db.cachedStatement(sql: statementSQL), arguments: statementArguments)
            // The best `limit` memories (the statement's LIMIT), as many as fit in one answer.
            let (recalled, _) = try ResponseBudget.page(limit: .max, size: { ResponseBudget.size(of: $0.item) }) {
                try rows.next().map { (item: MemoryRow.item($0), score: $0[MemoryRow.columnCount] as Double) }
            }
            return recalled.map { V1.RecalledMemory(item: $0.item, score: $0.score) }
        }
    }
}
