import Foundation
import NIOConcurrencyHelpers

/// Starts the real `platos-memory` (built next to this benchmark) on a data directory, port 0,
/// 127.0.0.1, and waits for its READY line.
final class ServiceLauncher: @unchecked Sendable {
    // @unchecked: `process` is used only through its own thread-safe API; `output` is locked.
    let process = Process()
    let port: Int
    private let output = NIOLockedValueBox("")

    init(dataDir: String) async throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("platos-memory")
        process.executableURL = executable
        process.arguments = ["--host", "127.0.0.1", "--port", "0", "--admin-port", "0", "--data-dir", dataDir]
        var environment = ProcessInfo.processInfo.environment
        environment["PLATOS_LOG_LEVEL"] = "warning"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
            } else {
                output.withLockedValue { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, process.isRunning {
            let text = output.withLockedValue { $0 }
            // READY platos-memory rpc=<host>:<port> admin=<host>:<port>
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("READY ") }),
                let rpc = line.split(separator: " ").first(where: { $0.hasPrefix("rpc=") }),
                let port = rpc.split(separator: ":").last.flatMap({ Int($0) })
            {
                self.port = port
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.terminate()
        throw BenchmarkError("\(executable.path) did not become ready: \(output.withLockedValue { $0 })")
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
