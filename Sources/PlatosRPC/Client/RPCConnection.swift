import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PlatosProto
import PlatosWire

/// One TCP connection to a server, carrying many concurrent calls told apart by `call_id`.
///
/// Callers encode their request frames on their own threads and queue them in a ``FrameOutbox``;
/// the event loop matches responses to waiting calls. Any way the connection ends fails every
/// call still waiting with `UNAVAILABLE`, at once.
public final class RPCConnection: Sendable {
    private enum Pending {
        case unary(CheckedContinuation<[UInt8], any Error>, Scheduled<Void>?)
        case stream(StreamInbox, Scheduled<Void>?)

        /// Ends the waiting call with `error` and stops its deadline timer.
        func fail(_ error: RPCError) {
            switch self {
            case .unary(let c, let timer):
                timer?.cancel()
                c.resume(throwing: error)
            case .stream(let c, let timer):
                timer?.cancel()
                c.finish(throwing: error)
            }
        }
    }

    private struct State {
        var nextCallId: UInt64 = 1
        var pending: [UInt64: Pending] = [:]
        var closedReason: RPCError?
        var goingAway = false
    }

    let channel: any Channel
    private let outbox: FrameOutbox
    private let state = NIOLockedValueBox(State())
    private let maxFrameLength: Int
    private let streamInboxLimits: StreamInbox.Limits
    let endpoint: String

    private init(channel: any Channel, configuration: RPCClientConfiguration, endpoint: String) {
        self.channel = channel
        self.maxFrameLength = configuration.maxFrameLength
        self.streamInboxLimits = configuration.streamInboxLimits
        self.endpoint = endpoint
        let target = DrainTarget()
        self.outbox = FrameOutbox(eventLoop: channel.eventLoop) { items in target.connection?.write(items) }
        target.connection = self
    }

    /// Lets the outbox, made in `init` before `self` exists, reach the connection without
    /// keeping it alive. @unchecked: `connection` is written once, in `init`, before anything
    /// can be queued (a call needs the finished connection), and only read afterwards.
    private final class DrainTarget: @unchecked Sendable {
        weak var connection: RPCConnection?
    }

    /// Writes queued frames and starts the deadline timers of the calls they start; on the loop.
    private func write(_ items: [FrameOutbox.Item]) {
        // Through the pipeline's synchronous operations with the bytes already wrapped: the
        // channel's generic `write` wrapped them in NIO's unspecialised code, which looked a type's
        // metadata up in the runtime's cache for every frame.
        let pipeline = channel.pipeline.syncOperations
        for item in items {
            if let deadline = item.deadline { attachTimer(item.callId, deadline: deadline) }
            pipeline.write(NIOAny(item.bytes), promise: nil)
        }
        pipeline.flush()
    }

