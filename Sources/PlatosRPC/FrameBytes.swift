import NIOCore
import PlatosProto
import PlatosWire

/// Encodes frames into buffers on whatever thread builds them, so the event loop only writes.
enum FrameBytes {
    static let allocator = ByteBufferAllocator()

    static func encode(_ frame: V1.Frame, maxFrameLength: Int) throws -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64 + frame.payload.count + frame.method.utf8.count)
        try FrameEncoder.encode(frame, into: &buffer, maxFrameLength: maxFrameLength)
        return buffer
    }

    /// A frame that carries only a status (RESPONSE or STREAM_END with an error, GOAWAY).
    static func status(_ kind: V1.FrameKind, callId: UInt64, _ error: RPCError) -> ByteBuffer {
        var status = error.status
        // A status message must always fit; cut it rather than fail to report the failure.
        if status.message.utf8.count > 4096 { status.message = String(status.message.prefix(4096)) }
        let frame = V1.Frame(callId: callId, kind: kind, status: status)
        // A status-only frame of bounded size encodes unless a string holds a NUL (protobuf-c
        // strings are C strings): then NULs become spaces, and as a last resort the code goes
        // alone, with a fixed message.
        if let bytes = try? encode(frame, maxFrameLength: .max) { return bytes }
        let noNUL = { (text: String) in String(text.map { $0 == "\u{0}" ? " " : $0 }) }
        status.message = noNUL(status.message)
        status.details = status.details.map { V1.MetadataEntry(key: noNUL($0.key), value: noNUL($0.value)) }
        if let bytes = try? encode(V1.Frame(callId: callId, kind: kind, status: status), maxFrameLength: .max) {
            return bytes
        }
        let bare = V1.Status(code: status.code, message: "the status message could not be encoded")
        return (try? encode(V1.Frame(callId: callId, kind: kind, status: bare), maxFrameLength: .max))
            ?? allocator.buffer(capacity: 0)
    }
}
