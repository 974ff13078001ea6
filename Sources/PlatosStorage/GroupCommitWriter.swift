import CoreMetrics
import Foundation
import GRDB
import NIOConcurrencyHelpers
import PlatosRPC

/// The one writer of a database. Concurrent writes queue here; a dedicated thread takes
/// everything queued, runs it inside one transaction, commits once, and only then answers every
/// caller. So a write is acknowledged only after its commit, one failing write does not undo its
/// neighbours (a write that fails half-way has the batch run again with a savepoint per write),
/// and 64 concurrent writers cost one commit, not 64. The queue is bounded (``maxQueued``): a
/// database that falls that far behind refuses more writes rather than queue them.
public final class GroupCommitWriter: Sendable {
    /// One queued write: runs inside the batch's transaction, then learns whether it committed.
    private protocol Job: Sendable {
        /// Runs the write; false if it threw. Can run twice, the first run rolled back.
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
        /// Batches left to run with a savepoint per job from the start, after one had to run
        /// twice (see ``runAtOnce(_:_:)``).
        var carefulBatches = 0
    }

    /// Most writes in one transaction; more wait for the next commit.
    public static let maxBatch = 512

    /// Most writes waiting for a batch. Past it a write is refused at once with
    /// `RESOURCE_EXHAUSTED`: a database that cannot keep up must push back on its callers, not
    /// hold an ever longer queue (and its callers' memory) whose tail waits ever longer.
    public static let maxQueued = 32 * maxBatch

    /// After a batch had to run twice, this many batches take the careful path first, so a
    /// stream of writes that fail half-way costs one run per batch, not two.
    static let carefulBatchesAfterRerun = 64

    private let pool: DatabasePool
    /// Runs on the writer's thread after each successful commit (schedules a checkpoint).
    private let afterCommit: @Sendable () -> Void
    private let state = NIOLockedValueBox(State())
    private let thread: DispatchQueue
    private let batchSize: Recorder
    private let commits: Counter
    private let reruns: Counter

    init(pool: DatabasePool, label: String, afterCommit: @escaping @Sendable () -> Void) {
        self.pool = pool
        self.afterCommit = afterCommit
        thread = DispatchQueue(label: "platos.db.writer.\(label)")
        batchSize = Recorder(label: "db_commit_batch_size", dimensions: [("database", label)], aggregate: true)
        commits = Counter(label: "db_commits_total", dimensions: [("database", label)])
        reruns = Counter(label: "db_batch_reruns_total", dimensions: [("database", label)])
    }

    /// Writes waiting for a batch (not counting the batch being written).
    public var queuedWrites: Int { state.withLockedValue { $0.queue.count } }

    /// Queues `body` for the next batch and returns its result once that batch has committed.
    /// `body` may run twice (the first run rolled back with its batch), so it must have no effect
    /// outside the database.
    public func submit<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = TypedJob(body: body, continuation: continuation)
            let (queued, startDrain) = state.withLockedValue { state -> (Bool, Bool) in
                guard state.queue.count < Self.maxQueued else { return (false, false) }
                state.queue.append(job)
                defer { state.draining = true }
                return (true, !state.draining)
            }
            guard queued else {
                continuation.resume(
                    throwing: RPCError(
                        .resourceExhausted,
                        "the database has \(Self.maxQueued) writes waiting for a commit; retry with backoff"))
                return
            }
            if startDrain { thread.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let (batch, careful) = state.withLockedValue { state -> ([any Job], Bool) in
                let careful = state.carefulBatches > 0
                if careful { state.carefulBatches -= 1 }
                if state.queue.count <= Self.maxBatch {
                    if state.queue.isEmpty { state.draining = false }
                    // Take the whole queue without copying it.
                    defer { state.queue = [] }
                    return (state.queue, careful)
                }
                defer { state.queue.removeFirst(Self.maxBatch) }
                return (Array(state.queue.prefix(Self.maxBatch)), careful)
            }
            if batch.isEmpty { return }
            var commitError: (any Error)?
            do {
                try pool.writeWithoutTransaction { db in
                    if !careful {
                        if try runAtOnce(batch, db) { return }
                        reruns.increment()
                        state.withLockedValue { $0.carefulBatches = Self.carefulBatchesAfterRerun }
                    }
                    try runWithSavepoints(batch, db)
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

    /// The usual case: every job in one transaction, with no savepoints (a SAVEPOINT and RELEASE
    /// per job were a tenth of the writer's time in the task benchmark). A job that throws before
    /// changing anything leaves nothing to undo: a lookup that finds no row, or a statement that
    /// fails (SQLite backs out a failed statement by itself). That is how writes nearly always
    /// fail here, since they check before they change. Returns false, with everything rolled
    /// back, when a job threw after changing something: the batch must run again, carefully.
    private func runAtOnce(_ batch: [any Job], _ db: Database) throws -> Bool {
        var clean = true
        try db.inTransaction(.immediate) {
            for job in batch {
                // total_changes counts the rows changed by completed statements, triggers included.
                let changesBefore = db.totalChangesCount
                if job.run(db) { continue }
                try Self.requireTransaction(db)
                if db.totalChangesCount != changesBefore {
                    clean = false
                    return .rollback
                }
            }
            return .commit
        }
        return clean
    }

    /// Each job in its own savepoint, so a job that fails half-way is undone alone.
    private func runWithSavepoints(_ batch: [any Job], _ db: Database) throws {
        try db.inTransaction(.immediate) {
            // Cached, unlike `Database.inSavepoint`, which prepares its SAVEPOINT and RELEASE
            // statements again for every job.
            let savepoint = try db.cachedStatement(sql: "SAVEPOINT job")
            let release = try db.cachedStatement(sql: "RELEASE SAVEPOINT job")
            let rollback = try db.cachedStatement(sql: "ROLLBACK TRANSACTION TO SAVEPOINT job")
            for job in batch {
                try savepoint.execute()
                let succeeded = job.run(db)
                // A failed write leaves no trace; its neighbours keep theirs. If even the
                // rollback fails, the transaction is in doubt: the whole batch fails, and no
                // caller is told its write committed.
                if !succeeded { try rollback.execute() }
                try release.execute()
            }
            return .commit
        }
    }

    /// Some errors (a full disk, an I/O error) make SQLite roll the whole transaction back by
    /// itself. The jobs after that must not run outside a transaction: the batch fails.
    private static func requireTransaction(_ db: Database) throws {
        guard db.isInsideTransaction else {
            throw DatabaseError(resultCode: .SQLITE_ABORT, message: "the batch's transaction was rolled back by SQLite")
        }
    }
}
