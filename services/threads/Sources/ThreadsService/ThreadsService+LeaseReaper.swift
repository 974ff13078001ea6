extension ThreadsService {
    /// Requeues tasks whose lease ran out until the calling task is cancelled. Claims also
    /// requeue their own agent's lapsed leases, so this loop matters for tasks whose workers are
    /// all gone: their spawners see them requeued, and in the end `EXPIRED`, without anyone claiming.
    public func runLeaseReaper() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.reapInterval)
                _ = try await reapExpiredLeases()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("lease reaper pass failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One reaper pass; returns how many tasks it requeued or expired.
    @discardableResult
    public func reapExpiredLeases() async throws -> Int {
        let changed = try await store.reapExpiredLeases(maxAttempts: configuration.lease.maxAttempts, now: now)
        announce(changed)
        return changed.count
    }
}
