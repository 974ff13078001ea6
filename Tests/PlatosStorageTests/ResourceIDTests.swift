import PlatosStorage
import Testing

/// Memory, thread, message, task and lease ids: time first (so the id indexes grow at one edge),
/// random after (unguessable).
@Suite struct ResourceIDTests {
    @Test func laterIdsSortAfterEarlierOnes() {
        let times: [UInt64] = [0, 1, 31, 32, 1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000, (1 << 50) - 1]
        let ids = times.map { ResourceID.make("task", nowMs: $0) }
        #expect(ids == ids.sorted())
        #expect(ids.allSatisfy { $0.count == "task_".count + 26 })
        #expect(ids.allSatisfy { $0.dropFirst(5).allSatisfy { "234567abcdefghijklmnopqrstuvwxyz".contains($0) } })
        #expect(ResourceID.make("thr", nowMs: 0).hasPrefix("thr_2222222222"))
    }

    @Test func idsMadeInTheSameMillisecondDiffer() {
        let ids = (0..<10_000).map { _ in ResourceID.make("msg", nowMs: 42) }
        #expect(Set(ids).count == ids.count)
        #expect(Set(ids.map { $0.prefix(14) }).count == 1)  // same time part, different random tails
    }
}
