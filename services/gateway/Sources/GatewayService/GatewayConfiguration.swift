/// Where the backends are and how the gateway treats callers.
public struct GatewayConfiguration: Sendable {
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `host:port`.
        public init?(_ text: String) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
            self.init(host: String(text[..<colon]), port: port)
        }

        public var description: String { "\(host):\(port)" }
    }

    public var registry = Endpoint(host: "127.0.0.1", port: 7401)
    public var memory = Endpoint(host: "127.0.0.1", port: 7402)
    public var threads = Endpoint(host: "127.0.0.1", port: 7403)
    /// How long a resolved token may be used without asking the registry again, while the
    /// `registry.watch` feed is connected. Without the feed nothing is reused (fail closed).
    public var principalCacheTTL: Duration = .seconds(30)
    /// Per-token rate limit: sustained calls per second, and the burst allowed above it.
    public var rateLimitPerSecond: Double = 1000
    public var rateLimitBurst: Double = 2000
    /// Deadline given to a call that names none, so nothing waits forever on a backend.
    public var defaultTimeout: Duration = .seconds(30)

    public init() {}
}
