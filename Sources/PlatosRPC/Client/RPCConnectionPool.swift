import NIOConcurrencyHelpers
import Synchronization
import NIOCore
import NIOPosix
import PlatosProto

/// A few connections to one endpoint, reconnected with exponential backoff and jitter.
///
/// While an endpoint is down, calls fail fast with `UNAVAILABLE` (no hang until the deadline):
/// one connect attempt at a time per slot, and none inside the backoff window. Idempotent
/// methods are retried on `UNAVAILABLE`, a bounded number of times, within their deadline; so
/// is any call refused before it started (``RPCError/notStarted(_:)``, a draining server's
/// answer), whatever its method.
public final class RPCConnectionPool: RPCTransport {
    private enum Slot {
        case empty(attempt: Int, retryAt: ContinuousClock.Instant)
        case connecting(EventLoopFuture<RPCConnection>)
        /// Made at `since`, on connect attempt `attempt` (0 for the first after a success).
        case ready(RPCConnection, attempt: Int, since: ContinuousClock.Instant)
        /// The pool was closed: no calls, no connections, for good.
        case closed
    }

    /// How long a connection must have been up for its loss to say nothing against the
    /// endpoint (see ``connection(deadline:)``).
    static let provenAfter: Duration = .seconds(1)

    public let host: String
    public let port: Int
    public let configuration: RPCClientConfiguration
    /// The group's loops, in a fixed order: slot `i` connects on `loops[i % loops.count]`.
    private let loops: [any EventLoop]
    private let slots: NIOLockedValueBox<[Slot]>
    private let nextSlot = Atomic<Int>(0)
    /// Calls sleeping out a backoff before a retry (for tests that act in that window).
    private let waitingToRetry = Atomic<Int>(0)
    var callsWaitingToRetry: Int { waitingToRetry.load(ordering: .relaxed) }

    public init(
        host: String, port: Int, configuration: RPCClientConfiguration = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.configuration = configuration
        var loops: [any EventLoop] = []
        for loop in group.makeIterator() { loops.append(loop) }
        self.loops = loops.isEmpty ? [group.next()] : loops
        slots = NIOLockedValueBox(
            Array(repeating: .empty(attempt: 0, retryAt: .now), count: max(1, configuration.connections)))
    }

    /// A usable connection, connecting or reconnecting as needed.
    ///
    /// Called from an event loop (a server handler making a downstream call), it prefers a ready
    /// connection on that same loop: the request is then written and the response read on the
    /// thread the handler resumes on, with no wake-up of another thread either way. Slot `i`
    /// connects on the group's loop `i mod loops`, so every loop has connections of its own.
    ///
    /// A caller waiting for a connection still being made stops waiting at `deadline`
    /// (`DEADLINE_EXCEEDED`) or when its task is cancelled; the connect itself goes on for the
    /// calls after it.
    public func connection(deadline: ContinuousClock.Instant? = nil) async throws -> RPCConnection {
        let count = configuration.connections.clamped(min: 1)
        let index = count == 1 ? 0 : nextSlot.add(1, ordering: .relaxed).oldValue % count
        let currentLoop = count == 1 ? nil : MultiThreadedEventLoopGroup.currentEventLoop
        enum Next {
            case use(RPCConnection)
            case wait(EventLoopFuture<RPCConnection>)
            case fail(RPCError)
        }
        let next = slots.withLockedValue { slots -> Next in
            if let currentLoop {
                for k in 0..<count {
                    let i = (index + k) % count
                    if case .ready(let connection, _, _) = slots[i], connection.channel.eventLoop === currentLoop,
                        connection.isUsable
                    {
                        return .use(connection)
                    }
                }
            }
            var attempt = 0
            switch slots[index] {
            case .ready(let connection, _, _) where connection.isUsable:
                return .use(connection)
            case .connecting(let future):
                return .wait(future)
            case .empty(let tried, let retryAt):
                if tried > 0, ContinuousClock.now < retryAt {
                    let ms = (retryAt - .now).milliseconds
                    return .fail(RPCError(.unavailable, "\(host):\(port) is unreachable; next connect attempt in \(ms) ms"))
                }
                attempt = tried
            case .ready(_, let made, let since):
                // A connection that served for a while proved the endpoint: replace it at once.
                // One that died right after it was made (a server at its connection limit, or
                // draining, accepts and then closes) counts as a failed attempt, so that the pool
                // backs off instead of opening a connection per call against a refusing server.
                guard ContinuousClock.now - since < Self.provenAfter else { break }
                let retryAt = since + configuration.backoff(attempt: made)
                if ContinuousClock.now < retryAt {
                    let ms = (retryAt - .now).milliseconds
                    return .fail(
                        RPCError(.unavailable, "\(host):\(port) closed the connection right after accepting it; next connect attempt in \(ms) ms"))
                }
                attempt = made + 1
            case .closed:
                return .fail(RPCError(.unavailable, "the connection pool for \(host):\(port) is closed"))
            }
            let future = startConnect(index: index, attempt: attempt)
            slots[index] = .connecting(future)
            return .wait(future)
        }
        switch next {
        case .use(let connection): return connection
        case .fail(let error): throw error
        case .wait(let future):
            do {
                return try await Self.wait(for: future, until: deadline, "connecting to \(host):\(port)")
            } catch let error as RPCError {
                throw error
            } catch {
                throw RPCError(.unavailable, "cannot connect to \(host):\(port): \(error)")
            }
        }
    }

