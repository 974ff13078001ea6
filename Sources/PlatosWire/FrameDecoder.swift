import NIOCore
import PlatosProto
import ProtobufCSwift

/// Splits a byte stream into `platos.v1.Frame`s: a 4-byte big-endian length, then that many
/// bytes of protobuf.
///
/// The length is checked before anything of the body is buffered: 0 and anything above
/// `maxFrameLength` fail at once with a ``WireError`` (the runtime then sends GOAWAY and closes),
/// so a peer cannot make this process hold more than one frame's worth of its bytes.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = V1.Frame

    public static let defaultMaxFrameLength = 4 * 1024 * 1024

    public let maxFrameLength: Int

    public init(maxFrameLength: Int = FrameDecoder.defaultMaxFrameLength) {
        self.maxFrameLength = maxFrameLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.decodeFrame(from: &buffer, maxFrameLength: maxFrameLength) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        // A truncated frame at EOF is dropped: its call gets no answer because its peer is gone.
        try decode(context: context, buffer: &buffer)
    }

    /// Takes one whole frame off the front of `buffer`, or nil when more bytes are needed.
    @inline(__always)
    public static func decodeFrame(from buffer: inout ByteBuffer, maxFrameLength: Int) throws -> V1.Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length != 0 else { throw WireError.emptyFrame }
        guard length <= maxFrameLength else { throw WireError.frameTooLarge(length: length, limit: maxFrameLength) }
        let total = 4 + Int(length)
        guard buffer.readableBytes >= total else { return nil }
        let frame: V1.Frame
        do {
            frame = try buffer.withUnsafeReadableBytes { raw in
                try V1.Frame(serializedBytes: UnsafeRawBufferPointer(rebasing: raw[4..<total]), maxSize: maxFrameLength)
            }
        } catch {
            buffer.moveReaderIndex(forwardBy: total)
            throw WireError.malformedFrame("\(error)")
        }
        buffer.moveReaderIndex(forwardBy: total)
        return frame
    }
}