    /// Connects to `host:port`.
    public static func connect(
        host: String, port: Int, configuration: RPCClientConfiguration = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RPCConnection {
        let endpoint = "\(host):\(port)"
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(configuration.connectTimeout.nanoseconds))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port)
                .get()
        } catch {
            throw RPCError(.unavailable, "cannot connect to \(endpoint): \(error)")
        }
        return try await channel.eventLoop.submit {
            try attached(to: channel, configuration: configuration, endpoint: endpoint)
        }.get()
    }

    /// A connection on a channel that is already connected; on the channel's event loop.
    /// (Tests attach one to an `EmbeddedChannel`.)
    static func attached(to channel: any Channel, configuration: RPCClientConfiguration, endpoint: String) throws
        -> RPCConnection
    {
        let connection = RPCConnection(channel: channel, configuration: configuration, endpoint: endpoint)
        let sync = channel.pipeline.syncOperations
        // Read idleness only: watching writes too (`allTimeout`) made IdleStateHandler
        // allocate a promise and a callback for every frame written.
        try sync.addHandler(IdleStateHandler(readTimeout: .nanoseconds(configuration.keepaliveInterval.nanoseconds)))
        try sync.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: configuration.maxFrameLength)))
        try sync.addHandler(
            ClientConnectionHandler(connection: connection, keepaliveTimeout: configuration.keepaliveTimeout))
        return connection
    }

    /// The loop that writes this connection's requests and reads its responses.
    public var eventLoop: any EventLoop { channel.eventLoop }

    /// False once the connection closed or the server sent GOAWAY: new calls belong elsewhere.
    public var isUsable: Bool { state.withLockedValue { $0.closedReason == nil && !$0.goingAway } }

    public var inFlight: Int { state.withLockedValue { $0.pending.count } }

    public func close() async {
        try? await channel.close()
    }

    // MARK: Calls

    /// Records a waiting call, or says why the connection cannot take it. Either way nothing has
    /// been sent: a refusal here is ``RPCError/notStarted(_:)``.
    private func register(_ id: UInt64, _ pending: Pending) -> RPCError? {
        state.withLockedValue { state in
            if let reason = state.closedReason {
                return reason.code == .unavailable ? .notStarted(reason.message) : reason
            }
            if state.goingAway {
                return .notStarted("\(endpoint) is going away; retry on a new connection")
            }
            state.pending[id] = pending
            return nil
        }
    }

    private func attachTimer(_ id: UInt64, deadline: NIODeadline) {
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) { [self] in
            fail(id, RPCError(.deadlineExceeded, "deadline exceeded waiting for \(endpoint)"), cancelOnServer: true)
        }
        let stillPending = state.withLockedValue { state -> Bool in
            switch state.pending[id] {
            case .unary(let c, nil): state.pending[id] = .unary(c, timer); return true
            case .stream(let c, nil): state.pending[id] = .stream(c, timer); return true
            default: return false
            }
        }
        if !stillPending { timer.cancel() }
    }

    private func requestFrame(
        _ id: UInt64, _ method: String, _ payload: [UInt8], _ metadata: Metadata, _ deadline: ContinuousClock.Instant?
    ) throws -> ByteBuffer {
        var timeoutMs: UInt32 = 0
        if let deadline {
            let ms = (deadline - .now).milliseconds
            guard ms > 0 else { throw RPCError(.deadlineExceeded, "deadline passed before the call was sent") }
            timeoutMs = UInt32(clamping: ms)
        }
        let frame = V1.Frame(
            callId: id, kind: .request, method: method, metadata: metadata.entries, timeoutMs: timeoutMs, payload: payload)
        do {
            return try FrameBytes.encode(frame, maxFrameLength: maxFrameLength)
        } catch {
            throw RPCError(.resourceExhausted, "\(method): request of \(payload.count) bytes exceeds the frame limit")
        }
    }

    public func unary(
        method: String, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8] {
        // The id is reserved before the continuation exists, so cancellation can name the call
        // without a per-call lock box.
        let id = state.withLockedValue { state -> UInt64 in
            defer { state.nextCallId += 1 }
            return state.nextCallId
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
                if let error = register(id, .unary(continuation, nil)) {
                    continuation.resume(throwing: error)
                    return
                }
                // A task cancelled before its request is sent does not send it: a write the
                // caller gave up on must not still be made (and reported CANCELLED).
                if Task.isCancelled {
                    fail(id, RPCError(.cancelled, "the call was cancelled before it was sent"), cancelOnServer: false)
                    return
                }
                let bytes: ByteBuffer
                do {
                    bytes = try requestFrame(id, method, payload, metadata, deadline)
                } catch {
                    fail(id, RPCRouter.status(for: error), cancelOnServer: false)
                    return
                }
                outbox.enqueue(.init(callId: id, bytes: bytes, ends: false, deadline: deadline.map(NIODeadline.init)))
                if Task.isCancelled {
                    // The cancellation handler may have run before the request was queued, and its
                    // CANCEL gone out first, for a call the server did not know yet: cancel again,
                    // after the request. A CANCEL for a call that already ended is ignored.
                    fail(id, RPCError(.cancelled, "the call was cancelled"), cancelOnServer: false)
                    sendCancel(id)
                }
            }
        } onCancel: {
            fail(id, RPCError(.cancelled, "the call was cancelled"), cancelOnServer: true)
        }
    }

    public func serverStreaming(
        method: String, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        let (inbox, stream) = StreamInbox.make(streamInboxLimits)
        let id = state.withLockedValue { state -> UInt64 in
            defer { state.nextCallId += 1 }
            return state.nextCallId
        }
        if let error = register(id, .stream(inbox, nil)) {
            inbox.finish(throwing: error)
            return stream
        }
        inbox.onTermination { [self] termination in
            if case .cancelled = termination {
                fail(id, RPCError(.cancelled, "the stream was cancelled"), cancelOnServer: true)
            }
        }
        do {
            let bytes = try requestFrame(id, method, payload, metadata, deadline)
            outbox.enqueue(.init(callId: id, bytes: bytes, ends: false, deadline: deadline.map(NIODeadline.init)))
        } catch {
            fail(id, RPCRouter.status(for: error), cancelOnServer: false)
        }
        return stream
    }

    /// Ends call `id` with `error`, if it is still waiting.
    private func fail(_ id: UInt64, _ error: RPCError, cancelOnServer: Bool) {
        guard let pending = state.withLockedValue({ $0.pending.removeValue(forKey: id) }) else { return }
        pending.fail(error)
        if cancelOnServer { sendCancel(id) }
    }

    /// Asks the server to stop call `id`.
    private func sendCancel(_ id: UInt64) {
        outbox.enqueue(.init(callId: id, bytes: FrameBytes.status(.cancel, callId: id, RPCError(.cancelled, "")), ends: false))
    }

    // MARK: From the event loop

    func received(_ frame: V1.Frame) {
        switch frame.kind {
        case .response, .streamEnd:
            // Either frame ends the call, whichever kind it is: a server refuses a call it cannot
            // start (unknown method, draining, too many in flight) with a RESPONSE before it knows
            // the call is a stream, and a stream left waiting here would never end.
            guard let pending = state.withLockedValue({ $0.pending.removeValue(forKey: frame.callId) }) else { return }
            let status = frame.status ?? V1.Status()
            let error = status.code == .ok ? nil : RPCError(status: status)
            switch (pending, frame.kind) {
            case (.unary(let c, let timer), .response):
                timer?.cancel()
                if let error { c.resume(throwing: error) } else { c.resume(returning: frame.payload) }
            case (.stream(let c, let timer), .streamEnd):
                timer?.cancel()
                if let error { c.finish(throwing: error) } else { c.finish() }
            default:
                pending.fail(error ?? RPCError(.internal, "\(endpoint) ended call \(frame.callId) with a \(frame.kind) frame"))
            }
        case .streamMessage:
            guard case .stream(let inbox, _)? = state.withLockedValue({ $0.pending[frame.callId] }) else { return }
            if !inbox.deliver(frame.payload) {
                fail(frame.callId, inbox.fellBehind, cancelOnServer: true)
            }
        case .goaway:
            let status = frame.status ?? V1.Status()
            state.withLockedValue {
                $0.goingAway = true
                if status.code != .unavailable {
                    $0.closedReason = RPCError(.unavailable, "\(endpoint) closed the connection: \(status.message)")
                }
            }
        case .ping:
            // Not while the server is not reading what this side writes: a server flooding PINGs
            // would otherwise queue PONGs here without bound. Its own keepalive then sees no
            // PONG, which is true: this side cannot get through to it.
            guard outbox.isWritable else { return }
            outbox.enqueue(.init(callId: 0, bytes: FrameBytes.status(.pong, callId: frame.callId, RPCError(.ok, "")), ends: false))
        default:
            break
        }
    }

    func closed(_ why: String) {
        outbox.close()
        let (pending, error) = state.withLockedValue { state -> ([UInt64: Pending], RPCError) in
            let reason =
                state.closedReason
                ?? RPCError(.unavailable, "connection to \(endpoint) closed\(why.isEmpty ? "" : ": \(why)")")
            state.closedReason = reason
            defer { state.pending.removeAll() }
            return (state.pending, reason)
        }
        for (_, call) in pending { call.fail(error) }
    }

    func sendPing() {
        outbox.enqueue(.init(callId: 0, bytes: FrameBytes.status(.ping, callId: 0, RPCError(.ok, "")), ends: false))
    }

    func setWritable(_ writable: Bool) { outbox.setWritable(writable) }
}

