import GRDB

/// Hands out a thread's message sequence numbers.
///
/// The counter lives on the thread row and is bumped by the same write transaction that inserts
/// the message, so seqs are gap-free (a post that rolls back takes its seq with it) and unique
/// (the database has one writer). The bump is also the access check: a thread the caller may not
/// see is not updated, and yields nil.
enum SeqAllocator {
    /// Built once, not per call (the statement cache is keyed by this text).
    private static let sql = """
        UPDATE threads AS t SET last_seq = last_seq + 1, updated_at = ?
        WHERE t.id = ? AND \(ThreadAccess.threadVisible("t"))
        RETURNING last_seq
        """

    static func next(_ db: Database, threadId: String, access: ThreadAccess, now: Int64) throws -> UInt64? {
        let statement = try db.cachedStatement(sql: sql)
        var arguments: StatementArguments = [now, threadId]
        arguments += access.threadVisibleArguments
        return try Int64.fetchOne(statement, arguments: arguments).map { UInt64(max(0, $0)) }
    }
}
