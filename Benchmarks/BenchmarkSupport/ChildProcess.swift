import Foundation
import NIOConcurrencyHelpers

/// A program a benchmark starts (a service, or a load generator), with its standard output
/// captured. Every child is registered so that ``ChildProcess/stopAll()`` — and the signal
/// handlers from ``ChildProcess/stopChildrenOnSignals(cleanup:)`` — leave none behind.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `process` is used only through its own thread-safe API; `lines` is locked.
    public let name: String
    private let process = Process()
    private let lines = NIOLockedValueBox<(done: [String], partial: String)>(([], ""))
    private let echo: Bool

    private static let live = NIOLockedValueBox<[ObjectIdentifier: ChildProcess]>([:])
    private static let cleanups = NIOLockedValueBox<[@Sendable () -> Void]>([])

    /// The directory this program runs from: sibling executables (`platos-gateway`, ...) are there.
    public static let binDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent()

    /// Starts `executable` (a path, or a name in ``binDirectory``). With `echo`, each line it
    /// prints is also printed here as it arrives.
    public init(
        _ name: String, executable: String, arguments: [String], environment extra: [String: String] = [:],
        echo: Bool = false
    ) throws {
        self.name = name
        self.echo = echo
        process.executableURL =
            executable.contains("/") ? URL(fileURLWithPath: executable) : Self.binDirectory.appendingPathComponent(executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        let lines = self.lines
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            let complete = lines.withLockedValue { state -> [String] in
                state.partial += String(decoding: data, as: UTF8.self)
                var parts = state.partial.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                state.partial = parts.removeLast()
                state.done += parts
                return parts
            }
            if echo, !complete.isEmpty { say(complete.map { "  | \($0)" }.joined(separator: "\n")) }
        }
        Self.live.withLockedValue { $0[ObjectIdentifier(self)] = self }
        do {
            try process.run()
        } catch {
            Self.live.withLockedValue { $0[ObjectIdentifier(self)] = nil }
            throw UsageError("cannot start \(process.executableURL?.path ?? executable): \(error)")
        }
        if let path = Self.pidFile.withLockedValue({ $0 }) {
            // Each child runs in a process group of its own: a script that must clean up after a
            // benchmark killed with SIGKILL finds them here.
            if let handle = FileHandle(forWritingAtPath: path) {
                handle.seekToEndOfFile()
                handle.write(Data("\(process.processIdentifier)\n".utf8))
                try? handle.close()
            }
        }
    }

    private static let pidFile = NIOLockedValueBox<String?>(nil)

    /// Appends the pid of every child started from now on to `path` (created if missing).
    public static func recordPids(in path: String) {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        pidFile.withLockedValue { $0 = path }
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    /// Every complete line printed so far.
    public var output: [String] { lines.withLockedValue { $0.done } }

    /// Waits for a line starting with `prefix` (for example `READY `); fails when the program
    /// exits first or `timeout` passes.
    public func waitForLine(prefix: String, timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = output.first(where: { $0.hasPrefix(prefix) }) { return line }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw UsageError("\(name) printed no '\(prefix)' line (exited: \(!process.isRunning)); output: \(output.suffix(20))")
    }

    /// Waits for the program to exit on its own; the exit status. Killed after `timeout`.
    public func waitForExit(timeout: Duration) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        // Let the reader take the last bytes of output.
        try? await Task.sleep(for: .milliseconds(50))
        Self.live.withLockedValue { $0[ObjectIdentifier(self)] = nil }
        return process.terminationStatus
    }

    /// SIGTERM (a service drains), then SIGKILL after `grace`; the exit status.
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) async -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        return await waitForExit(timeout: grace)
    }

    /// Stops every child still running, the newest first.
    public static func stopAll() async {
        let children = live.withLockedValue { Array($0.values) }.sorted { $0.pid > $1.pid }
        for child in children { await child.stop() }
    }

    /// Synchronous, for signal handlers: SIGTERM to all, up to 5 s to exit, then SIGKILL.
    static func killAllNow() {
        let children = live.withLockedValue { Array($0.values) }
        for child in children where child.isRunning { kill(child.pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        while children.contains(where: \.isRunning), Date() < deadline { usleep(20_000) }
        for child in children where child.isRunning { kill(child.pid, SIGKILL) }
    }

    /// On SIGINT, SIGTERM or SIGHUP: stop every child, run the registered cleanups, exit.
    public static func stopChildrenOnSignals() {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write(Data("signal \(sig): stopping child processes\n".utf8))
                killAllNow()
                runCleanups()
                exit(128 + sig)
            }
            source.resume()
            signalSources.withLockedValue { $0.append(SignalSource(source: source)) }
        }
    }

    /// Keeps the dispatch sources alive. @unchecked: a source is only created, resumed and kept.
    private struct SignalSource: @unchecked Sendable { let source: any DispatchSourceSignal }
    private static let signalSources = NIOLockedValueBox<[SignalSource]>([])

    /// Work to do on the way out, by signal or by ``runCleanups()`` (for example removing a
    /// temporary directory).
    public static func atExit(_ cleanup: @escaping @Sendable () -> Void) {
        cleanups.withLockedValue { $0.append(cleanup) }
    }

    public static func runCleanups() {
        let all = cleanups.withLockedValue { list -> [@Sendable () -> Void] in
            defer { list.removeAll() }
            return list
        }
        for cleanup in all.reversed() { cleanup() }
    }
}

extension ChildProcess {
    /// Starts the Platos service `platos-<name>` next to this program on 127.0.0.1, with port 0
    /// for RPC and admin, its data in `dataDir` and only warnings logged, and waits for its
    /// `READY platos-<name> rpc=<host>:<port> admin=<host>:<port>` line: the child and its RPC port.
    public static func startService(
        _ name: String, dataDir: String, arguments extra: [String] = []
    ) async throws -> (service: ChildProcess, port: Int) {
        let child = try ChildProcess(
            name, executable: "platos-\(name)",
            arguments: ["--host", "127.0.0.1", "--port", "0", "--admin-port", "0", "--data-dir", dataDir] + extra,
            environment: ["PLATOS_LOG_LEVEL": "warning"])
        let ready = try await child.waitForLine(prefix: "READY ", timeout: .seconds(60))
        guard let rpc = ready.split(separator: " ").first(where: { $0.hasPrefix("rpc=") }),
            let port = rpc.split(separator: ":").last.flatMap({ Int($0) })
        else {
            await child.stop()
            throw BenchmarkFailure("cannot read the RPC port in '\(ready)'")
        }
        return (child, port)
    }
}

/// Prints and flushes at once, so progress shows while a run goes on even when stdout is a pipe.
public func say(_ line: String) {
    print(line)
    fflush(nil)
}
