// The closed-loop load driver and the report format shared by every client in `make bench-rpc`.
// Benchmarks/GRPCReference/Sources/GRPCReference/LoadRunner.swift is a symlink to this file (the
// reference is a separate package so that the main build does not pay for grpc-swift), so every
// system is measured and printed by the same code.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Histogram

/// Nanoseconds on the monotonic clock (vDSO, no syscall).
@inline(__always)
func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// One worker's measurements.
struct LoadSample: Sendable {
    var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    var calls: UInt64 = 0
    var errors: UInt64 = 0
}

struct LoadReport: Sendable {
    var target: String
    var mode: String
    var inFlight: Int
    var seconds: Double
    var sample: LoadSample

    var requestsPerSecond: Double { Double(sample.calls) / seconds }

    func micros(_ percentile: Double) -> Double { Double(sample.histogram.valueAtPercentile(percentile)) / 1000 }

    /// The human line, then the one line `scripts/bench-rpc.sh` parses.
    func print() {
        func f(_ x: Double, _ digits: Int = 1) -> String {
            var scale = 1.0
            for _ in 0..<digits { scale *= 10 }
            let r = (x * scale).rounded() / scale
            return "\(r)"
        }
        Swift.print(
            "\(target) \(mode): \(sample.calls) calls in \(f(seconds, 2)) s = \(f(requestsPerSecond, 0)) req/s, "
                + "p50 \(f(micros(50))) µs, p99 \(f(micros(99))) µs, p99.9 \(f(micros(99.9))) µs, "
                + "max \(f(Double(sample.histogram.max) / 1000)) µs, errors \(sample.errors)")
        Swift.print(
            "BENCH target=\(target) mode=\(mode) inflight=\(inFlight) calls=\(sample.calls) seconds=\(f(seconds, 3)) "
                + "rps=\(f(requestsPerSecond, 1)) p50_us=\(f(micros(50), 2)) p99_us=\(f(micros(99), 2)) "
                + "p999_us=\(f(micros(99.9), 2)) max_us=\(f(Double(sample.histogram.max) / 1000, 2)) errors=\(sample.errors)")
    }
}

/// The two modes of the benchmark.
enum LoadMode: String, Sendable {
    case seq, inflight64

    var inFlight: Int { self == .seq ? 1 : 64 }
}

/// Closed loop: `inFlight` workers, each issuing its next call as soon as the previous one
/// returns, for `warmup` seconds unmeasured and then `seconds` measured. A call counts when it
/// starts inside the measured window; its latency goes into the worker's HdrHistogram. The
/// workers run on `executor` when one is given, else on the global executor.
func runClosedLoop(
    inFlight: Int, warmup: Double, seconds: Double, executor: (any TaskExecutor)? = nil,
    call: @escaping @Sendable () async throws -> Void
) async -> (LoadSample, Double) {
    let start = nowNanos()
    let measureFrom = start + UInt64(warmup * 1e9)
    let measureUntil = measureFrom + UInt64(seconds * 1e9)
    var total = LoadSample()
    await withTaskGroup(of: LoadSample.self) { group in
        for _ in 0..<inFlight {
            group.addTask(executorPreference: executor) {
                var sample = LoadSample()
                while true {
                    let t0 = nowNanos()
                    if t0 >= measureUntil { break }
                    var failed = false
                    do { try await call() } catch { failed = true }
                    let t1 = nowNanos()
                    if t0 >= measureFrom {
                        if failed {
                            sample.errors += 1
                        } else {
                            sample.calls += 1
                            _ = sample.histogram.record(t1 - t0)
                        }
                    }
                }
                return sample
            }
        }
        for await sample in group {
            total.histogram.add(sample.histogram)
            total.calls += sample.calls
            total.errors += sample.errors
        }
    }
    return (total, seconds)
}

/// `--name value` options and the first positional word.
struct Arguments {
    let command: String
    private var options: [String: String] = [:]

    init(_ argv: [String]) {
        var rest = argv.dropFirst()
        command = rest.first ?? "help"
        rest = rest.dropFirst()
        while let key = rest.first, key.hasPrefix("--") {
            rest = rest.dropFirst()
            options[String(key.dropFirst(2))] = rest.first ?? ""
            rest = rest.dropFirst()
        }
    }

    func string(_ name: String, _ fallback: String) -> String { options[name] ?? fallback }
    func int(_ name: String, _ fallback: Int) -> Int { options[name].flatMap(Int.init) ?? fallback }
    func double(_ name: String, _ fallback: Double) -> Double { options[name].flatMap(Double.init) ?? fallback }
}

/// The request payload of every system: 64 printable bytes.
let benchPayload: [UInt8] = Array("platos-bench-rpc-64-byte-payload-0123456789abcdefghijklmnopqrstu".utf8)
