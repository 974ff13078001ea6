import GRDB

/// Keeps the full-text index in few segments.
///
/// FTS5 writes each commit's terms as a new small segment and merges segments only when enough of
/// them pile up on one level (`automerge`), so a busy index holds a dozen or more; every recall
/// term is then looked up once per segment. Measured on a 10k-memory index: the bare MATCH of a
/// three-word recall takes about 4× longer over 7 segments than over 1. So a bulk import ends with
/// ``optimizeIndex()``, and the running service merges in the background whenever writes pause
/// (``runIndexMaintenance(interval:)``), in bounded steps that queue behind the group-commit writer
/// like any write, so a write arriving meanwhile waits for one step at most.
///
/// A step merges the small levels cheaply (any level holding two or more segments; the schema
/// sets `usermerge` to 2), and only when more than ``segmentsBeforeFullMerge`` segments remain
/// does it merge everything into one, which rewrites the whole index: a trickle of writes with
/// pauses in between must not cost a full rewrite per pause.
extension SQLiteMemoryStore {
    /// Pages of merge work per background step: a few milliseconds of writer time.
    public static let mergeStepPages = 256

    /// Merges the whole index into one segment. Costs time in proportion to the index; for after
    /// a bulk load, not for the request path.
    public func optimizeIndex() async throws {
        try await database.write { db in
            try db.execute(sql: "INSERT INTO memory_fts(memory_fts) VALUES('optimize')")
        }
    }

    /// What one merge step did, with the writer connection's change count around it: the
    /// writer is the only connection that writes, so a count that moved between two steps means
    /// another write committed in between.
    public struct MergeStep: Sendable {
        /// False when there was nothing left to merge.
        public var worked: Bool
        var changesBefore: Int
        var changesAfter: Int
    }

    /// Segments a recall may have to look each word up in before a pause merges them all.
    public static let segmentsBeforeFullMerge = 4

    /// One bounded step of merging: small levels first, everything once more than
    /// `fullMergeAbove` segments remain.
    @discardableResult
    public func mergeIndexStep(
        pages: Int = mergeStepPages, fullMergeAbove: Int = segmentsBeforeFullMerge
    ) async throws -> MergeStep {
        try await database.write { db in
            let before = db.totalChangesCount
            let segments = try Self.indexSegmentCount(db)
            // A negative page count merges across levels: an optimize done in steps. A merge
            // already under way continues either way.
            let count = segments > fullMergeAbove ? -pages : pages
            try db.execute(sql: "INSERT INTO memory_fts(memory_fts, rank) VALUES('merge', ?)", arguments: [count])
            let after = db.totalChangesCount
            // FTS5 documents a total-changes delta below 2 as "no work done".
            return MergeStep(worked: after - before >= 2, changesBefore: before, changesAfter: after)
        }
    }

    /// How many segments the index is in now (each has rows in FTS5's `%_idx` table).
    public func indexSegmentCount() async throws -> Int {
        try await database.read { db in try Self.indexSegmentCount(db) }
    }

    static func indexSegmentCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(DISTINCT segid) FROM memory_fts_idx") ?? 0
    }

    private func writeCount() async throws -> Int {
        try await database.write { db in db.totalChangesCount }
    }

    /// Runs until cancelled: after an `interval` without writes that follows some writes (or
    /// the start), merges step by step until a step finds nothing to do, stopping early when a
    /// write comes in (and going on at the next pause).
    public func runIndexMaintenance(interval: Duration = .seconds(5)) async {
        guard var seen = try? await writeCount() else { return }
        var merged: Int?  // the change count when the index was last found fully merged
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
                let count = try await writeCount()
                defer { seen = count }
                guard count == seen, count != merged else { continue }
                var expected = count
                while !Task.isCancelled {
                    let step = try await mergeIndexStep()
                    guard step.changesBefore == expected else { break }
                    expected = step.changesAfter
                    if !step.worked {
                        merged = expected
                        break
                    }
                }
            } catch {
                return
            }
        }
    }
}
