import Testing

@testable import GatewayService

/// The per-token bucket: a burst is admitted at once, then calls at the rate, each key apart.
@Suite struct RateLimiterTests {
    @Test func aBurstIsAdmittedThenCallsWaitForTheRate() {
        let limiter = RateLimiter(perSecond: 10, burst: 3)
        let start = ContinuousClock.now
        for _ in 0..<3 { #expect(limiter.admit("tok_a", now: start) == nil) }
        // Empty: one token comes back every 100 ms.
        #expect(limiter.admit("tok_a", now: start) == 100)
        #expect(limiter.admit("tok_a", now: start + .milliseconds(40)) == 60)
        #expect(limiter.admit("tok_a", now: start + .milliseconds(100)) == nil)
        #expect(limiter.admit("tok_a", now: start + .milliseconds(100)) == 100)
        // Refilled, but never past the burst.
        let later = start + .seconds(60)
        for _ in 0..<3 { #expect(limiter.admit("tok_a", now: later) == nil) }
        #expect(limiter.admit("tok_a", now: later) != nil)
    }

    @Test func eachTokenHasItsOwnBucket() {
        let limiter = RateLimiter(perSecond: 1, burst: 1)
        let now = ContinuousClock.now
        #expect(limiter.admit("tok_a", now: now) == nil)
        #expect(limiter.admit("tok_a", now: now) == 1000)
        #expect(limiter.admit("tok_b", now: now) == nil)
    }
}
