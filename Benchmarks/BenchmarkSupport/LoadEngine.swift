// The load engine behind `platos-load` and the benchmarks that drive it: `callers` concurrent
// tasks, either closed loop (each issues its next call when the previous one returns) or paced
// (a fixed total rate, spread evenly over the callers), a warm-up that is not measured, then a
// measured window; latencies go into HdrHistograms (nanoseconds, 3 significant digits).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Histogram
import PlatosRPC

/// Nanoseconds on the monotonic clock.
@inline(__always)
public func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A small deterministic generator (SplitMix64): each caller gets its own, so runs repeat.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// How the callers are driven.
public struct LoadPlan: Sendable {
    public var callers: Int
    /// Seconds of calls that are made but not measured.
    public var warmup: Double
    /// Seconds measured.
    public var seconds: Double
    /// Total calls per second over all callers (paced); nil for a closed loop.
    public var rate: Double?

    public init(callers: Int, warmup: Double, seconds: Double, rate: Double? = nil) {
        self.callers = callers
        self.warmup = warmup
        self.seconds = seconds
        self.rate = rate
    }
}

/// Latencies of one kind of call (the whole operation, or one leg of it).
public struct LatencySeries: Sendable {
    public let name: String
    public var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    public var calls: UInt64 = 0
    public var errors: UInt64 = 0
    /// Failed calls by status code (`UNAVAILABLE`, ...; `other` for errors that are not RPC errors).
    public var errorsByCode: [String: UInt64] = [:]

    public init(name: String) { self.name = name }

    mutating func record(_ nanos: UInt64) {
        calls += 1
        _ = histogram.record(nanos)
    }

    mutating func fail(_ error: any Error) {
        errors += 1
        let code = (error as? RPCError).map { "\($0.code)" } ?? "other"
        errorsByCode[code, default: 0] += 1
    }

    mutating func add(_ other: LatencySeries) {
        histogram.add(other.histogram)
        calls += other.calls
        errors += other.errors
        for (code, n) in other.errorsByCode { errorsByCode[code, default: 0] += n }
    }

    /// Microseconds at `percentile` (0–100).
    public func micros(_ percentile: Double) -> Double {
        calls == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
    }

    public var maxMicros: Double { calls == 0 ? 0 : Double(histogram.max) / 1000 }
}

/// Times of the legs of one operation (for an operation made of several calls), recorded only
/// when the whole operation succeeds.
public struct LegTimes: Sendable {
    var nanos: [UInt64]
    public init(count: Int) { nanos = Array(repeating: 0, count: count) }

    public mutating func record(leg: Int, nanos value: UInt64) { nanos[leg] = value }
    mutating func reset() {
        for i in nanos.indices { nanos[i] = 0 }
    }
}

/// What a run measured.
public struct LoadReport: Sendable {
    public var plan: LoadPlan
    /// `series[0]` is the operation; the rest are its legs, if it has any.
    public var series: [LatencySeries]
    /// Paced runs: calls that started more than 1 ms after their slot because the caller's
    /// previous call had not returned (their latency counts from the slot, not the start).
    public var lateStarts: UInt64 = 0

    public var operation: LatencySeries { series[0] }
    public var perSecond: Double { Double(operation.calls) / plan.seconds }
}

/// An operation: `caller` is the caller's index, `rng` its own generator, `legs` where an
/// operation made of several calls records each one's time (leg `i` is `series[i + 1]`).
public typealias LoadOperation = @Sendable (_ caller: Int, _ rng: inout SplitMix64, _ legs: inout LegTimes) async throws -> Void

