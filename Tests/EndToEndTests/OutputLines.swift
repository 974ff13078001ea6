import Foundation
import NIOConcurrencyHelpers
import PlatosRPC

/// The lines a child process writes to its stdout, collected as they arrive, and a way to wait
/// (with a deadline, never a fixed sleep) for one of them.
final class OutputLines: Sendable {
    private struct State {
        var lines: [String] = []
        var partial = ""
    }
    private let state = NIOLockedValueBox(State())

    /// Points `process`'s stdout at a pipe read into this collector. Call before `run()`.
    func capture(_ process: Process) {
        let pipe = Pipe()
        process.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            state.withLockedValue { state in
                state.partial += String(decoding: data, as: UTF8.self)
                // A read may end mid-line: keep the tail until its newline arrives.
                while let newline = state.partial.firstIndex(of: "\n") {
                    state.lines.append(String(state.partial[..<newline]))
                    state.partial = String(state.partial[state.partial.index(after: newline)...])
                }
            }
        }
    }

    var all: [String] { state.withLockedValue { $0.lines } }

    /// The first line matching `predicate`, waiting for it until `timeout` or until `process` exits.
    @discardableResult
    func waitFor(
        _ description: String, from process: Process, timeout: Duration, _ predicate: (String) -> Bool
    ) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = all.first(where: predicate) { return line }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        if let line = all.first(where: predicate) { return line }
        throw RPCError(.deadlineExceeded, "no \(description) within \(timeout); output:\n\(all.joined(separator: "\n"))")
    }
}
