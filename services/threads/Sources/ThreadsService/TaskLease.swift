import PlatosProto
import PlatosRPC
import PlatosStorage

/// How long a worker's lease on a task lasts, and how many leases a task may lose before it is
/// given up as `EXPIRED`.
public struct TaskLeasePolicy: Sendable {
    /// Used when a claim or heartbeat asks for `lease_ms` 0 (threads.proto: 30 s).
    public var defaultLeaseMs: Int64 = 30_000
    public var maxLeaseMs: Int64 = 600_000
    /// Claims a task may get; when the last one's lease runs out, the task is `EXPIRED`.
    public var maxAttempts = 3

    public init() {}

    func leaseMs(_ requested: UInt32) throws -> Int64 {
        if requested == 0 { return defaultLeaseMs }
        guard Int64(requested) <= maxLeaseMs else {
            throw RPCError(.invalidArgument, "lease_ms is \(requested); the limit is \(maxLeaseMs)")
        }
        return Int64(requested)
    }
}

extension V1.Task {
    /// Whether `leaseId` is the live lease: the task is running under it and it has not run out.
    /// A lapsed lease is refused even before the reaper requeues the task, so the worker that lost
    /// it and the worker that claims next can never both finish the task.
    func isLeased(to leaseId: String, now: Int64) -> Bool {
        state == .running && !leaseId.isEmpty && self.leaseId == leaseId && leaseExpiresAtUnixMs > now
    }

    /// The lease ran out: back to the queue, or `EXPIRED` once every attempt was used.
    mutating func lapse(maxAttempts: Int, now: Int64) {
        leaseId = ""
        leaseExpiresAtUnixMs = 0
        updatedAtUnixMs = now
        if attempts >= maxAttempts {
            state = .expired
            error = "the lease ran out on each of \(attempts) attempts"
        } else {
            state = .queued
        }
    }

    /// Its target agent left the task's cluster, either before claiming it (the task is queued)
    /// or while it held a lease that then ran out: requeued, no one could claim it (claims look
    /// only in their agent's current cluster), so it ends `EXPIRED`.
    mutating func strand(now: Int64) {
        error = "its target agent left the cluster before \(leaseId.isEmpty ? "claiming" : "finishing") it"
        leaseId = ""
        leaseExpiresAtUnixMs = 0
        state = .expired
        updatedAtUnixMs = now
    }

    /// A claim whose caller was gone before the answer reached it: back to the queue, and the
    /// attempt it took is given back.
    mutating func unclaim(now: Int64) {
        state = .queued
        attempts = max(0, attempts - 1)
        leaseId = ""
        leaseExpiresAtUnixMs = 0
        updatedAtUnixMs = now
    }

    mutating func lease(for leaseMs: Int64, now: Int64) {
        state = .running
        attempts += 1
        leaseId = ResourceID.make("lease")
        leaseExpiresAtUnixMs = now + leaseMs
        updatedAtUnixMs = now
    }
}
