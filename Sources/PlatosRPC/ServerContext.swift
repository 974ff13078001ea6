import NIOCore

/// What a handler knows about the call it is serving.
public struct ServerContext: Sendable {
    public let method: String
    public let metadata: Metadata
    /// When the caller stops waiting; nil when it set no deadline. Cancellation arrives as task
    /// cancellation, so `Task.isCancelled` and `Task.checkCancellation()` observe it.
    public let deadline: ContinuousClock.Instant?
    public let peer: String
    public let callId: UInt64

    public init(
        method: String, metadata: Metadata, deadline: ContinuousClock.Instant?, peer: String, callId: UInt64
    ) {
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
        self.peer = peer
        self.callId = callId
    }

    /// Time left before the deadline, nil when there is none.
    public var remaining: Duration? { deadline.map { $0 - .now } }

    /// The call being served by the current task, so that downstream calls a handler makes inherit
    /// its deadline without passing it by hand.
    @TaskLocal public static var current: ServerContext?
}
