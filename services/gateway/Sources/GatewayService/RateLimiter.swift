import NIOConcurrencyHelpers

/// A token bucket per API token. A caller over its rate gets `RESOURCE_EXHAUSTED` with
/// `retry-after-ms` saying when a call would be admitted again.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let rate: Double
    private let burst: Double
    private let buckets = NIOLockedValueBox([String: Bucket]())

    init(perSecond rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
    }

    /// Nil when admitted, else the milliseconds to wait.
    func admit(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        buckets.withLockedValue { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + seconds * rate)
            bucket.updated = now
            defer {
                if buckets.count > 100_000 { buckets.removeAll(keepingCapacity: true) }
                buckets[key] = bucket
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return Int(((1 - bucket.tokens) / rate * 1000).rounded(.up))
        }
    }
}
