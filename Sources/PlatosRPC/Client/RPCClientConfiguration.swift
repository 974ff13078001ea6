/// How a client connects, keeps connections alive and retries.
public struct RPCClientConfiguration: Sendable {
    /// Connections the pool keeps to its endpoint; calls are spread across them.
    public var connections = 1
    public var connectTimeout: Duration = .seconds(2)
    public var maxFrameLength = 4 * 1024 * 1024
    /// A PING is sent after this long without reading anything from the server (what this side
    /// writes proves nothing about the peer); no PONG within `keepaliveTimeout` closes the
    /// connection (and fails its calls with `UNAVAILABLE`).
    public var keepaliveInterval: Duration = .seconds(30)
    public var keepaliveTimeout: Duration = .seconds(10)
    /// Reconnect backoff: exponential from `initialBackoff` to `maxBackoff`, ±`jitter` (a fraction).
    public var initialBackoff: Duration = .milliseconds(50)
    public var maxBackoff: Duration = .seconds(2)
    public var backoffMultiplier = 1.6
    public var jitter = 0.2
    /// Retries of an idempotent call that failed with `UNAVAILABLE`.
    public var maxRetries = 2
    /// Messages, and their bytes, a server stream may hold that its reader has not taken yet
    /// (``StreamInbox``). One reader that falls further behind has its stream ended with
    /// `RESOURCE_EXHAUSTED` (after the messages it holds) and cancelled on the server, rather
    /// than this process buffering for it without limit; the connection's other calls go on. The
    /// caller then reopens it where it stopped (watch streams take an `after_*` position).
    public var maxBufferedStreamMessages = 16_384
    public var maxBufferedStreamBytes = 8 * 1024 * 1024

    public init() {}

    var streamInboxLimits: StreamInbox.Limits {
        StreamInbox.Limits(maxMessages: maxBufferedStreamMessages, maxBytes: maxBufferedStreamBytes)
    }

    /// The wait before reconnect attempt `attempt` (0-based), with jitter.
    func backoff(attempt: Int) -> Duration {
        let base = Double(initialBackoff.nanoseconds) * pow(backoffMultiplier, Double(attempt))
        let capped = min(base, Double(maxBackoff.nanoseconds))
        let jittered = capped * (1 + Double.random(in: -jitter...jitter))
        return .nanoseconds(Int64(max(0, jittered)))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Foundation
#endif
