import CoreMetrics
import Foundation
import GRDB
import Synchronization

/// How durable a commit is. WAL with NORMAL survives a process crash (SIGKILL) with every
/// acknowledged write; FULL also survives power loss, at the cost of an fsync per commit.
public enum SynchronousMode: String, Sendable, CaseIterable {
    case normal = "NORMAL"
    case full = "FULL"
}

/// One service's SQLite database: WAL mode, versioned migrations at open, concurrent reads from a
/// pool, and every write through one ``GroupCommitWriter``.
public final class ServiceDatabase: Sendable {
    /// For writes outside the group-commit writer (bulk imports) and nothing else: read through
    /// ``read(_:)`` and ``readStatement(_:)``, which count the readers they take. A reader taken
    /// from the pool directly is not counted, and an inline read could then block an event loop
    /// waiting for one (``InlineRead``).
    public let pool: DatabasePool
    public let writer: GroupCommitWriter
    /// Reads that ran out of their inline budget and were done again off the caller's thread.
    private let inlineReadsMoved: Counter
    private let inlineReadsMovedCount = Atomic<Int>(0)
    /// Reads that hold or wait for a reader now.
    private let readsInFlight = Atomic<Int>(0)

    /// Connections that read concurrently.
    static let maximumReaderCount = 8

    /// How much of the file readers map (SQLite's own limit applies if smaller).
    static let mmapSize = 1 << 30

    /// WAL pages after which the writer checkpoints by itself (SQLite's default is 1,000).
    static let fallbackCheckpointPages = 10_000

    /// Opens (creating if needed) the database at `path` and runs the migrations not yet applied.
    public static func open(
        path: String,
        synchronous: SynchronousMode = .normal,
        label: String,
        migrations: (inout DatabaseMigrator) -> Void
    ) throws -> ServiceDatabase {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.label = label
        configuration.busyMode = .timeout(5)
        configuration.maximumReaderCount = maximumReaderCount
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            // Reads through a shared mapping instead of a pread and a copy per page that misses
            // the connection's own cache: a list over a database larger than that cache spent
            // more time in pread than in SQLite. Durability is unchanged: writes still go to the
            // WAL with write(2).
            try db.execute(sql: "PRAGMA mmap_size = \(Self.mmapSize)")
            // Checkpoints are the BackgroundCheckpointer's job; the writer's own automatic one is
            // only the fallback should it fall far behind.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.fallbackCheckpointPages)")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        // Again on the writer: GRDB switches a new pool's writer to WAL after `prepareDatabase`
        // ran, and sets it to NORMAL while doing so, so FULL would otherwise never apply to the
        // one connection that commits.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)")
        }
        var migrator = DatabaseMigrator()
        migrations(&migrator)
        try migrator.migrate(pool)
        let checkpointer = try BackgroundCheckpointer(path: path, label: label)
        return ServiceDatabase(pool: pool, label: label, checkpointer: checkpointer)
    }

    private init(pool: DatabasePool, label: String, checkpointer: BackgroundCheckpointer) {
        self.pool = pool
        self.writer = GroupCommitWriter(pool: pool, label: label, afterCommit: checkpointer.committed)
        self.inlineReadsMoved = Counter(label: "db_reads_moved_off_thread_total", dimensions: [("database", label)])
    }

    /// A read of one snapshot (a transaction around `body`). It runs on the caller's thread
    /// while it is short, blocking it for the budget of ``InlineRead`` at most, and on a pooled
    /// reader's thread if it is not. `body` may therefore run twice: no effects outside the
    /// database.
    public func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await read(transaction: true, body)
    }

    /// A read that is one statement, so SQLite's implicit read transaction already gives it one
    /// snapshot and an explicit BEGIN and COMMIT would only cost two more statements. Runs as
    /// ``read(_:)`` does.
    public func readStatement<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await read(transaction: false, body)
    }

    private func read<T: Sendable>(transaction: Bool, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        // Counted from before a reader is taken until it is given back, so that an inline read
        // starts only when a reader is free: waiting for one would block the caller's thread
        // (an event loop) behind other reads, heavy ones included.
        let inFlight = readsInFlight.wrappingAdd(1, ordering: .relaxed).newValue
        defer { readsInFlight.wrappingSubtract(1, ordering: .relaxed) }
        if inFlight <= Self.maximumReaderCount {
            if let value = try readInline(transaction: transaction, body) { return value }
            countMovedRead()
        }
        return transaction ? try await pool.read(body) : try await pool.unsafeRead(body)
    }

    /// `body` on the caller's thread within the budget of ``InlineRead``, or nil. A synchronous
    /// function, so that the pool's blocking overloads are the ones it calls.
    private func readInline<T>(transaction: Bool, _ body: (Database) throws -> T) throws -> T? {
        transaction
            ? try pool.read { db in try InlineRead.attempt(db, body) }
            : try pool.unsafeRead { db in try InlineRead.attempt(db, body) }
    }

    /// How many reads hold or wait for a reader now.
    public var readsInFlightNow: Int { readsInFlight.load(ordering: .relaxed) }

    /// How many reads have run out of their inline budget so far.
    public var readsMovedOffThread: Int { inlineReadsMovedCount.load(ordering: .relaxed) }

    private func countMovedRead() {
        inlineReadsMoved.increment()
        inlineReadsMovedCount.wrappingAdd(1, ordering: .relaxed)
    }

    /// A write, batched with concurrent writes into one transaction; returns after the commit.
    /// `body` may run twice (see ``GroupCommitWriter/submit(_:)``): no effects outside the database.
    public func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writer.submit(body)
    }

    /// `PRAGMA integrity_check`: "ok" for a healthy file.
    public func integrityCheck() async throws -> String {
        try await read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no answer" }
    }
}
