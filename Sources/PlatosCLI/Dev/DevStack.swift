import Foundation
import PlatosProto
import PlatosRPC

/// The four services of a dev stack, started in dependency order on embedded SQLite under one
/// data directory, kept running (a crashed child is restarted with backoff), and stopped in
/// reverse order.
actor DevStack {
    struct Settings {
        var dataDir: String
        var host: String
        /// 0 lets the OS pick; restarts then reuse the port the first run got.
        var ports: [Service: Int]
        var adminPorts: [Service: Int]
        var binDir: URL
        var scope: (org: String, project: String, env: String)
    }

    enum Service: String, CaseIterable {
        case registry, memory, threads, gateway
    }

    /// The address each service reported in its READY line.
    struct Endpoints {
        var rpc: [Service: RPCEndpoint] = [:]
        var admin: [Service: RPCEndpoint] = [:]
    }

    private let settings: Settings
    private var children: [(Service, SupervisedProcess)] = []
    private var endpoints = Endpoints()
    private var stopping = false
    /// Consecutive restarts of each child, for the backoff; reset once it has run a while.
    private var restarts: [Service: Int] = [:]

    init(settings: Settings) {
        self.settings = settings
    }

    var logDir: String { "\(settings.dataDir)/logs" }
    var adminTokenPath: String { "\(settings.dataDir)/admin.token" }
    /// The scope the admin token was issued for, `org/project/env`.
    var adminTokenScopePath: String { "\(settings.dataDir)/admin.token.scope" }
    private var scopeName: String { "\(settings.scope.org)/\(settings.scope.project)/\(settings.scope.env)" }

    /// Creates the data directory and the demo scope's admin token (first run only), then starts
    /// the services one by one, each only once the ones it needs answer `health.check`.
    func start() async throws -> Endpoints {
        try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
        try ensureAdminToken()
        for service in Service.allCases {
            guard !stopping else { throw CancellationError() }
            let child = SupervisedProcess(
                name: service.rawValue,
                executable: settings.binDir.appendingPathComponent("platos-\(service.rawValue)"),
                logPath: "\(logDir)/\(service.rawValue).log",
                onUnexpectedExit: { [weak self] child, how in
                    Task { await self?.childExited(service, child, how) }
                })
            children.append((service, child))
            let ready = try await child.start(arguments: arguments(service, port: settings.ports[service] ?? 0))
            try record(service, readyLine: ready)
            // Later restarts keep the ports this run bound.
            child.pinArguments(arguments(service, port: endpoints.rpc[service]!.port, adminPort: endpoints.admin[service]?.port))
            try await waitUntilServing(service)
            Self.say("  platos-\(service.rawValue) serving at \(endpoints.rpc[service]!.description) (pid \(child.pid))")
        }
        return endpoints
    }

    /// Stops every child, newest first, and returns each one's exit status.
    func stop() async -> [(Service, Int32?)] {
        stopping = true
        var statuses: [(Service, Int32?)] = []
        for (service, child) in children.reversed() {
            statuses.append((service, await child.stop()))
        }
        return statuses
    }

    func adminToken() throws -> String {
        try String(contentsOfFile: adminTokenPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: - Start-up

    private func arguments(_ service: Service, port: Int, adminPort: Int? = nil) -> [String] {
        var arguments = [
            "--host", settings.host, "--port", String(port), "--data-dir", settings.dataDir,
            "--admin-port", String(adminPort ?? settings.adminPorts[service] ?? 0),
        ]
        func address(_ of: Service) -> String { endpoints.rpc[of]!.description }
        switch service {
        case .registry, .memory: break
        case .threads: arguments += ["--registry", address(.registry)]
        case .gateway:
            arguments += ["--registry", address(.registry), "--memory", address(.memory), "--threads", address(.threads)]
        }
        return arguments
    }

    /// `READY platos-memory rpc=127.0.0.1:7402 admin=127.0.0.1:8402`.
    private func record(_ service: Service, readyLine: String) throws {
        var fields: [String: RPCEndpoint] = [:]
        for word in readyLine.split(separator: " ") {
            let parts = word.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let address = RPCEndpoint(String(parts[1])) { fields[String(parts[0])] = address }
        }
        guard let rpc = fields["rpc"] else {
            throw DevStackError("platos-\(service.rawValue) printed a READY line without rpc=host:port: \(readyLine)")
        }
        endpoints.rpc[service] = rpc
        endpoints.admin[service] = fields["admin"]
    }

    private func waitUntilServing(_ service: Service, timeout: Duration = .seconds(30)) async throws {
        let address = endpoints.rpc[service]!
        let pool = RPCConnectionPool(endpoint: address)
        defer { Task { await pool.close() } }
        let client = RPCClient(transport: pool, defaultTimeout: .seconds(2))
        let deadline = ContinuousClock.now + timeout
        var last = "no answer"
        while ContinuousClock.now < deadline {
            do {
                let response = try await client.call(V1.HealthService.check, V1.HealthCheckRequest())
                if response.status == .serving { return }
                last = "status \(response.status)"
            } catch {
                last = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw DevStackError("platos-\(service.rawValue) does not answer health.check (\(last)); see \(logDir)/\(service.rawValue).log")
    }

    /// The first run of a data directory creates the demo scope's bootstrap admin token (through
    /// `platos-registry issue-admin-token`, which writes the registry database directly); later
    /// runs reuse it, unless they were asked for another scope (`--org/--project/--env`), which
    /// that token does not reach.
    private func ensureAdminToken() throws {
        let issuedFor = (try? String(contentsOfFile: adminTokenScopePath, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // A token without its scope file (a data directory from before the file existed) is of
        // an unknown scope: issued again, which writes the file.
        if let token = try? adminToken(), !token.isEmpty, issuedFor == scopeName { return }
        let issue = Process()
        issue.executableURL = settings.binDir.appendingPathComponent("platos-registry")
        issue.arguments = [
            "issue-admin-token", "--org", settings.scope.org, "--project", settings.scope.project,
            "--env", settings.scope.env, "--data-dir", settings.dataDir,
        ]
        let output = Pipe()
        issue.standardOutput = output
        try issue.run()
        let secret = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        issue.waitUntilExit()
        guard issue.terminationStatus == 0, !secret.isEmpty else {
            throw DevStackError("platos-registry issue-admin-token failed (exit \(issue.terminationStatus))")
        }
        _ = FileManager.default.createFile(atPath: adminTokenPath, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
        _ = FileManager.default.createFile(atPath: adminTokenScopePath, contents: Data((scopeName + "\n").utf8))
    }

    // MARK: - Supervision

    /// A child that exits on its own is reported and started again after a pause that doubles with
    /// each consecutive crash (0.5 s up to 30 s), on the same ports.
    private func childExited(_ service: Service, _ child: SupervisedProcess, _ how: String) async {
        guard !stopping, endpoints.rpc[service] != nil else { return }
        if child.uptime > .seconds(60) { restarts[service] = 0 }
        let attempt = restarts[service, default: 0]
        restarts[service] = attempt + 1
        let pause = Duration.milliseconds(min(30_000, 500 << min(attempt, 6)))
        Self.say("platos-\(service.rawValue) exited unexpectedly (\(how)); restarting in \(pause) — see \(child.logPath)")
        try? await Task.sleep(for: pause)
        guard !stopping else { return }
        var launched: Int32 = 0
        do {
            // A child that prints no READY in time is killed by `start` itself.
            _ = try await child.start()
            launched = child.pid
            try await waitUntilServing(service)
            Self.say("platos-\(service.rawValue) is back at \(endpoints.rpc[service]!.description) (pid \(child.pid))")
        } catch {
            Self.say("platos-\(service.rawValue) did not come back: \(error)")
            // One that runs but never serves would never exit either, so nothing would retry it:
            // killed, its exit drives the backoff. Only the run this restart launched, and not
            // while the stack is stopping (that drains it).
            if launched != 0, !stopping { child.killRun(launched) }
        }
    }

    /// Straight to fd 1, unbuffered, so whoever reads a pipe sees each line (READY above all) at once.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
