import NIOCore

/// Runs a task's jobs on one event loop.
///
/// A server handler runs as a task preferring its connection's event loop, so the request it
/// reads, the handler's own work and the response it queues stay on one thread: a call costs no
/// thread wake-ups of its own, only those of what it awaits (a database, a downstream call), and
/// it comes back to the loop afterwards. Measured in the RPC benchmark: the two hand-offs per
/// call this saves (loop → global executor → loop) were the largest single cost of a call.
/// The price is that a handler must not block: a synchronous wait would stall every connection
/// of its loop. Handlers in this project await, with one bounded exception: a database read
/// runs on the handler's thread for up to 2 ms of CPU (20 ms of time) before it moves to a
/// reader's thread of its own (PlatosStorage's `InlineRead`), because the hand-offs cost more
/// than a short read.
///
/// Public for callers that want the same for their own tasks (`Task(executorPreference:)`): a
/// task on a loop that calls through an ``RPCConnectionPool`` gets a connection on that loop.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
