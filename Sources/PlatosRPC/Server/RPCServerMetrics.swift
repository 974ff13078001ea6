import CoreMetrics
import NIOConcurrencyHelpers
import Synchronization

/// The server's swift-metrics instruments. Dimensioned counters are created once per
/// (method, code) and cached, so the per-call cost is a dictionary lookup, not a factory call.
///
/// - `rpc_server_calls_total{server,method,code}`: calls answered by a handler;
/// - `rpc_server_errors_total{server,code}`: every call answered with a status other than OK,
///   including those refused before a handler ran (unknown method, too many in flight);
/// - `rpc_server_call_duration_seconds{server,method}`: handler latency histogram;
/// - `rpc_server_calls_in_flight{server}`, `rpc_server_connections{server}`: gauges;
/// - `rpc_server_events_total{server,event,code}`: rejections, cancellations, deadlines, GOAWAYs,
///   connections closed because their peer stopped reading (`write_stall`) or answered no PING
///   (`ping_timeout`), calls the server ended at a shutdown (`shutdown`: streams at its start,
///   every call left at the end of its grace period).
final class RPCServerMetrics: Sendable {
    private let label: String
    private let inFlight: Gauge
    private let connections: Gauge
    private let inFlightCount = Atomic<Int>(0)
    private let connectionCount = Atomic<Int>(0)
    private let instruments = NIOLockedValueBox([InstrumentKey: (calls: Counter, latency: Timer)]())
    private let errorCounters = NIOLockedValueBox([String: Counter]())
    private let errorsByCode = NIOLockedValueBox([Int32: Counter]())

    /// Per-call lookups use this instead of a formatted string: no allocation on the hot path.
    private struct InstrumentKey: Hashable {
        let method: String
        let code: Int32
    }

    init(server: String) {
        label = server
        inFlight = Gauge(label: "rpc_server_calls_in_flight", dimensions: [("server", server)])
        connections = Gauge(label: "rpc_server_connections", dimensions: [("server", server)])
    }

    func connectionOpened() {
        connections.record(connectionCount.add(1, ordering: .relaxed).newValue)
    }

    func connectionClosed() {
        connections.record(connectionCount.subtract(1, ordering: .relaxed).newValue)
    }

    func callStarted() {
        inFlight.record(inFlightCount.add(1, ordering: .relaxed).newValue)
    }

    func callFinished(_ method: String, _ code: RPCError.Code, _ elapsed: Duration) {
        inFlight.record(inFlightCount.subtract(1, ordering: .relaxed).newValue)
        let key = InstrumentKey(method: method, code: code.wire.protoValue)
        let pair = instruments.withLockedValue { cache in
            if let existing = cache[key] { return existing }
            let made = (
                Counter(label: "rpc_server_calls_total", dimensions: [("server", label), ("method", method), ("code", "\(code)")]),
                Timer(label: "rpc_server_call_duration_seconds", dimensions: [("server", label), ("method", method)])
            )
            cache[key] = made
            return made
        }
        pair.calls.increment()
        pair.latency.recordNanoseconds(elapsed.nanoseconds)
        if code != .ok { countError(code) }
    }

    private func countError(_ code: RPCError.Code) {
        errorsByCode.withLockedValue { cache in
            if let c = cache[code.wire.protoValue] { return c }
            let c = Counter(label: "rpc_server_errors_total", dimensions: [("server", label), ("code", "\(code)")])
            cache[code.wire.protoValue] = c
            return c
        }.increment()
    }

    func callRejected(_ method: String, _ code: RPCError.Code) {
        error("rejected", code)
        countError(code)
    }
    func callCancelled() { error("cancelled", .cancelled) }
    func deadlineExceeded() { error("deadline", .deadlineExceeded) }
    func goAway(_ code: RPCError.Code) { error("goaway", code) }
    func writeStalled() { error("write_stall", .unavailable) }
    func pingTimedOut() { error("ping_timeout", .unavailable) }
    func endedByShutdown() {
        error("shutdown", .unavailable)
        countError(.unavailable)
    }

    private func error(_ kind: String, _ code: RPCError.Code) {
        let key = "\(kind)|\(code)"
        errorCounters.withLockedValue { cache in
            if let c = cache[key] { return c }
            let c = Counter(label: "rpc_server_events_total", dimensions: [("server", label), ("event", kind), ("code", "\(code)")])
            cache[key] = c
            return c
        }.increment()
    }
}
