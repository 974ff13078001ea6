import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PlatosProto
import ServiceLifecycle

/// Whether the server is still taking calls; shared by every connection.
final class ServerLifecycleState: Sendable {
    private let draining = NIOLockedValueBox(false)
    var isDraining: Bool { draining.withLockedValue { $0 } }
    func startDraining() { draining.withLockedValue { $0 = true } }

    /// Connection handlers in memory: counted from their init to their deinit, so that a test
    /// can tell that closed connections are freed and not only closed.
    private let handlers = NIOLockedValueBox(0)
    var liveHandlers: Int { handlers.withLockedValue { $0 } }
    func handlerCreated() { handlers.withLockedValue { $0 += 1 } }
    func handlerFreed() { handlers.withLockedValue { $0 -= 1 } }
}

/// A Platos RPC server: binds, serves a ``RPCRouter``'s methods on every connection, and shuts
/// down gracefully (GOAWAY, calls in flight finish, new ones get `UNAVAILABLE`).
///
/// As a swift-service-lifecycle `Service`, `run()` serves until the service group's graceful
/// shutdown (SIGTERM/SIGINT), then drains.
public final class RPCServer: Service, Sendable {
    public let configuration: RPCServerConfiguration
    private let router: RPCRouter
    private let group: any EventLoopGroup
    private let logger: Logger
    private let lifecycle = ServerLifecycleState()
    private let metrics: RPCServerMetrics
    private let state = NIOLockedValueBox(State())

    private struct State {
        var channel: (any Channel)?
        var connections: [ObjectIdentifier: (channel: any Channel, handler: NIOLoopBound<ServerConnectionHandler>)] = [:]
        var shutDown = false
    }

    /// `router` should not register `health.check`; the server answers it from its own state.
    public init(
        configuration: RPCServerConfiguration,
        router: RPCRouter,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "platos.rpc")
    ) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.metrics = RPCServerMetrics(server: configuration.serverName)
        var router = router
        let lifecycle = self.lifecycle
        let name = configuration.serverName
        router.register(V1.HealthService.check) { _, _ in
            V1.HealthCheckResponse(
                status: lifecycle.isDraining ? .notServing : .serving, server: name, version: PlatosVersion.current)
        }
        self.router = router
    }

    /// Binds and starts accepting. Returns the bound address (the real port when 0 was asked for).
    @discardableResult
    public func start() async throws -> SocketAddress {
        if let existing = state.withLockedValue({ $0.channel }) { return existing.localAddress! }
        let configuration = self.configuration
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // No half-closure: EOF from a peer means it is gone, and its calls are cancelled at
            // once. A client that closes its socket looks the same as one that only shuts down
            // its sending side, and serving the latter would keep every abandoned handler
            // running to its end.
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.initialize(channel) }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        state.withLockedValue { $0.channel = channel }
        logger.info("listening", metadata: ["address": "\(channel.localAddress!)", "server": "\(configuration.serverName)"])
        return channel.localAddress!
    }

    /// The bound port, once started.
    public var port: Int? { state.withLockedValue { $0.channel?.localAddress?.port } }

    /// True once shutdown has begun: new calls are refused and `health.check` says NOT_SERVING.
    public var isDraining: Bool { lifecycle.isDraining }
    /// Connection handlers still in memory (open connections, and closed ones not yet freed).
    var liveConnectionHandlers: Int { lifecycle.liveHandlers }

    private func initialize(_ channel: any Channel) throws {
        let handler = ServerConnectionHandler(
            router: router, configuration: configuration, lifecycle: lifecycle, metrics: metrics, logger: logger)
        let id = ObjectIdentifier(channel)
        let bound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        // Checked and taken under one lock: a shutdown that starts between the two would not
        // see this connection, and it would stay open, undrained, after "stopped".
        let admitted = state.withLockedValue { state -> Bool in
            guard state.connections.count < configuration.maxConnections, !state.shutDown else { return false }
            state.connections[id] = (channel, bound)
            return true
        }
        guard admitted else {
            let why = lifecycle.isDraining
                ? RPCError(.unavailable, "server is shutting down")
                : RPCError(.resourceExhausted, "server has \(configuration.maxConnections) connections, its limit")
            metrics.goAway(why.code)
            channel.writeGoAwayAndClose(FrameBytes.status(.goaway, callId: 0, why))
            return
        }
        channel.closeFuture.whenComplete { [state] _ in
            _ = state.withLockedValue { $0.connections.removeValue(forKey: id) }
        }
        let sync = channel.pipeline.syncOperations
        // Reads stop while the connection cannot take more writes: a peer that sends requests
        // or PINGs but never reads the answers fills its own socket, not this process's memory.
        try sync.addHandler(BackPressureHandler())
        try sync.addHandler(IdleStateHandler(readTimeout: .nanoseconds(configuration.idleTimeout.nanoseconds)))
        try sync.addHandler(
            ByteToMessageHandler(
                ServerFrameDecoder(
                    maxFrameLength: configuration.maxFrameLength,
                    partialFrameTimeout: configuration.partialFrameTimeout)))
        try sync.addHandler(handler)
    }

    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdownGracefully()
    }

    /// Stops accepting, sends GOAWAY on every connection, lets calls in flight finish (up to the
    /// grace period), then closes everything.
    public func shutdownGracefully() async {
        lifecycle.startDraining()
        let (listener, connections) = state.withLockedValue { state in
            state.shutDown = true
            return (state.channel, Array(state.connections.values))
        }
        try? await listener?.close()
        for connection in connections {
            connection.channel.eventLoop.execute { connection.handler.value.beginDrain() }
        }
        // Every connection's timer first: awaited one by one, a connection still closing would
        // delay the next one's end of grace.
        let grace = TimeAmount.nanoseconds(configuration.shutdownGracePeriod.nanoseconds)
        let timers = connections.map { connection in
            connection.channel.eventLoop.scheduleTask(in: grace) { connection.handler.value.abortRemainingCalls() }
        }
        for connection in connections { try? await connection.channel.closeFuture.get() }
        for timer in timers { timer.cancel() }
        logger.info("stopped", metadata: ["server": "\(configuration.serverName)"])
    }
}

extension RPCServer {
    /// Closes the listener and every connection at once, with no GOAWAY and no draining: what a
    /// client sees when the process crashes. For fault tests.
    public func closeImmediately() async {
        lifecycle.startDraining()
        let (listener, connections) = state.withLockedValue { state in
            state.shutDown = true
            return (state.channel, state.connections.values.map(\.channel))
        }
        try? await listener?.close()
        for channel in connections { try? await channel.close() }
    }
}

/// The version every process reports in `health.check`.
public enum PlatosVersion {
    public static let current = "0.1.0"
}
