/// A connection-level protocol violation: the peer's bytes cannot be frames. The RPC runtime
/// answers these with GOAWAY and closes the connection; they are never a crash.
public enum WireError: Error, Hashable, CustomStringConvertible {
    /// A length prefix of 0. Every frame has at least a kind, so an empty frame is never valid.
    case emptyFrame
    /// A length prefix above the limit. Nothing of the body was read or buffered.
    case frameTooLarge(length: UInt32, limit: Int)
    /// The frame body is not a `platos.v1.Frame`.
    case malformedFrame(String)
    /// A frame this side was asked to send is larger than the limit.
    case outboundFrameTooLarge(length: Int, limit: Int)

    public var description: String {
        switch self {
        case .emptyFrame:
            return "zero-length frame: every frame must carry a platos.v1.Frame"
        case .frameTooLarge(let length, let limit):
            return "frame length \(length) exceeds the limit of \(limit) bytes"
        case .malformedFrame(let why):
            return "frame body is not a valid platos.v1.Frame: \(why)"
        case .outboundFrameTooLarge(let length, let limit):
            return "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        }
    }
}
