import Testing

@testable import MemoryService

/// Memory ids: time first (so the id indexes grow at one edge), random after (unguessable).
@Suite struct MemoryIdTests {
    @Test func idsAreTimeOrderedHexWithARandomTail() {
        let earlier = SQLiteMemoryStore.newId(nowMs: 1_700_000_000_000)
        let later = SQLiteMemoryStore.newId(nowMs: 1_700_000_000_001)
        #expect(earlier < later)
        #expect(earlier.hasPrefix("mem_018bcfe56800"))  // 1_700_000_000_000 in 12 hex digits
        #expect(earlier.count == 36)
        #expect(earlier.dropFirst(4).allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func idsMadeInTheSameMillisecondDiffer() {
        let ids = (0..<10_000).map { _ in SQLiteMemoryStore.newId(nowMs: 42) }
        #expect(Set(ids).count == ids.count)
    }
}
