import GRDB
import PlatosStorage
import PlatosTestSupport
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
            let read: @Sendable (Database) throws -> (Int, Bool) = { db in
                let count = try Int.fetchOne(db, sql: Self.heavyCount, arguments: [3_000_000]) ?? -1
                return (count, pthread_equal(pthread_self(), caller) != 0)
            }
            let (count, onCallersThread) = snapshot ? try await db.read(read) : try await db.readStatement(read)
            #expect(count == 3_000_000)
            #expect(!onCallersThread, "snapshot: \(snapshot)")
            #expect(db.readsMovedOffThread == index + 1)
        }
        // The connection that was interrupted is whole: its next read runs inline again.
        let names = try await db.read { try String.fetchAll($0, sql: "SELECT name FROM item ORDER BY id") }
        #expect(names == ["a", "b", "c"])
        #expect(db.readsMovedOffThread == 2)
    }

    /// A read that fails by itself (not the budget) fails, and is not run a second time.
    @Test func aFailingReadFailsOnce() async throws {
        let db = try Self.database()
        await #expect(throws: DatabaseError.self) {
            try await db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM no_such_table") }
        }
        #expect(db.readsMovedOffThread == 0)
    }
}
