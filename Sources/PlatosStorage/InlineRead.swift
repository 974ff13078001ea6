import GRDB
import GRDBSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a read on the caller's own thread, within a budget of that thread's CPU time and of
/// wall-clock time.
///
/// A service's handlers run on the event loop of their connection. A read sent to a pooled
/// reader's queue costs three thread hand-offs (to the pool's semaphore queue, to the reader's
/// queue, back to the loop), and on two cores those wake-ups cost more than a short query:
/// `memory.recall` spent about a third of its CPU in futex wake-ups and context switches. A read
/// taken on the loop's thread pays none of them, but holds the loop (every other connection on
/// it) while it runs. So the inline attempt has a budget: SQLite's progress handler interrupts
/// it once the thread has spent ``cpuBudgetNanoseconds`` of CPU in it, or once
/// ``wallBudgetNanoseconds`` have passed, and the read starts again on a pooled reader's
/// thread. Short reads, nearly all of them, run inline; a heavy one gives the loop back soon
/// after its budget. What bounds is SQLite's own work, checked between its instructions: one
/// step that SQLite does not interrupt (a page fault, a sort pass) can overrun the budget by
/// its own length, and Swift work in `body` after the last statement is not counted.
///
/// CPU time is the main bound, rather than wall-clock time: a loaded machine preempts the thread
/// in the middle of a cheap query, and that should not send the query off the loop to be done
/// twice. The wall-clock bound, five times longer than a scheduler's time slice, is for a read
/// that waits on the disk (pages of a cold database), which costs the thread no CPU.
enum InlineRead {
    /// The CPU time an inline read may take before it moves off the caller's thread.
    static let cpuBudgetNanoseconds: UInt64 = 2_000_000
    /// The time an inline read may take, CPU or not, before it moves off the caller's thread.
    static let wallBudgetNanoseconds: UInt64 = 20_000_000

    /// Virtual machine instructions between two looks at the wall clock (the vDSO answers, in
    /// tens of nanoseconds), and looks at the wall clock per look at the thread's CPU time (a
    /// system call, a few hundred nanoseconds): the CPU is looked at every four thousand
    /// instructions, some tens of microseconds of work.
    static let instructionsPerCheck: Int32 = 1000
    static let checksPerCPULook = 4

    /// What the progress handler reads and writes, on the caller's stack for one read.
    struct Budget {
        var cpuDeadline: UInt64
        var wallDeadline: UInt64
        var checks = 0
        var exhausted = false

        init() {
            cpuDeadline = InlineRead.threadCPUNanoseconds() + InlineRead.cpuBudgetNanoseconds
            wallDeadline = InlineRead.monotonicNanoseconds() + InlineRead.wallBudgetNanoseconds
        }

        /// Called by the progress handler: whether the read must stop now.
        mutating func isSpent() -> Bool {
            checks += 1
            if InlineRead.monotonicNanoseconds() > wallDeadline { return true }
            return checks % InlineRead.checksPerCPULook == 0 && InlineRead.threadCPUNanoseconds() > cpuDeadline
        }
    }

    /// The thread's CPU time so far, in nanoseconds.
    static func threadCPUNanoseconds() -> UInt64 { nanoseconds(CLOCK_THREAD_CPUTIME_ID) }

    /// Monotonic time, in nanoseconds (no system call: the vDSO answers).
    static func monotonicNanoseconds() -> UInt64 { nanoseconds(CLOCK_MONOTONIC) }

    private static func nanoseconds(_ clock: clockid_t) -> UInt64 {
        var now = timespec()
        clock_gettime(clock, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Runs `body` on `db` with the budget armed; nil when the budget ran out first (the
    /// statement that was running is interrupted, and `body`'s work is thrown away).
    static func attempt<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T? {
        var budget = Budget()
        return try withUnsafeMutablePointer(to: &budget) { budget in
            let connection = db.sqliteConnection
            sqlite3_progress_handler(connection, instructionsPerCheck, { context in
                let budget = context!.assumingMemoryBound(to: Budget.self)
                guard budget.pointee.isSpent() else { return 0 }
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
