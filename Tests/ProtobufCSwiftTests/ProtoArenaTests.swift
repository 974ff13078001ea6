import Testing

@testable import ProtobufCSwift

/// The bump allocator behind every conversion: chunk overflow, reset, and re-entrant use.
@Suite struct ProtoArenaTests {
    @Test func allocationsAreAlignedAndDisjoint() {
        let arena = ProtoArena(chunkSize: 256)
        let cursor = arena.cursor
        let a = cursor.allocate(3)
        let b = cursor.allocate(17)
        #expect(Int(bitPattern: a) % 16 == 0)
        #expect(Int(bitPattern: b) % 16 == 0)
        #expect(b - a >= 16)
    }

    @Test func overflowingAChunkKeepsEarlierAllocationsAndResetReusesTheFirst() {
        let arena = ProtoArena(chunkSize: 64)
        let cursor = arena.cursor
        let first = cursor.allocate(16)
        first.storeBytes(of: 0xABCD, as: UInt32.self)
        let big = cursor.allocate(1000)  // larger than a chunk: a chunk of its own
        big.initializeMemory(as: UInt8.self, repeating: 7, count: 1000)
        #expect(first.load(as: UInt32.self) == 0xABCD)
        #expect(cursor.state.pointee.hasExtraChunks)

        cursor.reset()
        #expect(!cursor.state.pointee.hasExtraChunks)
        #expect(cursor.allocate(16) == first)
    }

    @Test func aNestedConversionGetsItsOwnArena() {
        withThreadArena { outer in
            let kept = outer.allocate(32)
            kept.storeBytes(of: 42, as: Int.self)
            withThreadArena { inner in
                #expect(inner.state != outer.state)
                _ = inner.allocate(64 * 1024)
            }
            #expect(kept.load(as: Int.self) == 42)
            #expect(outer.lent)
        }
        withThreadArena { cursor in #expect(cursor.lent) }
        #expect(!ThreadArena.current().lent)
    }

    @Test func copyCStringRejectsAnEmbeddedNul() {
        let arena = ProtoArena()
        #expect(throws: ProtoError.self) { try arena.cursor.copyCString("a\u{0}b") }
        #expect(String(cString: (try? arena.cursor.copyCString("héllo"))!) == "héllo")
    }
}
