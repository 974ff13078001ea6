/// How an RPC server listens and what it tolerates. The defaults suit production; tests shrink
/// the timeouts and limits.
public struct RPCServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port; ``RPCServer/start()`` reports the one bound.
    public var port = 0
    /// Largest frame accepted; a larger length prefix is answered with GOAWAY and a close.
    public var maxFrameLength = 4 * 1024 * 1024
    /// Calls in flight on one connection; the excess is answered `RESOURCE_EXHAUSTED`.
    public var maxConcurrentCallsPerConnection = 1024
    /// A call's metadata: at most this many entries, and this many bytes of keys and values.
    /// A call over either is answered `INVALID_ARGUMENT`: metadata lives as long as its call.
    public var maxMetadataEntries = 64
    public var maxMetadataBytes = 16 * 1024
    /// Open connections per process; the excess gets GOAWAY `RESOURCE_EXHAUSTED` and a close.
    public var maxConnections = 4096
    /// A connection with nothing in flight and no frame received for this long is closed.
    public var idleTimeout: Duration = .seconds(300)
    /// A frame started but not finished within this long closes the connection (slow-loris).
    public var partialFrameTimeout: Duration = .seconds(10)
    /// A connection that cannot take writes (its peer stopped reading) for this long without a
    /// break is closed: its calls can neither be answered nor time out as idle.
    public var writeStallTimeout: Duration = .seconds(30)
    /// How long shutdown waits for calls in flight before closing connections anyway.
    public var shutdownGracePeriod: Duration = .seconds(30)
    /// Where handlers run: on their connection's event loop (the default, see
    /// `EventLoopTaskExecutor`), or on the global concurrent executor for handlers that may block.
    public var handlersOnEventLoop = true
    /// The executable's name, reported by `health.check`.
    public var serverName = "platos"

    public init() {}

    public init(host: String = "127.0.0.1", port: Int = 0, serverName: String = "platos") {
        self.host = host
        self.port = port
        self.serverName = serverName
    }
}
