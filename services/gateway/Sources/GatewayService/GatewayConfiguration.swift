import PlatosRPC
import PlatosService

/// Where the backends are and how the gateway treats callers.
public struct GatewayConfiguration: Sendable {
    public var registry = RPCEndpoint(host: "127.0.0.1", port: 7401)
    public var memory = RPCEndpoint(host: "127.0.0.1", port: 7402)
    public var threads = RPCEndpoint(host: "127.0.0.1", port: 7403)
    /// How long a resolved token may be used without asking the registry again, while the
    /// `registry.watch` feed is connected. Without the feed nothing is reused (fail closed).
    public var principalCacheTTL: Duration = .seconds(30)
    /// Per-token rate limit: sustained calls per second, and the burst allowed above it.
    public var rateLimitPerSecond = Double(LimitOption.rateLimitPerSecond.defaultValue)
    public var rateLimitBurst = Double(LimitOption.rateLimitBurst.defaultValue)
    /// Streams and long polls one agent may hold open at once (``LiveCalls``). Each holds a call
    /// on a shared gateway-to-backend connection, whose calls in flight are bounded: without a
    /// cap one agent opening thousands of watches would starve every other tenant's calls.
    public var maxLiveCallsPerAgent = LimitOption.maxLiveCallsPerAgent.defaultValue
    /// Deadline given to a call that names none, so nothing waits forever on a backend.
    public var defaultTimeout: Duration = .seconds(30)

    public init() {}
}
