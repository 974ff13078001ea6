import NIOCore
import NIOEmbedded
import PlatosProto
import PlatosWire
import Testing

/// Mutation fuzzing of the frame decoder: random bytes and corrupted valid frames, split at random
/// points. Every input must end in frames or a `WireError`, never a crash or a hang. The seed is
/// fixed so a failure replays.
@Suite struct FrameDecoderFuzzTests {
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func randomAndMutatedInputsNeverCrash() throws {
        var rng = SplitMix64(state: 0x5EED)
        var valid = ByteBuffer()
        for id in 1...4 {
            try FrameEncoder.encode(FrameCodecTests.frame(UInt64(id)), into: &valid, maxFrameLength: 1 << 20)
        }
        let template = Array(valid.readableBytesView)
        var decodedFrames = 0, errors = 0
        for round in 0..<4000 {
            var input: [UInt8]
            if round % 2 == 0 {
                input = (0..<Int.random(in: 0..<300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                input = template
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 1 << 16)))
            var offset = 0
            do {
                while offset < input.count {
                    let n = Int.random(in: 1...(input.count - offset), using: &rng)
                    try channel.writeInbound(ByteBuffer(bytes: input[offset..<offset + n]))
                    offset += n
                }
                while try channel.readInbound(as: V1.Frame.self) != nil { decodedFrames += 1 }
            } catch is WireError {
                errors += 1
            }
            _ = try? channel.finish()
        }
        // Both outcomes happened, so the fuzzer reached past the length check into protobuf-c.
        #expect(decodedFrames > 0)
        #expect(errors > 0)
    }
}
