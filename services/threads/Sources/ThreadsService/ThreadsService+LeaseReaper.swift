import PlatosProto

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

    /// Lapsed leases one pass looks at, so that one pass never holds the writer for long; the
    /// next pass picks up the rest.
    static let reapBatch = 500

    /// One reaper pass; returns how many tasks it requeued or expired.
    ///
    /// A task is requeued in its own cluster, where only its target can claim it. If the target
    /// has left that cluster (its worker moved while holding the lease), requeued it would stay
    /// `QUEUED` for ever: claims look only in their agent's current cluster, and the stranded
    /// check of claims runs only when the target claims, which it may never do. So the directory
    /// is asked first (outside the write), and such a task ends `EXPIRED` as a stranded one does.
    @discardableResult
    public func reapExpiredLeases() async throws -> Int {
        let now = self.now
        let maxAttempts = configuration.lease.maxAttempts
        let lapsed = try await store.lapsedTasks(now: now, limit: Self.reapBatch)
        let stranded = await departedTargets(lapsed.filter { $0.task.attempts < maxAttempts })
        let changed = try await store.reapExpiredLeases(lapsed, stranded: stranded, maxAttempts: maxAttempts, now: now)
        announce(changed)
        return changed.count
    }

    /// The ids of the tasks in `lapsed` whose target is no longer a member of the task's cluster
    /// (moved, left, or deleted), asking the directory once per target. When the directory cannot
    /// answer, the rest of the pass requeues as before (a wrong stranding could not be undone);
    /// a requeued task whose target has left is still ended by that target's next claim.
    func departedTargets(_ lapsed: [LapsedTask]) async -> Set<String> {
        struct Target: Hashable {
            var org: String
            var project: String
            var env: String
            var agentId: String
        }
        var clusters: [Target: String] = [:]
        var stranded: Set<String> = []
        for entry in lapsed {
            let task = entry.task
            let target = Target(
                org: entry.scope.org, project: entry.scope.project, env: entry.scope.env, agentId: task.targetAgentId)
            let cluster: String
            if let known = clusters[target] {
                cluster = known
            } else {
                do {
                    cluster = try await directory.agent(task.targetAgentId, in: entry.scope)?.clusterId ?? ""
                } catch {
                    logger.warning(
                        "lease reaper: the cluster directory did not answer; lapsed tasks are requeued without the check",
                        metadata: ["error": "\(error)"])
                    return stranded
                }
                clusters[target] = cluster
            }
            if cluster != task.clusterId { stranded.insert(task.id) }
        }
        return stranded
    }
}
