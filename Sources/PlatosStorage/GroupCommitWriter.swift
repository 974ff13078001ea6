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
    private protocol Job: Sendable {
        /// Runs the write; false if it threw (its savepoint is then rolled back).
        func run(_ db: Database) -> Bool
        /// Answers the caller once the batch has committed (nil) or failed.
        func answer(_ commitError: (any Error)?)
    }

    /// A write and its caller. `result` needs no lock: only the writer thread touches it, first in
    /// `run`, then in `answer`.
    private final class TypedJob<T: Sendable>: Job, @unchecked Sendable {
        let body: @Sendable (Database) throws -> T
        let continuation: CheckedContinuation<T, any Error>
        var result: Result<T, any Error>?

        init(body: @escaping @Sendable (Database) throws -> T, continuation: CheckedContinuation<T, any Error>) {
            self.body = body
            self.continuation = continuation
        }

        func run(_ db: Database) -> Bool {
            do {
                result = .success(try body(db))
                return true
            } catch {
                result = .failure(error)
                return false
            }
        }

        func answer(_ commitError: (any Error)?) {
            if let commitError {
                continuation.resume(throwing: commitError)
            } else {
                // A job the batch never reached cannot be in a committed batch.
                continuation.resume(with: result!)
            }
        }
    }

    private struct State {
        var queue: [any Job] = []
        var draining = false
    }

    /// Most writes in one transaction; more wait for the next commit.
    public static let maxBatch = 512

    private let pool: DatabasePool
    /// Runs on the writer's thread after each successful commit (schedules a checkpoint).
    private let afterCommit: @Sendable () -> Void
    private let state = NIOLockedValueBox(State())
    private let thread: DispatchQueue
    private let batchSize: Recorder
    private let commits: Counter

    init(pool: DatabasePool, label: String, afterCommit: @escaping @Sendable () -> Void) {
        self.pool = pool
        self.afterCommit = afterCommit
        thread = DispatchQueue(label: "platos.db.writer.\(label)")
        batchSize = Recorder(label: "db_commit_batch_size", dimensions: [("database", label)], aggregate: true)
        commits = Counter(label: "db_commits_total", dimensions: [("database", label)])
    }

    public func submit<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = TypedJob(body: body, continuation: continuation)
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
            let batch = state.withLockedValue { state -> [any Job] in
                if state.queue.count <= Self.maxBatch {
                    if state.queue.isEmpty { state.draining = false }
                    // Take the whole queue without copying it.
                    defer { state.queue = [] }
                    return state.queue
                }
                defer { state.queue.removeFirst(Self.maxBatch) }
                return Array(state.queue.prefix(Self.maxBatch))
            }
            if batch.isEmpty { return }
            var commitError: (any Error)?
            do {
                try pool.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        // Cached, unlike `Database.inSavepoint`, which prepares its SAVEPOINT and
                        // RELEASE statements again for every job.
                        let savepoint = try db.cachedStatement(sql: "SAVEPOINT job")
                        let release = try db.cachedStatement(sql: "RELEASE SAVEPOINT job")
                        let rollback = try db.cachedStatement(sql: "ROLLBACK TRANSACTION TO SAVEPOINT job")
                        for job in batch {
                            try savepoint.execute()
                            let succeeded = job.run(db)
                            // A failed write leaves no trace; its neighbours keep theirs. If even
                            // the rollback fails, the transaction is in doubt: the whole batch
                            // fails, and no caller is told its write committed.
                            if !succeeded { try rollback.execute() }
                            try release.execute()
                        }
                        return .commit
                    }
                }
            } catch {
                commitError = error
            }
            batchSize.record(batch.count)
            commits.increment()
            for job in batch { job.answer(commitError) }
            if commitError == nil { afterCommit() }
        }
    }
}
