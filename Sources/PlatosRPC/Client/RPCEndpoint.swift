/// Where an RPC server listens, as people write it: `127.0.0.1:7400`, `registry:7401`,
/// `[::1]:7400`. Every flag, setting and READY line that names another process uses it.
public struct RPCEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (port 1–65535, host not empty; an IPv6 host in brackets).
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = Substring(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return nil }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension RPCConnectionPool {
    public convenience init(endpoint: RPCEndpoint, configuration: RPCClientConfiguration = RPCClientConfiguration()) {
        self.init(host: endpoint.host, port: endpoint.port, configuration: configuration)
    }
}
