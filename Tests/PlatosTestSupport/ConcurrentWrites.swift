import Synchronization

/// `workers` loops, each running `round(worker, round number)` again and again until the task is
/// cancelled or a round throws (the process under it was killed): the load of the kill -9 tests.
public func concurrentLoops(
    _ workers: Int, _ round: @escaping @Sendable (_ worker: Int, _ round: Int) async throws -> Void
) -> Task<Void, Never> {
    Task {
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var i = 0
                    while !Task.isCancelled {
                        i += 1
                        do { try await round(worker, i) } catch { return }
                    }
                }
            }
        }
    }
}

/// Runs `writers` concurrent loops of `write(writer, n)` for n = 1, 2, … until `interrupt`
/// returns, then stops them, and returns what every acknowledged write returned (`write` answers
/// nil for a write that was not acknowledged). `interrupt` is told how many were acknowledged so
/// far: the kill -9 tests wait for progress there, then kill the service mid-write.
public func writeConcurrently<Ack: Sendable>(
    writers: Int,
    write: @escaping @Sendable (_ writer: Int, _ n: Int) async -> Ack?,
    interrupt: (_ acknowledged: @escaping @Sendable () -> Int) async throws -> Void
) async throws -> [Ack] {
    let acknowledged = Acknowledged<Ack>()
    let running = concurrentLoops(writers) { writer, n in
        if let ack = await write(writer, n) { acknowledged.append(ack) }
    }
    do {
        try await interrupt { acknowledged.count }
    } catch {
        running.cancel()
        await running.value
        throw error
    }
    running.cancel()
    await running.value
    return acknowledged.all
}

private final class Acknowledged<Ack: Sendable>: Sendable {
    private let acks = Mutex<[Ack]>([])

    var count: Int { acks.withLock { $0.count } }
    var all: [Ack] { acks.withLock { $0 } }
    func append(_ ack: Ack) { acks.withLock { $0.append(ack) } }
}