    /// `future`'s connection, or `DEADLINE_EXCEEDED` at `deadline`, or `CANCELLED` when the
    /// waiting task is cancelled, whichever comes first.
    private static func wait(
        for future: EventLoopFuture<RPCConnection>, until deadline: ContinuousClock.Instant?, _ what: String
    ) async throws -> RPCConnection {
        let loop = future.eventLoop
        let promise = loop.makePromise(of: RPCConnection.self)
        let timer = deadline.map { deadline in
            loop.scheduleTask(deadline: NIODeadline(deadline)) {
                promise.fail(RPCError(.deadlineExceeded, "deadline exceeded while \(what)"))
            }
        }
        future.whenComplete { _ in timer?.cancel() }
        // The first to complete the promise wins; NIO ignores the later completions.
        future.cascade(to: promise)
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.fail(RPCError(.cancelled, "the call was cancelled while \(what)"))
        }
    }

    private func startConnect(index: Int, attempt: Int) -> EventLoopFuture<RPCConnection> {
        let loop = loops[index % loops.count]
        let promise = loop.makePromise(of: RPCConnection.self)
        let (host, port, configuration) = (self.host, self.port, self.configuration)
        promise.completeWithTask {
            try await RPCConnection.connect(host: host, port: port, configuration: configuration, group: loop)
        }
        promise.futureResult.whenComplete { [slots] result in
            let closedMeanwhile = slots.withLockedValue { slots -> Bool in
                if case .closed = slots[index] { return true }
                switch result {
                case .success(let connection): slots[index] = .ready(connection, attempt: attempt, since: .now)
                case .failure:
                    slots[index] = .empty(attempt: attempt + 1, retryAt: .now + configuration.backoff(attempt: attempt))
                }
                return false
            }
            // Connected after the pool was closed: nobody will use or close this connection.
            if closedMeanwhile, case .success(let connection) = result {
                connection.channel.close(promise: nil)
            }
        }
        return promise.futureResult
    }

    public func unary(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8] {
        var attempt = 0
        while true {
            do {
                let connection = try await connection(deadline: deadline)
                return try await connection.unary(method: method.name, payload: payload, metadata: metadata, deadline: deadline)
            } catch let error as RPCError
                where error.code == .unavailable && (method.idempotent || error.wasNotStarted)
                    && attempt < configuration.maxRetries && !isClosed
            {
                let pause = configuration.backoff(attempt: attempt)
                if let deadline, ContinuousClock.now + pause >= deadline { throw error }
                attempt += 1
                let unavailable = error
                waitingToRetry.add(1, ordering: .relaxed)
                defer { waitingToRetry.subtract(1, ordering: .relaxed) }
                do {
                    try await Task.sleep(for: pause)
                } catch {
                    // Transports throw RPCError for every failure, cancellation included.
                    throw RPCError(.cancelled, "the call was cancelled while waiting to retry after: \(unavailable.message)")
                }
            }
        }
    }

    public func serverStreaming(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        let pool = self
        let box = LazyIteratorBox {
            try await pool.connection(deadline: deadline).serverStreaming(
                method: method.name, payload: payload, metadata: metadata, deadline: deadline)
        }
        return AsyncThrowingStream(unfolding: { try await box.next() })
    }

    /// True after ``close()``, which closes every slot at once. A closed pool's `UNAVAILABLE` is
    /// final: retrying it would only wait out the backoff.
    private var isClosed: Bool {
        slots.withLockedValue { slots in
            if case .closed = slots[0] { return true }
            return false
        }
    }

    /// Closes every connection, for good: calls still waiting fail with `UNAVAILABLE`, and so does
    /// every later call, retries included (a retry must not open a connection nobody closes). A
    /// connection still being made is closed as soon as it is up.
    public func close() async {
        let connections = slots.withLockedValue { slots -> [RPCConnection] in
            defer { slots = slots.map { _ in .closed } }
            return slots.compactMap { if case .ready(let c, _, _) = $0 { return c } else { return nil } }
        }
        for connection in connections { await connection.close() }
    }
}

extension Int {
    fileprivate func clamped(min lower: Int) -> Int { Swift.max(self, lower) }
}

/// Opens the stream on first use (connecting needs `await`), then hands out its elements. Advanced
/// only by the single consumer of the stream it feeds, one `next()` at a time, which is why the
/// unchecked Sendable is safe.
final class LazyIteratorBox: @unchecked Sendable {
    private let open: @Sendable () async throws -> AsyncThrowingStream<[UInt8], any Error>
    private var iterator: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator?

    init(open: @escaping @Sendable () async throws -> AsyncThrowingStream<[UInt8], any Error>) {
        self.open = open
    }

    func next() async throws -> [UInt8]? {
        if iterator == nil { iterator = try await open().makeAsyncIterator() }
        return try await iterator!.next()
    }
}
