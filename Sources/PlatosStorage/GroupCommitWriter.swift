import CoreMetrics
import Foundation
import GRDB
import NIOConcurrencyHelpers

/// The one writer of a database. Concurrent writes queue here; a dedicated thread takes
/// everything queued, runs each in its own savepoint inside one transaction, commits once, and
/// only then answers every caller. So a write is acknowledged only after its commit, one failing
/// write does not undo its neighbours, and 64 concurrent writers cost one commit, not 64.
public final class GroupCommitWriter: Sendable {
    /// One queued write: runs inside the batch's transaction, then learns whether it committed.
    private struct Job: Sendable {
        let run: @Sendable (Database) -> Void
        let finish: @Sendable ((any Error)?) -> Void
    }

    private struct State {
        var queue: [Job] = []
        var draining = false
    }

    /// Most writes in one transaction; more wait for the next commit.
    public static let maxBatch = 512

    private let pool: DatabasePool
    private let state = NIOLockedValueBox(State())
    private let thread: DispatchQueue
    private let batchSize: Recorder
    private let commits: Counter

    init(pool: DatabasePool, label: String) {
        self.pool = pool
        thread = DispatchQueue(label: "platos.db.writer.\(label)")
        batchSize = Recorder(label: "db_commit_batch_size", dimensions: [("database", label)], aggregate: true)
        commits = Counter(label: "db_commits_total", dimensions: [("database", label)])
    }

    public func submit<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let outcome = NIOLockedValueBox<Result<T, any Error>?>(nil)
            let job = Job(
                run: { db in
                    do {
                        var value: T?
                        try db.inSavepoint {
                            value = try body(db)
                            return .commit
                        }
                        outcome.withLockedValue { $0 = .success(value!) }
                    } catch {
                        outcome.withLockedValue { $0 = .failure(error) }
                    }
                },
                finish: { commitError in
                    if let commitError {
                        continuation.resume(throwing: commitError)
                    } else {
                        continuation.resume(with: outcome.withLockedValue { $0! })
                    }
                })
            let startDrain = state.withLockedValue { state -> Bool in
                state.queue.append(job)
                defer { state.draining = true }
                return !state.draining
            }
            if startDrain { thread.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch = state.withLockedValue { state -> [Job] in
                let n = min(state.queue.count, Self.maxBatch)
                if n == 0 { state.draining = false }
                defer { state.queue.removeFirst(n) }
                return Array(state.queue.prefix(n))
            }
            if batch.isEmpty { return }
            var commitError: (any Error)?
            do {
                try pool.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        for job in batch { job.run(db) }
                        return .commit
                    }
                }
            } catch {
                commitError = error
            }
            batchSize.record(batch.count)
            commits.increment()
            for job in batch { job.finish(commitError) }
        }
    }
}
