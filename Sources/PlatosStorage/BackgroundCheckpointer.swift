import Foundation
import GRDB
import NIOConcurrencyHelpers

/// Copies the WAL back into the database file on its own connection and thread, so that the
/// writer does not.
///
/// With SQLite's automatic checkpoint, the commit that crosses the threshold does the copy and its
/// two fsyncs itself, and every queued write waits behind it. Under bench-threads' task load
/// (random-keyed indexes: several fresh pages per write) that was many checkpoints a second on
/// the writer's thread. Here a commit only schedules a passive checkpoint a little later: a
/// passive checkpoint takes no lock a writer or reader waits on, copies what no reader still
/// needs, and leaves the rest to the next one. Durability does not depend on it: a commit is
/// durable once it is in the WAL.
final class BackgroundCheckpointer: Sendable {
    /// How long after a commit the checkpoint runs: commits in between share it.
    static let delay: DispatchTimeInterval = .milliseconds(50)

    private let connection: DatabaseQueue
    private let queue: DispatchQueue
    private let scheduled = NIOLockedValueBox(false)

    init(path: String, label: String) throws {
        var configuration = Configuration()
        configuration.label = "\(label).checkpointer"
        connection = try DatabaseQueue(path: path, configuration: configuration)
        queue = DispatchQueue(label: "platos.db.checkpointer.\(label)")
    }

    /// After a commit: schedules one checkpoint, unless one is already waiting to run.
    func committed() {
        let schedule = scheduled.withLockedValue { scheduled -> Bool in
            defer { scheduled = true }
            return !scheduled
        }
        guard schedule else { return }
        queue.asyncAfter(deadline: .now() + Self.delay) { [self] in
            // Cleared first: a commit during the checkpoint schedules the next one.
            scheduled.withLockedValue { $0 = false }
            // A failure (SQLITE_BUSY while the writer's own fallback checkpoint runs) leaves the
            // frames for the next checkpoint; nothing is lost.
            _ = try? connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
        }
    }
}
