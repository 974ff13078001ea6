import Foundation
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosTestSupport

/// A real service executable started for a test: launched from the build directory with a data
/// directory of its own, on port 0 (RPC and admin), and considered up once it prints its `READY`
/// line (no sleeps: the line is awaited with a deadline).
final class ServiceProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched through its own thread-safe API, and `output` is
    // Sendable.
    let name: String
    let dataDir: String
    let process = Process()
    private let output = OutputLines()
    private(set) var port = 0
    /// The admin HTTP port (`/metrics`, `/healthz`).
    private(set) var adminPort = 0

    /// The directory holding the built executables (next to the test bundle), or
    /// `PLATOS_BIN_DIR`.
    static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["PLATOS_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        var url = Bundle.main.bundleURL
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("platos-protogen").path),
            url.pathComponents.count > 1
        {
            url = url.deletingLastPathComponent()
        }
        return url
    }

    /// A fresh data directory for one test.
    static func temporaryDataDirectory() -> String {
        TestDirectories.make("platos-e2e")
    }

    /// Starts `platos-<name>` and waits up to `timeout` for it to be ready.
    init(_ name: String, dataDir: String, extraArguments: [String] = [], timeout: Duration = .seconds(20)) async throws {
        self.name = name
        self.dataDir = dataDir
        process.executableURL = Self.binDirectory.appendingPathComponent("platos-\(name)")
        process.arguments = ["--port", "0", "--admin-port", "0", "--data-dir", dataDir] + extraArguments
        var environment = ProcessInfo.processInfo.environment
        environment["PLATOS_LOG_LEVEL"] = environment["PLATOS_LOG_LEVEL"] ?? "warning"
        process.environment = environment
        output.capture(process)
        try process.run()
        do {
            let ready = try await output.waitFor("READY line from platos-\(name)", from: process, timeout: timeout) {
                $0.hasPrefix("READY ")
            }
            guard let port = Self.port(of: "rpc", in: ready), let adminPort = Self.port(of: "admin", in: ready) else {
                throw RPCError(.internal, "platos-\(name) printed a READY line without rpc= and admin=: \(ready)")
            }
            self.port = port
            self.adminPort = adminPort
        } catch {
            process.terminate()
            throw error
        }
    }

    /// The port of `field=<host>:<port>` in `READY platos-<name> rpc=<host>:<port> admin=<host>:<port>`.
    static func port(of field: String, in line: String) -> Int? {
        line.split(separator: " ").first { $0.hasPrefix("\(field)=") }
            .flatMap { $0.split(separator: ":").last }.flatMap { Int($0) }
    }

    /// `platos-registry issue-admin-token` against `dataDir`: the bootstrap admin secret.
    static func issueAdminToken(dataDir: String, org: String = "acme", project: String = "wally", env: String = "prod")
        throws -> (secret: String, exitStatus: Int32)
    {
        let bootstrap = Process()
        bootstrap.executableURL = binDirectory.appendingPathComponent("platos-registry")
        bootstrap.arguments = ["issue-admin-token", "--org", org, "--project", project, "--env", env, "--data-dir", dataDir]
        let output = Pipe()
        bootstrap.standardOutput = output
        try bootstrap.run()
        let secret = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        bootstrap.waitUntilExit()
        return (secret, bootstrap.terminationStatus)
    }

    /// SIGTERM, then the exit status.
    func stop() async -> Int32 {
        process.terminate()
        return await waitForExit()
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    func kill() async {
        Foundation.kill(process.processIdentifier, SIGKILL)
        _ = await waitForExit()
    }

    func waitForExit(timeout: Duration = .seconds(20)) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}

/// Signs principals the way the gateway does, with the secret a dev stack keeps in its data dir.
struct TestSigner {
    let signer: PrincipalSigner

    init(dataDir: String) throws {
        let text = try String(contentsOfFile: "\(dataDir)/internal.secret", encoding: .utf8)
        signer = try PrincipalSigner(secret: Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8))
    }

    /// A transport that stamps `principal` on every call, as the gateway would.
    func client(port: Int, principal: V1.Principal) -> RPCClient {
        let pool = RPCConnectionPool(host: "127.0.0.1", port: port)
        return RPCClient(transport: SignedTransport(inner: pool, signer: signer, principal: principal))
    }
}