/// Runs `operation` under `plan`. `legNames` names the legs the operation records, if any.
public func runLoad(plan: LoadPlan, name: String, legNames: [String] = [], operation: @escaping LoadOperation) async
    -> LoadReport
{
    let callers = max(1, plan.callers)
    let start = nowNanos() + 2_000_000
    let measureFrom = start + UInt64(plan.warmup * 1e9)
    let measureUntil = measureFrom + UInt64(plan.seconds * 1e9)
    let interval = plan.rate.map { UInt64(Double(callers) / max($0, 0.001) * 1e9) }
    let names = [name] + legNames

    struct CallerResult: Sendable {
        var series: [LatencySeries]
        var late: UInt64 = 0
    }
    var report = LoadReport(plan: plan, series: names.map(LatencySeries.init(name:)))
    await withTaskGroup(of: CallerResult.self) { group in
        for caller in 0..<callers {
            group.addTask {
                var result = CallerResult(series: names.map(LatencySeries.init(name:)))
                var rng = SplitMix64(seed: UInt64(caller) &* 0x1000_0001 &+ 0x5eed)
                var legs = LegTimes(count: legNames.count)
                // Paced: caller i's slots are `interval` apart, offset so the callers interleave.
                var slot = start + (interval.map { $0 / UInt64(callers) * UInt64(caller) } ?? 0)
                var previousEnd: UInt64 = 0
                while true {
                    var t0 = nowNanos()
                    if interval != nil {
                        if slot >= measureUntil { break }
                        if previousEnd > slot {
                            // Behind: the call is as late as the previous one made it.
                            if previousEnd - slot > 1_000_000, slot >= measureFrom { result.late += 1 }
                            t0 = slot
                        } else {
                            if slot > t0 { try? await Task.sleep(for: .nanoseconds(Int64(slot - t0))) }
                            t0 = nowNanos()
                        }
                    } else if t0 >= measureUntil {
                        break
                    }
                    let measured = (interval == nil ? t0 : slot) >= measureFrom
                    legs.reset()
                    do {
                        try await operation(caller, &rng, &legs)
                        let t1 = nowNanos()
                        previousEnd = t1
                        if measured {
                            result.series[0].record(t1 - t0)
                            for (i, nanos) in legs.nanos.enumerated() { result.series[i + 1].record(nanos) }
                        }
                    } catch {
                        previousEnd = nowNanos()
                        if measured { result.series[0].fail(error) }
                    }
                    if let interval { slot += interval }
                }
                return result
            }
        }
        for await result in group {
            for i in report.series.indices { report.series[i].add(result.series[i]) }
            report.lateStarts += result.late
        }
    }
    return report
}

extension LoadReport {
    /// One human line per series.
    public func humanLines() -> [String] {
        series.map { s in
            var line =
                "\(s.name): \(s.calls) ok, \(fixed(Double(s.calls) / plan.seconds, 0))/s, "
                + "p50 \(us(s.micros(50))), p90 \(us(s.micros(90))), p99 \(us(s.micros(99))), "
                + "p99.9 \(us(s.micros(99.9))), max \(us(s.maxMicros))"
            if s.errors > 0 {
                line += ", errors \(s.errors) (" + s.errorsByCode.sorted { $0.key < $1.key }
                    .map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
            }
            return line
        }
    }

    /// One machine-readable `LOAD key=value ...` line per series; `parseLoadLine` reads them back.
    public func machineLines(label: String) -> [String] {
        series.map { s in
            "LOAD label=\(label) series=\(s.name) calls=\(s.calls) errors=\(s.errors) seconds=\(fixed(plan.seconds, 3)) "
                + "rps=\(fixed(Double(s.calls) / plan.seconds, 1)) p50_us=\(fixed(s.micros(50), 1)) "
                + "p90_us=\(fixed(s.micros(90), 1)) p99_us=\(fixed(s.micros(99), 1)) "
                + "p999_us=\(fixed(s.micros(99.9), 1)) max_us=\(fixed(s.maxMicros, 1)) late=\(lateStarts)"
        }
    }
}

/// A `LOAD ...` line as key/value pairs, or nil for any other line.
public func parseLoadLine(_ line: Substring) -> [String: String]? {
    guard line.hasPrefix("LOAD ") else { return nil }
    var fields: [String: String] = [:]
    for pair in line.dropFirst(5).split(separator: " ") {
        guard let eq = pair.firstIndex(of: "=") else { continue }
        fields[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
    }
    return fields
}

/// `x` with `digits` decimals, without Foundation.
public func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(x) * scale).rounded()
    let whole = Int(scaled / scale)
    var text = (x < 0 && scaled != 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let frac = Int(scaled - Double(whole) * scale)
        let fracText = String(frac)
        text += "." + String(repeating: "0", count: digits - fracText.count) + fracText
    }
    return text
}

/// Microseconds, or milliseconds once above 10 ms.
public func us(_ micros: Double) -> String {
    micros >= 10_000 ? "\(fixed(micros / 1000, 2)) ms" : "\(fixed(micros, 0)) µs"
}
