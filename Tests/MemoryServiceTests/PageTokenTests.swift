import Testing

@testable import MemoryService

/// Page tokens are sealed positions: they open only for the method they were issued for, and
/// say nothing about the position, not even through their length.
@Suite struct PageTokenTests {
    let tokens = PageTokens(key: Array(repeating: 7, count: 32))

    @Test func aTokenOpensToItsPositionForItsMethodOnly() throws {
        for position: Int64 in [0, 9, 10_000, .max] {
            #expect(try tokens.decode(tokens.encode(.memories, position), as: .memories) == position)
        }
        #expect(throws: (any Error).self) { try tokens.decode(tokens.encode(.history, 5), as: .memories) }
        #expect(throws: (any Error).self) { try tokens.decode("bm90IGEgdG9rZW4", as: .memories) }
        #expect(try tokens.decode("", as: .memories) == nil)
    }

    /// AES-GCM keeps the plaintext's length: an unpadded row number would show its magnitude
    /// (how many memories the whole database holds) in the token's length.
    @Test func tokensForSmallAndLargePositionsHaveOneLength() {
        let lengths = Set([Int64(1), 9, 10_000, 123_456_789_012, .max].map { tokens.encode(.memories, $0).utf8.count })
        #expect(lengths.count == 1)
    }
}
