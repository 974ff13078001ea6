import Testing

@testable import MemoryService

/// The full-text index is merged back into one segment: step by step on request, and by the
/// background loop once writes pause. Recall answers the same before and after.
@Suite struct IndexMaintenanceTests {
    let harness: MemoryHarness
    init() throws { harness = try MemoryHarness() }

    /// Each write commits on its own here, so each leaves a segment of its own.
    private func writeSeparately(_ texts: [String]) async throws -> MemoryClient {
        let chat = harness.client(agent: "wally-chat", cluster: "wally")
        for text in texts { try await chat.write(text) }
        return chat
    }

    @Test func stepsMergeTheIndexIntoOneSegmentAndRecallIsUnchanged() async throws {
        let chat = try await writeSeparately((0..<6).map { "oat milk note number \($0)" })
        let before = try await chat.recall("oat milk")
        #expect(try await harness.store.indexSegmentCount() > 1)

        // Past the threshold (here: more than one segment), a step merges everything.
        var steps = 0
        while try await harness.store.mergeIndexStep(pages: 1, fullMergeAbove: 1).worked {
            steps += 1
            try #require(steps < 1000, "merging never finished")
        }
        #expect(steps >= 1)
        #expect(try await harness.store.indexSegmentCount() == 1)
        #expect(try await harness.store.mergeIndexStep().worked == false)
        #expect(try await chat.recall("oat milk").map(\.id) == before.map(\.id))
    }

    @Test func optimizeLeavesOneSegment() async throws {
        _ = try await writeSeparately(["first", "second", "third"])
        try await harness.store.optimizeIndex()
        #expect(try await harness.store.indexSegmentCount() == 1)
    }

    @Test func backgroundLoopMergesOnceWritesPause() async throws {
        let store = harness.store
        // Without FTS5's own merging during writes, each write leaves a segment behind.
        try await store.database.write { db in
            try db.execute(sql: "INSERT INTO memory_fts(memory_fts, rank) VALUES('automerge', 0)")
        }
        let chat = try await writeSeparately((0..<12).map { "pause note \($0)" })
        try #require(try await store.indexSegmentCount() > SQLiteMemoryStore.segmentsBeforeFullMerge)
        let loop = Task { await store.runIndexMaintenance(interval: .milliseconds(20)) }
        defer { loop.cancel() }
        // Done when the segments are few enough and a step finds nothing left to merge.
        let deadline = ContinuousClock.now + .seconds(20)
        while try await store.indexSegmentCount() > SQLiteMemoryStore.segmentsBeforeFullMerge {
            try #require(ContinuousClock.now < deadline, "the index was not merged within 20 s")
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try await chat.recall("pause note", limit: 20).count == 12)
    }
}
