import PlatosProto
import PlatosService
import Testing

@testable import GatewayService

/// context.load joins two answers that each fit a frame by themselves.
@Suite struct ContextAnswerTests {
    static let text = String(repeating: "x", count: 60 * 1024)

    @Test func twoFullSidesAreTrimmedFromTheOldestMessagesAndTheLowestRankedMemories() {
        var response = V1.LoadContextResponse()
        response.messages = (1...30).map { V1.Message(seq: UInt64($0), content: Self.text) }
        response.memories = (1...30).map { V1.RecalledMemory(item: V1.MemoryItem(id: "m\($0)", content: Self.text), score: Double(31 - $0)) }
        Gateway.fitInOneAnswer(&response)

        let total = response.messages.reduce(0) { $0 + ResponseBudget.size(of: $1) }
            + response.memories.reduce(0) { $0 + ResponseBudget.size(of: $1.item!) }
        #expect(total <= ResponseBudget.bytes * 7 / 4)
        #expect(response.messages.last?.seq == 30, "the newest message stays")
        #expect(response.messages.map(\.seq) == Array(response.messages.first!.seq...30), "only the oldest go")
        #expect(response.memories.map(\.item!.id) == (1...response.memories.count).map { "m\($0)" }, "only the lowest ranked go")
        #expect(!response.memories.isEmpty)
    }

    @Test func anAnswerThatFitsIsLeftAlone() {
        var response = V1.LoadContextResponse()
        response.messages = (1...5).map { V1.Message(seq: UInt64($0), content: Self.text) }
        response.memories = (1...5).map { V1.RecalledMemory(item: V1.MemoryItem(id: "m\($0)", content: Self.text)) }
        Gateway.fitInOneAnswer(&response)
        #expect(response.messages.count == 5 && response.memories.count == 5)
    }
}
