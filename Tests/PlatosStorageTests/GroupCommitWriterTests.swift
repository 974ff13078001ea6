import Foundation
import GRDB
import PlatosRPC
import PlatosStorage
import Synchronization
import Testing
import PlatosTestSupport

@Suite struct GroupCommitWriterTests {
    static func database(synchronous: SynchronousMode = .normal) throws -> ServiceDatabase {
        let path = TestDirectories.make("gc") + "/t.sqlite"
        return try ServiceDatabase.open(path: path, synchronous: synchronous, label: "test") { migrator in
            migrator.registerMigration("v1") { db in
                try db.execute(sql: "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
            }
        }
    }

    @Test func concurrentWritesAllCommitAndAFailureStaysItsOwn() async throws {
        let db = try Self.database()
        let results = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<200 {
                group.addTask {
                    do {
                        // Every 10th write collides on the unique name and must fail alone.
                        let name = i % 10 == 0 ? "dup" : "n\(i)"
                        try await db.write { try $0.execute(sql: "INSERT INTO item (name) VALUES (?)", arguments: [name]) }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 181)  // 180 unique names + the first "dup"
        let count = try await db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM item") ?? 0 }
        #expect(count == 181)
        #expect(try await db.integrityCheck() == "ok")
    }

    /// A writer that cannot keep up refuses writes past its queue limit at once, and every write
    /// it did queue still commits.
    @Test func aFullQueueRefusesTheExcessWithResourceExhausted() async throws {
        let db = try Self.database()
        let gate = DispatchSemaphore(value: 0)
        let blocking = Flag()
        // Holds the writer's thread inside a batch of its own, so that everything after it waits
        // in the queue.
        let blocker = Task {
            try await db.write { _ in
                blocking.set()
                gate.wait()
            }
        }
        let started = ContinuousClock.now + .seconds(30)
        while !blocking.isSet, ContinuousClock.now < started { try await Task.sleep(for: .milliseconds(1)) }
        #expect(blocking.isSet)
        let queued = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<GroupCommitWriter.maxQueued {
                    group.addTask {
                        try await db.write { try $0.execute(sql: "INSERT INTO item (name) VALUES (?)", arguments: ["n\(i)"]) }
                    }
                }
                try await group.waitForAll()
            }
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while db.writer.queuedWrites < GroupCommitWriter.maxQueued, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(db.writer.queuedWrites == GroupCommitWriter.maxQueued)
        var refused: RPCError?
        do {
            try await db.write { try $0.execute(sql: "INSERT INTO item (name) VALUES ('excess')") }
        } catch let error as RPCError {
            refused = error
        }
        #expect(refused?.code == .resourceExhausted)
        gate.signal()
        try await blocker.value
        try await queued.value
        let count = try await db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM item") ?? 0 }
        #expect(count == GroupCommitWriter.maxQueued)
    }

    final class Flag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    struct Refused: Error {}

    /// How many times write bodies ran, from any thread.
    final class RunCounter: Sendable {
        let count = Atomic<Int>(0)
    }

    @Test func aWriteThatThrowsAfterWritingLeavesNothingAndItsNeighboursKeepTheirs() async throws {
        let db = try Self.database()
        let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<100 {
                group.addTask {
                    do {
                        try await db.write { db in
                            try db.execute(sql: "INSERT INTO item (name) VALUES (?)", arguments: ["n\(i)"])
                            // Every 3rd write changes its mind after its insert: the insert must go.
                            if i % 3 == 0 { throw Refused() }
                        }
                        return (i, true)
                    } catch {
                        return (i, false)
                    }
                }
            }
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        #expect(outcomes.count == 100)
        for (i, succeeded) in outcomes { #expect(succeeded == (i % 3 != 0)) }
        let names = try await db.read { try Set(String.fetchAll($0, sql: "SELECT name FROM item")) }
        #expect(names == Set((0..<100).filter { $0 % 3 != 0 }.map { "n\($0)" }))
    }

    @Test func writesThatFailBeforeChangingAnythingRunOnceAndTheirBatchIsNotRunAgain() async throws {
        let db = try Self.database()
        let runs = RunCounter()
        let succeeded = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<300 {
                group.addTask {
                    do {
                        try await db.write { db in
                            runs.count.add(1, ordering: .relaxed)
                            // Every 4th write finds nothing to change and refuses, as a lookup of
                            // a missing row does; every 5th fails on the unique name. Neither
                            // leaves anything to undo, so no batch needs a second run.
                            if i % 4 == 0 { throw Refused() }
                            let name = i % 5 == 0 ? "dup" : "n\(i)"
                            try db.execute(sql: "INSERT INTO item (name) VALUES (?)", arguments: [name])
                        }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(runs.count.load(ordering: .relaxed) == 300)
        // 225 not refused; of those, the 45 multiples of 5 share "dup" and one of them gets it.
        #expect(succeeded == 225 - 45 + 1)
        let count = try await db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM item") ?? 0 }
        #expect(count == succeeded)
    }

    @Test func aWriteReturnsItsValueAfterCommit() async throws {
        let db = try Self.database()
        let id = try await db.write { db -> Int64 in
            try db.execute(sql: "INSERT INTO item (name) VALUES ('a')")
            return db.lastInsertedRowID
        }
        // Visible to a reader as soon as the write returned.
        let name = try await db.read { try String.fetchOne($0, sql: "SELECT name FROM item WHERE id = ?", arguments: [id]) }
        #expect(name == "a")
    }

    /// The mode asked for is the one the committing connection runs with (SQLite's numbers:
    /// NORMAL 1, FULL 2), readers too.
    @Test(arguments: [(SynchronousMode.normal, 1), (.full, 2)])
    func theSynchronousModeAppliesToTheWriter(mode: SynchronousMode, expected: Int) async throws {
        let db = try Self.database(synchronous: mode)
        #expect(try await db.write { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == expected)
        #expect(try await db.read { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == expected)
    }

    @Test func walModeIsOn() async throws {
        let db = try Self.database()
        let mode = try await db.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }
}
