import NIOCore
import PlatosProto
import PlatosWire

/// The frame decoder plus the partial-frame timeout: once a frame has started arriving, the rest
/// must follow within `partialFrameTimeout`, or the connection is closed. This is what stops a
/// slow-loris peer from pinning a connection with a trickle of bytes. The clock runs per frame:
/// every completed frame stops it, so a busy connection whose reads often end mid-frame is never
/// mistaken for a stalled one.
struct ServerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = V1.Frame

    let maxFrameLength: Int
    let partialFrameTimeout: Duration
    private var timer: Scheduled<Void>?

    init(maxFrameLength: Int, partialFrameTimeout: Duration) {
        self.maxFrameLength = maxFrameLength
        self.partialFrameTimeout = partialFrameTimeout
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if let frame = try FrameDecoder.decodeFrame(from: &buffer, maxFrameLength: maxFrameLength) {
            timer?.cancel()
            timer = nil
            context.fireChannelRead(Self.wrapInboundOut(frame))
            return .continue
        }
        if buffer.readableBytes > 0, timer == nil {
            let channel = context.channel
            timer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(partialFrameTimeout.nanoseconds))) {
                channel.close(promise: nil)
            }
        }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        timer?.cancel()
        timer = nil
        return try decode(context: context, buffer: &buffer)
    }
}

extension Duration {
    /// Saturates instead of trapping: a duration beyond ±292 years (a caller's huge timeout) is
    /// as good as forever.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflowSum) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflowSum { return seconds < 0 ? .min : .max }
        return sum
    }

    var milliseconds: Int64 { nanoseconds / 1_000_000 }
}
