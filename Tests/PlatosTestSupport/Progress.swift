/// Waits for writers to make progress before a test interrupts them: until `enough` are done, or,
/// on a machine too busy for that, until at least `minimum` are done once `patience` has passed.
/// `giveUp` only stops a broken service from hanging the test (the caller then checks `minimum`).
/// Not a throughput check: how long it takes is not asserted.
public func waitForProgress(
    _ done: () -> Int, enough: Int, minimum: Int, patience: Duration = .seconds(5), giveUp: Duration = .seconds(60)
) async throws {
    let started = ContinuousClock.now
    while true {
        let count = done()
        let elapsed = ContinuousClock.now - started
        if count >= enough || (count >= minimum && elapsed > patience) || elapsed > giveUp { return }
        try await Task.sleep(for: .milliseconds(20))
    }
}
