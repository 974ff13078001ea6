import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// The admin HTTP port of every executable:
///
/// - `GET /metrics`: the process's metrics in the Prometheus text format (0.0.4);
/// - `GET /healthz`: `200 ok` while serving, `503 draining` once shutdown has begun;
/// - anything else: 404 (405 for another method on those two paths).
///
/// HTTP/1.1 with keep-alive. Requests are bounded (16 KiB of headers, no body beyond 4 KiB);
/// a malformed or oversized request gets a 4xx and the connection is closed, a connection
/// idle for 30 s is closed, and so is one that takes more than 10 s to send a request whose
/// first bytes have arrived (a client dripping a byte at a time would otherwise never be idle).
/// At most ``maxConnections`` are open at once (the port is for scrapers and probes, not
/// crowds: more would only hold file descriptors the RPC server needs),
/// and a connection is answered only while it takes writes, so a client that pipelines requests
/// and reads nothing holds one answer, not one per request.
///
/// As a swift-service-lifecycle `Service`, `run()` serves until the group's graceful shutdown.
public final class AdminHTTPServer: Service, Sendable {
    public let host: String
    public let requestedPort: Int
    private let registry: PrometheusCollectorRegistry
    private let isServing: @Sendable () -> Bool
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)
    public let maxConnections: Int
    private let openConnections = NIOLockedValueBox(0)

    static let maxBodyBytes = 4096
    static let idleTimeout = TimeAmount.seconds(30)
    static let requestReadTimeout = TimeAmount.seconds(10)

    /// `isServing` answers `/healthz`.
    public init(
        host: String, port: Int, registry: PrometheusCollectorRegistry,
        isServing: @escaping @Sendable () -> Bool,
        maxConnections: Int = 64,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "platos.admin")
    ) {
        self.host = host
        self.requestedPort = port
        self.registry = registry
        self.isServing = isServing
        self.maxConnections = maxConnections
        self.group = group
        self.logger = logger
    }

    /// The handlers of one admin connection (tests configure an `EmbeddedChannel` with it).
    static func configure(
        _ channel: any Channel, registry: PrometheusCollectorRegistry, isServing: @escaping @Sendable () -> Bool
    ) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 8 * 1024
        limits.maxHeaderListSize = 16 * 1024
        limits.maxHeaderFieldCount = 100
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(IdleStateHandler(readTimeout: AdminHTTPServer.idleTimeout))
        try sync.addHandler(RequestReadDeadline(timeout: AdminHTTPServer.requestReadTimeout))
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: true, withErrorHandling: true,
            withOutboundHeaderValidation: true, withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: limits)
        try sync.addHandler(AdminHTTPHandler(registry: registry, isServing: isServing))
    }

    /// Binds and starts accepting. Returns the bound address (the real port when 0 was asked for).
    @discardableResult
    public func start() async throws -> SocketAddress {
        if let existing = channel.withLockedValue({ $0 }) { return existing.localAddress! }
        let registry = self.registry
        let isServing = self.isServing
        let (openConnections, maxConnections) = (self.openConnections, self.maxConnections)
        let bound = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let admitted = openConnections.withLockedValue { open in
                    guard open < maxConnections else { return false }
                    open += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in openConnections.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    try AdminHTTPServer.configure(channel, registry: registry, isServing: isServing)
                }
            }
            .bind(host: host, port: requestedPort)
            .get()
        channel.withLockedValue { $0 = bound }
        logger.info("admin http listening", metadata: ["address": "\(bound.localAddress!)"])
        return bound.localAddress!
    }

    /// The bound port, once started.
    public var port: Int? { channel.withLockedValue { $0?.localAddress?.port } }

    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await close()
    }

    /// Stops accepting. Connections already open finish their current request and are closed
    /// by the idle timeout or by the process exiting.
    public func close() async {
        let listener = channel.withLockedValue { $0 }
        try? await listener?.close()
    }
}

