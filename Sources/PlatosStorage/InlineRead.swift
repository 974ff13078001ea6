import GRDB
import GRDBSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a read on the caller's own thread, for at most a budget of that thread's CPU time.
///
/// A service's handlers run on the event loop of their connection. A read sent to a pooled
/// reader's queue costs three thread hand-offs (to the pool's semaphore queue, to the reader's
/// queue, back to the loop), and on two cores those wake-ups cost more than a short query:
/// `memory.recall` spent about a third of its CPU in futex wake-ups and context switches. A read
/// taken on the loop's thread pays none of them, but holds the loop (every other connection on
/// it) while it runs. So the inline attempt has a budget: SQLite's progress handler interrupts
/// it once the thread has spent ``budgetNanoseconds`` of CPU in it, and the read starts again
/// on a pooled reader's thread. Short reads, nearly all of them, run inline; a heavy one holds
/// a loop for the budget at most.
///
/// CPU time rather than wall-clock time: a loaded machine preempts the thread in the middle of
/// a cheap query, and that should not send the query off the loop to be done twice.
enum InlineRead {
    /// The CPU time an inline read may take before it moves off the caller's thread.
    static let budgetNanoseconds: UInt64 = 2_000_000

    /// Virtual machine instructions between two looks at the clock (a look is one
    /// `clock_gettime`, a few hundred nanoseconds; four thousand take tens of microseconds).
    static let instructionsPerCheck: Int32 = 4000

    /// What the progress handler reads and writes, on the caller's stack for one read.
    struct Budget {
        var deadline: UInt64
        var exhausted = false
    }

    /// The thread's CPU time so far, in nanoseconds.
    static func threadCPUNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Runs `body` on `db` with the budget armed; nil when the budget ran out first (the
    /// statement that was running is interrupted, and `body`'s work is thrown away).
    static func attempt<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T? {
        var budget = Budget(deadline: threadCPUNanoseconds() + budgetNanoseconds)
        return try withUnsafeMutablePointer(to: &budget) { budget in
            let connection = db.sqliteConnection
            sqlite3_progress_handler(connection, instructionsPerCheck, { context in
                let budget = context!.assumingMemoryBound(to: Budget.self)
                guard InlineRead.threadCPUNanoseconds() > budget.pointee.deadline else { return 0 }
                budget.pointee.exhausted = true
                return 1
            }, budget)
            defer { sqlite3_progress_handler(connection, 0, nil, nil) }
            do {
                return try body(db)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_INTERRUPT && budget.pointee.exhausted {
                return nil
            }
        }
    }
}
