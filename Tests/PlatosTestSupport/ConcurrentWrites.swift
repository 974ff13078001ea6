import Synchronization

/// Runs `writers` concurrent loops of `write(writer, n)` for n = 1, 2, … until `interrupt`
/// returns, then stops them, and returns what every acknowledged write returned (`write` answers
/// nil for a write that was not acknowledged). `interrupt` is told how many were acknowledged so
/// far: the kill -9 tests wait for progress there, then kill the service mid-write.
public func writeConcurrently<Ack: Sendable>(
    writers: Int,
    write: @escaping @Sendable (_ writer: Int, _ n: Int) async -> Ack?,
    interrupt: (_ acknowledged: @escaping @Sendable () -> Int) async throws -> Void
) async throws -> [Ack] {
    let state = WriteState<Ack>()
    let running = Task {
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var n = 0
                    while !state.stopped {
                        n += 1
                        if let ack = await write(writer, n) { state.append(ack) }
                    }
                }
            }
        }
    }
    do {
        try await interrupt { state.count }
    } catch {
        state.stop()
        await running.value
        throw error
    }
    state.stop()
    await running.value
    return state.acknowledged
}

private final class WriteState<Ack: Sendable>: Sendable {
    private let state = Mutex<(acknowledged: [Ack], stopped: Bool)>(([], false))

    var stopped: Bool { state.withLock { $0.stopped } }
    var count: Int { state.withLock { $0.acknowledged.count } }
    var acknowledged: [Ack] { state.withLock { $0.acknowledged } }
    func append(_ ack: Ack) { state.withLock { $0.acknowledged.append(ack) } }
    func stop() { state.withLock { $0.stopped = true } }
}
