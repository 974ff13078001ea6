import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import PlatosRPC

/// The outbox's batching: frames queued on the event loop go out in batches of
/// `FrameOutbox.eagerBatch` as they accumulate, the rest at the scheduled drain, always in order.
@Suite struct FrameOutboxTests {
    private final class Recorder: Sendable {
        let batches = NIOLockedValueBox<[[UInt64]]>([])
        var written: [UInt64] { batches.withLockedValue { $0.flatMap { $0 } } }
    }

    private static func item(_ id: UInt64) -> FrameOutbox.Item {
        FrameOutbox.Item(callId: id, bytes: ByteBuffer(integer: id), ends: true)
    }

    @Test func framesQueuedOnTheLoopAreWrittenInEagerBatchesThenAtTheDrain() {
        let loop = EmbeddedEventLoop()
        let recorder = Recorder()
        let outbox = FrameOutbox(eventLoop: loop) { items in
            recorder.batches.withLockedValue { $0.append(items.map(\.callId)) }
        }
        let count = UInt64(FrameOutbox.eagerBatch * 2 + 5)
        for id in 1...count { outbox.enqueue(Self.item(id)) }
        // Two full batches went out while queuing; the last five wait for the scheduled drain.
        #expect(recorder.batches.withLockedValue { $0.map(\.count) } == [FrameOutbox.eagerBatch, FrameOutbox.eagerBatch])
        loop.run()
        #expect(recorder.written == Array(1...count))
        #expect(recorder.batches.withLockedValue { $0.last?.count } == 5)
    }

    @Test func aFrameQueuedWhileDrainingWaitsForTheNextDrain() {
        let loop = EmbeddedEventLoop()
        let recorder = Recorder()
        let outboxBox = NIOLockedValueBox<FrameOutbox?>(nil)
        let outbox = FrameOutbox(eventLoop: loop) { items in
            recorder.batches.withLockedValue { $0.append(items.map(\.callId)) }
            // A write that synchronously queues more (as a failing write can): enough to reach
            // the eager size, which must still not be written inside this drain.
            if items.first?.callId == 1 {
                let outbox = outboxBox.withLockedValue { $0 }
                for id in 100..<(100 + UInt64(FrameOutbox.eagerBatch)) { outbox?.enqueue(Self.item(id)) }
            }
        }
        outboxBox.withLockedValue { $0 = outbox }
        outbox.enqueue(Self.item(1))
        outbox.enqueue(Self.item(2))
        loop.run()
        let expected: [UInt64] = [1, 2] + Array(100..<(100 + UInt64(FrameOutbox.eagerBatch)))
        #expect(recorder.written == expected)
        #expect(recorder.batches.withLockedValue { $0.count } == 2)
        outboxBox.withLockedValue { $0 = nil }  // the drain closure holds the box: break the cycle
    }
}
