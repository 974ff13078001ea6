import Logging
import NIOConcurrencyHelpers
import NIOCore
import PlatosProto
import PlatosWire

/// Serves the calls of one connection.
///
/// Everything here runs on the connection's event loop. Each handler runs in a task of its own
/// (on the same loop by default, see ``EventLoopTaskExecutor``) and hands its encoded response
/// back through a ``FrameOutbox``. The loop is the single place that decides a call's fate: the
/// first of "response written", "deadline passed", "client cancelled" and "connection closed"
/// wins, the rest are dropped.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = V1.Frame
    typealias OutboundOut = ByteBuffer

    private struct InFlightCall {
        var task: Task<Void, Never>?
        var deadlineTimer: Scheduled<Void>?
        /// A stream ends with STREAM_END, a unary call with RESPONSE, whatever ends it.
        var isStream: Bool
    }

    private let router: RPCRouter
    private let configuration: RPCServerConfiguration
    private let lifecycle: ServerLifecycleState
    private let metrics: RPCServerMetrics
    private let logger: Logger
    private var calls: [UInt64: InFlightCall] = [:]
    /// Calls already answered (cancelled, or past their deadline) whose handler task has not
    /// returned yet. They still count against the in-flight limit, so that a client cannot keep
    /// an unbounded number of handlers running by cancelling each call it starts; and their ids
    /// stay taken until their task's last frame arrives.
    private var abandoned: Set<UInt64> = []
    private var draining = false
    /// A GOAWAY that ends the connection (a protocol error, a limit, idleness) has been sent.
    private var goingAway = false
    /// The channel is inactive. Frames decoded from the same read as the one that closed it can
    /// still arrive: they must start nothing, since nothing would ever cancel what they start.
    private var closed = false
    /// The close that waits for the last answers to be written has begun.
    private var closing = false
    /// A keepalive PING went out and nothing has been read since.
    private var pingUnanswered = false
    private var context: ChannelHandlerContext?
    private var outbox: FrameOutbox?
    /// Where handler tasks run; nil for the global concurrent executor.
    private var handlerExecutor: EventLoopTaskExecutor?
    private var peer = "unknown"
    /// Runs while the connection cannot take writes; closes it if that lasts the write-stall
    /// timeout (``RPCServerConfiguration/writeStallTimeout``).
    private var writeStallTimer: Scheduled<Void>?

    init(
        router: RPCRouter, configuration: RPCServerConfiguration, lifecycle: ServerLifecycleState,
        metrics: RPCServerMetrics, logger: Logger
    ) {
        self.router = router
        self.configuration = configuration
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.logger = logger
        lifecycle.handlerCreated()
    }

    deinit {
        lifecycle.handlerFreed()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = context.channel.remoteAddress?.description ?? "unknown"
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        outbox = FrameOutbox(eventLoop: context.eventLoop) { items in loopBound.value.write(items) }
        if configuration.handlersOnEventLoop { handlerExecutor = EventLoopTaskExecutor(eventLoop: context.eventLoop) }
    }

    /// The outbox's drain closure holds this handler, and this handler holds the outbox and its
    /// context: let go of both when the pipeline lets go of the handler, or every closed
    /// connection would keep its handler, outbox and context alive for good. A handler task
    /// still finishing holds the outbox, and through it this handler, only until it returns.
    func handlerRemoved(context: ChannelHandlerContext) {
        outbox?.close()
        outbox = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        metrics.connectionOpened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        metrics.connectionClosed()
        writeStallTimer?.cancel()
        writeStallTimer = nil
        outbox?.close()
        for (_, call) in calls {
            call.task?.cancel()
            call.deadlineTimer?.cancel()
        }
        // Each cancelled task still reports its end (RPCServerMetrics.callFinished).
        calls.removeAll()
        abandoned.removeAll()
        context.fireChannelInactive()
    }

    /// A peer that stops reading makes the connection unwritable, and with reads paused
    /// (`BackPressureHandler`) its calls can neither finish nor be answered: they stay in flight,
    /// so the idle timeout never applies, and the connection with its slot and queued answers
    /// would be held for good. Unwritable for the whole write-stall timeout, it is closed.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        outbox?.setWritable(writable)
        if writable {
            writeStallTimer?.cancel()
            writeStallTimer = nil
        } else if writeStallTimer == nil {
            let channel = context.channel
            let (logger, metrics, peer) = (self.logger, self.metrics, self.peer)
            writeStallTimer = context.eventLoop.scheduleTask(in: .nanoseconds(configuration.writeStallTimeout.nanoseconds)) {
                logger.info("closing a connection whose peer stopped reading", metadata: ["peer": "\(peer)"])
                metrics.writeStalled()
                channel.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // After a GOAWAY that ends the connection, or once it is closed, the rest of the read
        // is dropped.
        guard !closed, !goingAway else { return }
        pingUnanswered = false
        switch frame.kind {
        case .request:
            startCall(frame, context: context)
        case .cancel:
            if let call = calls.removeValue(forKey: frame.callId) {
                abandon(frame.callId, call)
                metrics.callCancelled()
                closeIfDrained(context: context)
            }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(FrameBytes.status(.pong, callId: frame.callId, RPCError(.ok, ""))), promise: nil)
        case .pong, .goaway:
            break
        default:
            goAway(context: context, RPCError(.invalidArgument, "a client may not send \(frame.kind) frames"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case WireError.frameTooLarge:
            goAway(context: context, RPCError(.resourceExhausted, "\(error)"))
        case let error as WireError:
            goAway(context: context, RPCError(.invalidArgument, "\(error)"))
        default:
            logger.debug("connection error", metadata: ["peer": "\(peer)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    /// Read-idle with nothing in flight closes the connection. With calls in flight (a watch
    /// stream that is quiet, a long poll) the peer is asked for a PONG instead, and a peer that
    /// stays silent for another idle period has vanished (a host that lost power sends no FIN):
    /// without this its calls, subscriptions and connection slot would be held for good.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            if calls.isEmpty {
                goAway(context: context, RPCError(.unavailable, "connection idle; closing"))
            } else if pingUnanswered {
                logger.info("closing a connection whose peer answers no PING", metadata: ["peer": "\(peer)"])
                metrics.pingTimedOut()
                context.close(promise: nil)
            } else {
                pingUnanswered = true
                context.writeAndFlush(
                    wrapOutboundOut(FrameBytes.status(.ping, callId: 0, RPCError(.ok, ""))), promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Calls

    private func startCall(_ frame: V1.Frame, context: ChannelHandlerContext) {
        let callId = frame.callId
        guard callId != 0 else {
            goAway(context: context, RPCError(.invalidArgument, "call id 0 names the connection, not a call"))
            return
        }
        guard let handler = router.handler(for: frame.method) else {
            metrics.callRejected(frame.method, .unimplemented)
            reply(context, callId, isStream: false, RPCError(.unimplemented, "unknown method '\(frame.method)'"))
            return
        }
        var isStream = false
        if case .serverStreaming = handler { isStream = true }
        // While draining, health.check is still answered (NOT_SERVING): that is how a load
        // balancer learns to stop sending here.
        if draining || lifecycle.isDraining, frame.method != V1.HealthService.check.name {
            metrics.callRejected(frame.method, .unavailable)
            reply(
                context, callId, isStream: isStream,
                RPCError.notStarted("server is shutting down; retry on another connection"))
            return
        }
        guard calls[callId] == nil, !abandoned.contains(callId) else {
            metrics.callRejected(frame.method, .invalidArgument)
            reply(
                context, callId, isStream: isStream,
                RPCError(.invalidArgument, "call id \(callId) is already in flight on this connection"))
            return
        }
        guard calls.count + abandoned.count < configuration.maxConcurrentCallsPerConnection else {
            metrics.callRejected(frame.method, .resourceExhausted)
            reply(
                context, callId, isStream: isStream,
                RPCError(
                    .resourceExhausted,
                    "more than \(configuration.maxConcurrentCallsPerConnection) calls in flight on one connection"))
            return
        }
        if let tooMuch = metadataOverLimits(frame.metadata) {
            metrics.callRejected(frame.method, .invalidArgument)
            reply(context, callId, isStream: isStream, tooMuch)
            return
        }

        var call = InFlightCall(isStream: isStream)
        var deadline: ContinuousClock.Instant?
        if frame.timeoutMs > 0 {
            deadline = .now + .milliseconds(Int64(frame.timeoutMs))
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            call.deadlineTimer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(frame.timeoutMs))) {
                loopBound.value.deadlinePassed(callId)
            }
        }
        let serverContext = ServerContext(
            method: frame.method, metadata: Metadata(wire: frame.metadata), deadline: deadline, peer: peer, callId: callId)
        let outbox = self.outbox!
        let maxFrameLength = configuration.maxFrameLength
        let metrics = self.metrics
        let logger = self.logger
        let payload = frame.payload
        metrics.callStarted()
        let job = ServerCallJob(
            handler: handler, payload: payload, context: serverContext, outbox: outbox,
            maxFrameLength: maxFrameLength, metrics: metrics, logger: logger)
        // In the table before the handler starts: a handler that starts inline below can finish,
        // and its final frame be written (which removes the call), before its task is returned.
        calls[callId] = call
        let task: Task<Void, Never>
        if let handlerExecutor {
            // Already on the handler's executor (this loop): start the handler here, now, rather
            // than queue a job behind the loop's other work for the next tick. It runs until its
            // first suspension (a database or downstream call); a handler that never suspends
            // answers within this read.
            task = Task.immediate(executorPreference: handlerExecutor) { await job.run() }
        } else {
            task = Task { await job.run() }
        }
        calls[callId]?.task = task
    }

    private func metadataOverLimits(_ metadata: [V1.MetadataEntry]) -> RPCError? {
        if metadata.count > configuration.maxMetadataEntries {
            return RPCError(
                .invalidArgument,
                "call metadata has \(metadata.count) entries; the limit is \(configuration.maxMetadataEntries)")
        }
        var bytes = 0
        for entry in metadata { bytes += entry.key.utf8.count + entry.value.utf8.count }
        if bytes > configuration.maxMetadataBytes {
            return RPCError(
                .invalidArgument, "call metadata is \(bytes) bytes; the limit is \(configuration.maxMetadataBytes)")
        }
        return nil
    }

    /// Writes what the outbox collected; runs on the event loop.
    private func write(_ items: [FrameOutbox.Item]) {
        guard let context else { return }
        var wrote = false
        for item in items {
            if item.ends {
                guard let call = calls.removeValue(forKey: item.callId) else {
                    abandoned.remove(item.callId)
                    continue
                }
                call.deadlineTimer?.cancel()
            } else if calls[item.callId] == nil {
                continue
            }
            context.write(wrapOutboundOut(item.bytes), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
        closeIfDrained(context: context)
    }

    private func deadlinePassed(_ callId: UInt64) {
        guard let context, let call = calls.removeValue(forKey: callId) else { return }
        metrics.deadlineExceeded()
        end(callId, call, RPCError(.deadlineExceeded, "deadline exceeded"), context: context)
        context.flush()
        closeIfDrained(context: context)
    }

    /// Refuses a call before it starts, ending it the way its kind ends (RESPONSE or STREAM_END).
    private func reply(_ context: ChannelHandlerContext, _ callId: UInt64, isStream: Bool, _ error: RPCError) {
        context.writeAndFlush(
            wrapOutboundOut(FrameBytes.status(isStream ? .streamEnd : .response, callId: callId, error)), promise: nil)
    }

    /// Stops a call taken out of `calls`: its handler is cancelled, its deadline timer too, and
    /// its id stays taken (and counted against the in-flight limit) until the handler's own last
    /// frame arrives, which is then dropped.
    private func abandon(_ callId: UInt64, _ call: InFlightCall) {
        call.task?.cancel()
        call.deadlineTimer?.cancel()
        abandoned.insert(callId)
    }

    /// Ends a call taken out of `calls` with `error` now, whatever its handler is doing (not
    /// flushed: the caller flushes once for all it ends).
    private func end(_ callId: UInt64, _ call: InFlightCall, _ error: RPCError, context: ChannelHandlerContext) {
        abandon(callId, call)
        context.write(
            wrapOutboundOut(FrameBytes.status(call.isStream ? .streamEnd : .response, callId: callId, error)),
            promise: nil)
    }

    // MARK: Connection

    /// Starts a graceful close: GOAWAY now, new calls refused, close when the last call ends.
    /// Unary calls are let finish. Streams are ended now with UNAVAILABLE: the watches never end
    /// by themselves, so they would hold every shutdown for its whole grace period, and each
    /// resumes from its last position on another connection.
    func beginDrain() {
        guard let context, !draining else { return }
        draining = true
        context.write(
            wrapOutboundOut(FrameBytes.status(.goaway, callId: 0, RPCError(.unavailable, "server is shutting down"))),
            promise: nil)
        for (callId, call) in calls where call.isStream {
            calls[callId] = nil
            // The handler's own record of the call says CANCELLED (it was cancelled); this
            // counts what the client was told.
            metrics.endedByShutdown()
            end(callId, call, RPCError(.unavailable, "server is shutting down; reopen the stream from where it ended"), context: context)
        }
        context.flush()
        closeIfDrained(context: context)
    }

    /// The end of the shutdown grace period: every call still in flight is answered UNAVAILABLE
    /// (the client would otherwise see only the connection drop), and the connection closes once
    /// that is written, or a moment later for a peer that is not reading.
    func abortRemainingCalls() {
        guard let context, !closed else { return }
        draining = true
        closing = true
        for (callId, call) in calls {
            metrics.endedByShutdown()
            end(callId, call, RPCError(.unavailable, "server shut down before the call finished"), context: context)
        }
        calls.removeAll()
        context.channel.closeAfterPendingWrites(forcedAfter: .seconds(1))
    }

    /// Closes once draining and nothing is in flight, after what is queued has been written:
    /// a close drops writes still pending, and those are the last calls' answers. A peer too
    /// slow to take them meets the write-stall timer, and a shutdown its grace period.
    private func closeIfDrained(context: ChannelHandlerContext) {
        guard draining, calls.isEmpty, !closing else { return }
        closing = true
        context.channel.closeAfterPendingWrites(forcedAfter: nil)
    }

    private func goAway(context: ChannelHandlerContext, _ error: RPCError) {
        // The first reason is the one the peer hears; the idle timer keeps firing meanwhile.
        guard !goingAway else { return }
        goingAway = true
        logger.debug("goaway", metadata: ["peer": "\(peer)", "reason": "\(error)"])
        metrics.goAway(error.code)
        context.channel.writeGoAwayAndClose(FrameBytes.status(.goaway, callId: 0, error))
    }
}

/// One call's work, run in its own task: the handler, then its final frame
/// into the outbox, then metrics and the call's log line.
struct ServerCallJob: Sendable {
    let handler: ErasedHandler
    let payload: [UInt8]
    let context: ServerContext
    let outbox: FrameOutbox
    let maxFrameLength: Int
    let metrics: RPCServerMetrics
    let logger: Logger

    /// Codes that say the server (or something behind it) failed rather than the caller: their
    /// call line is logged at warning, every other call's at debug.
    static let serverFaults: Set<RPCError.Code> = [.unknown, .internal, .dataLoss, .unavailable, .deadlineExceeded]

    func run() async {
        let started = ContinuousClock.now
        var (code, failure) = await ServerContext.$current.withValue(context) {
            await runHandler()
        }
        let now = ContinuousClock.now
        let elapsed = now - started
        // The connection already answered DEADLINE_EXCEEDED and cancelled the task.
        if code == .cancelled, let deadline = context.deadline, now >= deadline { code = .deadlineExceeded }
        metrics.callFinished(context.method, code, elapsed)
        let level: Logger.Level = Self.serverFaults.contains(code) ? .warning : .debug
        if logger.logLevel <= level {
            var metadata: Logger.Metadata = [
                "call_id": "\(context.callId)", "method": "\(context.method)", "status": "\(code)",
                "duration_us": "\(elapsed.nanoseconds / 1000)", "peer": "\(context.peer)",
            ]
            if let failure { metadata["error"] = "\(failure)" }
            logger.log(level: level, "call", metadata: metadata)
        }
    }

    /// Runs one handler to completion and queues its final frame. Returns the status code sent
    /// and, when the handler threw, what it threw (for the log: an `INTERNAL` answer hides it).
    private func runHandler() async -> (RPCError.Code, (any Error)?) {
        let callId = context.callId
        switch handler {
        case .unary(let body):
            do {
                let response = try await body(payload, context)
                let frame = V1.Frame(callId: callId, kind: .response, payload: response, status: V1.Status(code: .ok))
                do {
                    outbox.enqueue(.init(callId: callId, bytes: try FrameBytes.encode(frame, maxFrameLength: maxFrameLength), ends: true))
                    return (.ok, nil)
                } catch {
                    let error = RPCError(.resourceExhausted, "response of \(response.count) bytes exceeds the frame limit")
                    outbox.enqueue(.init(callId: callId, bytes: FrameBytes.status(.response, callId: callId, error), ends: true))
                    return (error.code, error)
                }
            } catch {
                let status = RPCRouter.handlerStatus(for: error)
                outbox.enqueue(.init(callId: callId, bytes: FrameBytes.status(.response, callId: callId, status), ends: true))
                return (status.code, error)
            }
        case .serverStreaming(let body):
            let status: RPCError
            var failure: (any Error)?
            do {
                try await body(payload, context) { message in
                    try Task.checkCancellation()
                    await outbox.waitForRoom()
                    try Task.checkCancellation()
                    // A closed connection's outbox drops what it is given; the stream is over.
                    guard !outbox.isClosed else { throw CancellationError() }
                    let frame = V1.Frame(callId: callId, kind: .streamMessage, payload: message)
                    outbox.enqueue(.init(callId: callId, bytes: try FrameBytes.encode(frame, maxFrameLength: maxFrameLength), ends: false))
                }
                status = RPCError(.ok, "")
            } catch {
                status = RPCRouter.handlerStatus(for: error)
                failure = error
            }
            outbox.enqueue(.init(callId: callId, bytes: FrameBytes.status(.streamEnd, callId: callId, status), ends: true))
            return (status.code, failure)
        }
    }
}
