import NIOCore
import NIOEmbedded
import NIOTestUtils
import PlatosProto
import PlatosWire
import Testing

@Suite struct FrameCodecTests {
    static func frame(_ id: UInt64, payload: [UInt8] = Array("hello ✓".utf8)) -> V1.Frame {
        V1.Frame(
            callId: id, kind: .request, method: "memory.recall",
            metadata: [V1.MetadataEntry(key: "authorization", value: "Bearer t\(id)")], timeoutMs: 250,
            payload: payload, status: nil)
    }

    static func encoded(_ frames: [V1.Frame]) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        for f in frames { try FrameEncoder.encode(f, into: &buffer, maxFrameLength: FrameDecoder.defaultMaxFrameLength) }
        return buffer
    }

    /// NIO's verifier feeds the bytes whole, byte by byte and in random chunks, and checks the
    /// decoder leaves nothing behind.
    @Test func decoderPassesNIOsVerifier() throws {
        let frames = [Self.frame(1), Self.frame(2, payload: []), Self.frame(3, payload: Array(repeating: 0xAB, count: 3_000))]
        var pairs: [(ByteBuffer, [V1.Frame])] = []
        for f in frames { pairs.append((try Self.encoded([f]), [f])) }
        pairs.append((try Self.encoded(frames), frames))
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    @Test func encoderAndDecoderRoundTripThroughAChannel() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
        let frame = Self.frame(42)
        try channel.writeOutbound(frame)
        let bytes = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(bytes.getInteger(at: 0, as: UInt32.self) == UInt32(bytes.readableBytes - 4))
        try channel.writeInbound(bytes)
        #expect(try channel.readInbound(as: V1.Frame.self) == frame)
        _ = try channel.finish()
    }

    /// Feeds `bytes` to a decoder in a channel and returns the error it raised, if any.
    static func decodeError(_ bytes: [UInt8], max: Int = FrameDecoder.defaultMaxFrameLength) -> (any Error)? {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: max)))
        defer { _ = try? channel.finish() }
        do {
            try channel.writeInbound(ByteBuffer(bytes: bytes))
            return nil
        } catch {
            return error
        }
    }

    @Test func zeroLengthIsAProtocolError() {
        #expect(Self.decodeError([0, 0, 0, 0]) as? WireError == .emptyFrame)
    }

    @Test func oversizedLengthsFailBeforeAnyBodyArrives() {
        // Only the 4-byte prefix is sent: the error must not wait for (or buffer) the body.
        let max = 1024
        #expect(Self.decodeError([0, 0, 0x04, 0x01], max: max) as? WireError == .frameTooLarge(length: 1025, limit: max))
        #expect(
            Self.decodeError([0xFF, 0xFF, 0xFF, 0xFF]) as? WireError
                == .frameTooLarge(length: 0xFFFF_FFFF, limit: FrameDecoder.defaultMaxFrameLength))
        // Exactly the limit is fine.
        var exact = ByteBuffer()
        let payload = [UInt8](repeating: 1, count: 1000)
        try? FrameEncoder.encode(Self.frame(1, payload: payload), into: &exact, maxFrameLength: .max)
        let length = Int(exact.getInteger(at: 0, as: UInt32.self)!)
        #expect(Self.decodeError(Array(exact.readableBytesView), max: length) == nil)
        #expect(Self.decodeError(Array(exact.readableBytesView), max: length - 1) != nil)
    }

    @Test func truncatedFrameWaitsAndProducesNothing() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        let whole = try Self.encoded([Self.frame(9)])
        try channel.writeInbound(whole.getSlice(at: 0, length: whole.readableBytes - 3)!)
        #expect(try channel.readInbound(as: V1.Frame.self) == nil)
        // The rest completes it.
        try channel.writeInbound(whole.getSlice(at: whole.readableBytes - 3, length: 3)!)
        #expect(try channel.readInbound(as: V1.Frame.self) == Self.frame(9))
        _ = try channel.finish()
    }

    @Test func truncatedFrameAtEOFIsDroppedWithoutACrash() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        let whole = try Self.encoded([Self.frame(9)])
        try channel.writeInbound(whole.getSlice(at: 0, length: 10)!)
        let result = Result { try channel.finish() }
        #expect(try channel.readInbound(as: V1.Frame.self) == nil)
        _ = result
    }

    @Test func garbageProtobufIsAClearError() {
        let error = Self.decodeError([0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF]) as? WireError
        guard case .malformedFrame(let why) = error else {
            Issue.record("expected malformedFrame, got \(String(describing: error))")
            return
        }
        #expect(why.contains("platos.v1.Frame"))
    }

    @Test func outboundFramesOverTheLimitAreRefused() {
        var buffer = ByteBuffer()
        #expect(throws: WireError.self) {
            try FrameEncoder.encode(Self.frame(1, payload: .init(repeating: 0, count: 2000)), into: &buffer, maxFrameLength: 1000)
        }
        #expect(buffer.readableBytes == 0)
    }
}