/// One admin connection: answers each request once it has been read in full.
final class AdminHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let isServing: @Sendable () -> Bool
    private var request: HTTPRequestHead?
    /// A request read in full while the connection took no writes: answered once it does. The
    /// pipelining handler holds back the requests behind it and stops reading meanwhile.
    private var waiting: HTTPRequestHead?
    private var bodyBytes = 0
    /// Set once a response ended the connection early (oversized body): the rest is ignored.
    private var closing = false

    init(registry: PrometheusCollectorRegistry, isServing: @escaping @Sendable () -> Bool) {
        self.registry = registry
        self.isServing = isServing
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
            bodyBytes = 0
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            if bodyBytes > AdminHTTPServer.maxBodyBytes {
                // Answer, then close our side only and drop what else arrives until the client
                // closes (or the idle timeout): closing with its bytes unread would reset the
                // connection and could destroy the answer before the client reads it.
                closing = true
                respond(
                    context, status: .payloadTooLarge, body: "request body too large\n", head: request,
                    keepAlive: false, halfClose: true)
            }
        case .end:
            guard let head = request else { return }
            request = nil
            context.triggerUserOutboundEvent(RequestReadDeadline.RequestRead(), promise: nil)
            if context.channel.isWritable {
                route(context, head)
            } else {
                waiting = head
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let head = waiting {
            waiting = nil
            route(context, head)
        }
        context.fireChannelWritabilityChanged()
    }

    private func route(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let readOnly = head.method == .GET || head.method == .HEAD
        switch path {
        case "/metrics" where readOnly:
            respond(
                context, status: .ok, body: registry.emitToBuffer(), head: head, keepAlive: head.isKeepAlive,
                contentType: "text/plain; version=0.0.4; charset=utf-8")
        case "/healthz" where readOnly:
            let serving = isServing()
            respond(
                context, status: serving ? .ok : .serviceUnavailable, body: serving ? "ok\n" : "draining\n", head: head,
                keepAlive: head.isKeepAlive)
        case "/metrics", "/healthz":
            respond(
                context, status: .methodNotAllowed, body: "method not allowed\n", head: head, keepAlive: head.isKeepAlive,
                extraHeaders: [("Allow", "GET, HEAD")])
        default:
            respond(context, status: .notFound, body: "not found\n", head: head, keepAlive: head.isKeepAlive)
        }
    }

    private func respond(
        _ context: ChannelHandlerContext, status: HTTPResponseStatus, body: String, head: HTTPRequestHead?,
        keepAlive: Bool, halfClose: Bool = false, contentType: String = "text/plain; charset=utf-8",
        extraHeaders: [(String, String)] = []
    ) {
        respond(
            context, status: status, body: Array(body.utf8), head: head, keepAlive: keepAlive, halfClose: halfClose,
            contentType: contentType, extraHeaders: extraHeaders)
    }

    private func respond(
        _ context: ChannelHandlerContext, status: HTTPResponseStatus, body: [UInt8], head: HTTPRequestHead?,
        keepAlive: Bool, halfClose: Bool = false, contentType: String, extraHeaders: [(String, String)] = []
    ) {
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.count)")] + extraHeaders)
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let version = head?.version ?? .http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if head?.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(mode: halfClose ? .output : .all, promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Closes a connection that has sent part of a request and not the rest within `timeout`.
///
/// The idle timeout alone cannot: it restarts with every byte read, so a client sending a header
/// byte every few seconds would hold one of the port's few connection slots for ever. The clock
/// starts with the first bytes read while no request is under way and stops when the HTTP handler
/// has read a whole request (``RequestRead``, an outbound event from behind the decoder).
final class RequestReadDeadline: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Sent by the handler behind the decoder once it has read a request in full.
    struct RequestRead {}

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if deadline == nil {
            let context = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.value.eventLoop.scheduleTask(in: timeout) {
                context.value.close(promise: nil)
            }
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is RequestRead else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        deadline?.cancel()
        deadline = nil
        promise?.succeed()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}
