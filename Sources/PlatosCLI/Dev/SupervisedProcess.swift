import Foundation
import Synchronization

/// One child of `platos dev`: a service executable whose stdout and stderr go to its log file,
/// and whose `READY` line says it is serving.
final class SupervisedProcess: Sendable {
    let name: String
    let executable: URL
    let logPath: String

    private struct State {
        var process: Process?
        var arguments: [String] = []
        var output: [String] = []
        var partialLine = ""
        /// Set once `stop()` has asked the child to go, so its exit is not a crash.
        var stopping = false
        /// Set by `stop()` for good: a restart racing it must not launch a child nobody stops.
        var retired = false
        var startedAt = ContinuousClock.now
    }
    private let state = Mutex(State())
    /// Called when the child exits without having been asked to: (exit status or signal, description).
    private let onUnexpectedExit: @Sendable (SupervisedProcess, String) -> Void

    init(name: String, executable: URL, logPath: String, onUnexpectedExit: @escaping @Sendable (SupervisedProcess, String) -> Void) {
        self.name = name
        self.executable = executable
        self.logPath = logPath
        self.onUnexpectedExit = onUnexpectedExit
    }

    var displayName: String { "platos-\(name)" }

    /// The current run's process id (0 before the first start).
    var pid: Int32 { state.withLock { $0.process?.processIdentifier ?? 0 } }

    /// How long the current run has lasted.
    var uptime: Duration { ContinuousClock.now - state.withLock { $0.startedAt } }

    /// The arguments of every later restart: the first run's, with the ports it actually bound, so
    /// that the processes depending on it find it again.
    func pinArguments(_ arguments: [String]) { state.withLock { $0.arguments = arguments } }

    /// Launches the child and waits for its `READY` line, which it returns.
    func start(arguments: [String]? = nil, timeout: Duration = .seconds(60)) async throws -> String {
        let process = Process()
        process.executableURL = executable
        let log = try Self.openLog(logPath)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = log
        var environment = ProcessInfo.processInfo.environment
        environment["PLATOS_LOG_LEVEL"] = environment["PLATOS_LOG_LEVEL"] ?? "info"
        // The child stops by itself if this process dies without stopping it (PlatosService's
        // ParentWatch).
        environment["PLATOS_PARENT_PID"] = String(getpid())
        process.environment = environment
        try state.withLock {
            guard !$0.retired else { throw DevStackError("\(displayName) was stopped; not starting it again") }
            if let arguments { $0.arguments = arguments }
            process.arguments = $0.arguments
            $0.output = []
            $0.partialLine = ""
            $0.stopping = false
            $0.startedAt = .now
            $0.process = process
        }
        // Everything the child prints goes on to its log; lines are kept to find READY.
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            log.write(data)
            self?.state.withLock { state in
                state.partialLine += String(decoding: data, as: UTF8.self)
                while let newline = state.partialLine.firstIndex(of: "\n") {
                    state.output.append(String(state.partialLine[..<newline]))
                    state.partialLine = String(state.partialLine[state.partialLine.index(after: newline)...])
                }
            }
        }
        process.terminationHandler = { [weak self] process in
            guard let self else { return }
            let asked = self.state.withLock { $0.stopping }
            if !asked { self.onUnexpectedExit(self, Self.describeExit(process)) }
        }
        try process.run()

        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let ready = state.withLock({ $0.output.first { $0.hasPrefix("READY ") } }) { return ready }
            guard process.isRunning else {
                throw DevStackError("\(displayName) exited during start-up (\(Self.describeExit(process))); see \(logPath)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Hung in start-up: it would never exit, so nothing would ever retry it. Killed, its exit
        // counts as a crash (or ends a first start, which stops the stack).
        kill(process.processIdentifier, SIGKILL)
        throw DevStackError("\(displayName) printed no READY line within \(timeout); see \(logPath)")
    }

    /// SIGTERM (the service drains), SIGKILL after `grace`; returns the exit status, or nil when
    /// it was not running.
    func stop(grace: Duration = .seconds(15)) async -> Int32? {
        guard let process = state.withLock({ state -> Process? in
            state.stopping = true
            state.retired = true
            return state.process
        }), process.processIdentifier > 0 else { return nil }
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = ContinuousClock.now + grace
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    /// SIGKILLs the run with process id `run` if it is still the current one and still running
    /// (a restart that never came to serve); its exit then counts as a crash, and the
    /// supervisor's backoff takes it from there.
    func killRun(_ run: Int32) {
        guard let process = state.withLock({ $0.process }), process.processIdentifier == run, process.isRunning
        else { return }
        kill(run, SIGKILL)
    }

    static func describeExit(_ process: Process) -> String {
        process.terminationReason == .exit
            ? "exit status \(process.terminationStatus)"
            : "killed by signal \(process.terminationStatus)"
    }

    private static func openLog(_ path: String) throws -> FileHandle {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DevStackError("cannot open the log file \(path): \(String(cString: strerror(errno)))") }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }
}

struct DevStackError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
