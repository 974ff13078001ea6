import Foundation
import Histogram
import PlatosAuth
import PlatosProto
import PlatosRPC

/// Nanoseconds on the monotonic clock.
func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

struct LoadSample: Sendable {
    var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    var calls: UInt64 = 0
    var errors: UInt64 = 0

    func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1e6 }
}

/// Closed loop: `workers` tasks, each issuing its next call when the previous one returns;
/// `warmup` seconds unmeasured, then `seconds` measured. `call` gets the worker's index and its
/// own random generator.
func runClosedLoop(
    workers: Int, warmup: Double, seconds: Double,
    call: @escaping @Sendable (Int, inout SplitMix64) async throws -> Void
) async -> LoadSample {
    let measureFrom = nowNanos() + UInt64(warmup * 1e9)
    let measureUntil = measureFrom + UInt64(seconds * 1e9)
    var total = LoadSample()
    await withTaskGroup(of: LoadSample.self) { group in
        for worker in 0..<workers {
            group.addTask {
                var sample = LoadSample()
                var rng = SplitMix64(seed: UInt64(worker) &* 0x1000_0001 &+ 99)
                while true {
                    let t0 = nowNanos()
                    if t0 >= measureUntil { break }
                    var failed = false
                    do { try await call(worker, &rng) } catch { failed = true }
                    let t1 = nowNanos()
                    guard t0 >= measureFrom else { continue }
                    if failed {
                        sample.errors += 1
                    } else {
                        sample.calls += 1
                        _ = sample.histogram.record(t1 - t0)
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
    return total
}

/// Calls the service directly, stamping each call with the principal it names, as the gateway
/// would: the benchmark exercises the backend's own signature check.
struct SigningCaller: Sendable {
    let pool: RPCConnectionPool
    let signer: PrincipalSigner

    func call<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, as principal: V1.Principal
    ) async throws -> Response {
        var metadata = Metadata()
        for entry in try signer.stamp(principal, method: method.name) { metadata[entry.key] = entry.value }
        return try await RPCClient(transport: pool).call(method, request, metadata: metadata, timeout: .seconds(10))
    }
}
