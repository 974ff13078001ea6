/// A `host:port` that can only be this machine: `127.0.0.1`, `::1` (`[::1]:port`) or `localhost`
/// (taken as 127.0.0.1). Load generators refuse anything else, so they cannot be aimed at
/// somebody else's server by mistake.
public struct LoopbackEndpoint: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) throws {
        switch host {
        case "127.0.0.1", "localhost": self.host = "127.0.0.1"
        case "::1", "[::1]": self.host = "::1"
        default: throw UsageError("\(host) is not a loopback address: only 127.0.0.1, ::1 and localhost are allowed")
        }
        guard (1...65535).contains(port) else { throw UsageError("port \(port) is out of range") }
        self.port = port
    }

    /// `127.0.0.1:7400`, `[::1]:7400`, `localhost:7400`, or a bare port (127.0.0.1).
    public init(_ text: String) throws {
        if let port = Int(text) {
            try self.init(host: "127.0.0.1", port: port)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            throw UsageError("'\(text)' is not host:port")
        }
        try self.init(host: String(text[..<colon]), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A mistake in how a program was called; printed with its usage.
public struct UsageError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A benchmark that could not run or measure what it set out to (a service that did not start,
/// a call that failed during seeding); printed as it is.
public struct BenchmarkFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