/// Feeds frames from the event loop to the ``RPCConnection`` and keeps the connection alive.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = V1.Frame

    private let connection: RPCConnection
    private let keepaliveTimeout: Duration
    private var pongTimer: Scheduled<Void>?

    init(connection: RPCConnection, keepaliveTimeout: Duration) {
        self.connection = connection
        self.keepaliveTimeout = keepaliveTimeout
    }

    /// The handlers go in after the connect, while the channel already reads: a server that
    /// answers a new connection with GOAWAY and a close (at its connection limit) can be gone
    /// before this handler is there to hear `channelInactive`. Without this check the connection
    /// would look usable for good, and its calls would wait out their deadlines.
    func handlerAdded(context: ChannelHandlerContext) {
        if !context.channel.isActive { connection.closed("the server closed the connection as it opened") }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.kind == .pong {
            pongTimer?.cancel()
            pongTimer = nil
        }
        connection.received(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pongTimer?.cancel()
        connection.closed("")
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.setWritable(context.channel.isWritable)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.closed("\(error)")
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard pongTimer == nil else { return }
        connection.sendPing()
        let channel = context.channel
        let connection = self.connection
        pongTimer = context.eventLoop.scheduleTask(in: .nanoseconds(keepaliveTimeout.nanoseconds)) {
            connection.closed("no PONG within the keepalive timeout")
            channel.close(promise: nil)
        }
    }
}

extension NIODeadline {
    /// The same moment on NIO's clock, by its distance from now (the two clocks' origins differ).
    init(_ instant: ContinuousClock.Instant) {
        self = .now() + .nanoseconds((instant - .now).nanoseconds)
    }
}
