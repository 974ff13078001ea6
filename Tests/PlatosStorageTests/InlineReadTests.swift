import Dispatch
import GRDB
import PlatosStorage
import PlatosTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// ServiceDatabase's reads run on the caller's thread while they are short, and move to a pooled
/// reader's thread, with the same answer, once they use up their CPU budget.
@Suite struct InlineReadTests {
    static func database() throws -> ServiceDatabase {
        let path = TestDirectories.make("inline-read") + "/t.sqlite"
        return try ServiceDatabase.open(path: path, label: "test") { migrator in
            migrator.registerMigration("v1") { db in
                try db.execute(sql: "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
                try db.execute(sql: "INSERT INTO item (name) VALUES ('a'), ('b'), ('c')")
            }
        }
    }

    /// Counts to `n` in SQL: seconds of CPU for a large n, far past any budget.
    static let heavyCount = """
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c
        """

    @Test func aShortReadRunsOnTheCallersThread() async throws {
        let db = try Self.database()
        for snapshot in [true, false] {
            let caller = pthread_self()
            let read: @Sendable (Database) throws -> (Int, Bool) = { db in
                (try Int.fetchOne(db, sql: "SELECT count(*) FROM item") ?? -1, pthread_equal(pthread_self(), caller) != 0)
            }
            let (count, onCallersThread) = snapshot ? try await db.read(read) : try await db.readStatement(read)
            #expect(count == 3)
            #expect(onCallersThread, "snapshot: \(snapshot)")
        }
        #expect(db.readsMovedOffThread == 0)
    }

    @Test func aHeavyReadMovesOffTheCallersThreadAndStillAnswers() async throws {
        let db = try Self.database()
        for (index, snapshot) in [true, false].enumerated() {
            let caller = pthread_self()
            let attempts = Tally()
            let read: @Sendable (Database) throws -> (Int, Bool) = { db in
                attempts.add()
                let count = try Int.fetchOne(db, sql: Self.heavyCount, arguments: [3_000_000]) ?? -1
                return (count, pthread_equal(pthread_self(), caller) != 0)
            }
            let (count, onCallersThread) = snapshot ? try await db.read(read) : try await db.readStatement(read)
            #expect(count == 3_000_000)
            #expect(attempts.count == 2, "an interrupted attempt inline, then the whole read again")
            #expect(!onCallersThread, "snapshot: \(snapshot)")
            #expect(db.readsMovedOffThread == index + 1)
        }
        // The connection that was interrupted is whole: its next read runs inline again.
        let names = try await db.read { try String.fetchAll($0, sql: "SELECT name FROM item ORDER BY id") }
        #expect(names == ["a", "b", "c"])
        #expect(db.readsMovedOffThread == 2)
    }

    /// A read that takes long without using the CPU (a cold database's pages come from the disk;
    /// here a function that sleeps a millisecond per row) moves off the caller's thread too.
    @Test func aSlowReadThatUsesNoCPUMovesOffTheCallersThread() async throws {
        let db = try Self.database()
        let caller = pthread_self()
        let (count, onCallersThread) = try await db.read { db in
            db.add(function: DatabaseFunction("pause", argumentCount: 1, pure: false) { values in
                usleep(1000)
                return values[0]
            })
            let count = try Int.fetchOne(
                db, sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT pause(x) + 1 FROM c WHERE x < 200) SELECT count(*) FROM c")
            return (count ?? -1, pthread_equal(pthread_self(), caller) != 0)
        }
        #expect(count == 200)
        #expect(!onCallersThread)
        #expect(db.readsMovedOffThread == 1)
    }

    /// With every reader taken, a read does not wait for one on the caller's thread (an event
    /// loop, in a service): it waits off it, and runs on a pooled reader's thread.
    @Test func withEveryReaderTakenAReadWaitsOffTheCallersThread() async throws {
        let db = try Self.database()
        let gate = DispatchSemaphore(value: 0)
        let holding = Tally()
        var holders: [Task<Void, any Error>] = []
        for _ in 0..<8 {
            holders.append(Task {
                let caller = pthread_self()
                _ = try await db.read { db in
                    if pthread_equal(pthread_self(), caller) != 0 {
                        // Inline: use up the budget, so that the read moves to a reader's thread.
                        _ = try Int.fetchOne(db, sql: Self.heavyCount, arguments: [1_000_000_000])
                    } else {
                        holding.add()
                        gate.wait()
                    }
                }
            })
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while holding.count < 8, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
        #expect(holding.count == 8)

        let ninth = Task {
            let caller = pthread_self()
            return try await db.read { db in
                (try Int.fetchOne(db, sql: "SELECT count(*) FROM item") ?? -1, pthread_equal(pthread_self(), caller) != 0)
            }
        }
        while db.readsInFlightNow < 9, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
        #expect(db.readsInFlightNow == 9)
        for _ in 0..<8 { gate.signal() }
        let (count, onCallersThread) = try await ninth.value
        #expect(count == 3)
        #expect(!onCallersThread)
        for holder in holders { try await holder.value }
        #expect(db.readsMovedOffThread == 8)
        #expect(db.readsInFlightNow == 0)
    }

    final class Tally: Sendable {
        private let value = Mutex(0)
        func add() { value.withLock { $0 += 1 } }
        var count: Int { value.withLock { $0 } }
    }

    /// A read that fails by itself (not the budget) fails, and is not run a second time.
    @Test func aFailingReadFailsOnce() async throws {
        let db = try Self.database()
        let attempts = Tally()
        await #expect(throws: DatabaseError.self) {
            try await db.read { db in
                attempts.add()
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM no_such_table")
            }
        }
        #expect(attempts.count == 1)
        #expect(db.readsMovedOffThread == 0)
    }
}
