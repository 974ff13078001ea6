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

    /// One bounded step of incremental merging towards a single segment.
    @discardableResult
    public func mergeIndexStep(pages: Int = mergeStepPages) async throws -> MergeStep {
        try await database.write { db in
            let before = db.totalChangesCount
            // A negative page count merges across levels: an optimize done in steps.
            try db.execute(sql: "INSERT INTO memory_fts(memory_fts, rank) VALUES('merge', ?)", arguments: [-pages])
            let after = db.totalChangesCount
            // FTS5 documents a total-changes delta below 2 as "no work done".
            return MergeStep(worked: after - before >= 2, changesBefore: before, changesAfter: after)
        }
    }

    /// How many segments the index is in now (each has rows in FTS5's `%_idx` table).
    public func indexSegmentCount() async throws -> Int {
        try await database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(DISTINCT segid) FROM memory_fts_idx") ?? 0
        }
    }

    private func writeCount() async throws -> Int {
        try await database.write { db in db.totalChangesCount }
    }

    /// Runs until cancelled: after an `interval` without writes that follows some writes (or
    /// the start), merges the index step by step until it is one segment, stopping early when a
    /// write comes in (and starting over at the next pause).
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
