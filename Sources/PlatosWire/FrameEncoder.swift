import NIOCore
import PlatosProto
import ProtobufCSwift

/// Writes `platos.v1.Frame`s as a 4-byte big-endian length and the protobuf-c packed body,
/// packed straight into the outbound buffer.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = V1.Frame

    public let maxFrameLength: Int

    public init(maxFrameLength: Int = FrameDecoder.defaultMaxFrameLength) {
        self.maxFrameLength = maxFrameLength
    }

    public func encode(data: V1.Frame, out: inout ByteBuffer) throws {
        try Self.encode(data, into: &out, maxFrameLength: maxFrameLength)
    }

    @inline(__always)
    public static func encode(_ frame: V1.Frame, into out: inout ByteBuffer, maxFrameLength: Int) throws {
        try frame.serialize { size, pack in
            guard size <= maxFrameLength else { throw WireError.outboundFrameTooLarge(length: size, limit: maxFrameLength) }
            out.writeInteger(UInt32(size))
            let written = out.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
                pack(raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            precondition(written == size, "protobuf-c packed \(written) bytes, promised \(size)")
        }
    }
}
