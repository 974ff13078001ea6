import Foundation
import Logging
import NIOPosix
import PlatosProto
import PlatosRPC
import ServiceLifecycle

/// Runs a backend executable: serves `router` on the configured address, prints one readiness
/// line (`READY <name> rpc=<host>:<port>`, for scripts and end-to-end tests), and drains
/// gracefully on SIGTERM or SIGINT.
public enum ServiceRunner {
    public static func run(options: ServiceOptions, router: RPCRouter, logger: Logger) async throws {
        var configuration = RPCServerConfiguration(host: options.host, port: options.port, serverName: "platos-\(options.name)")
        configuration.shutdownGracePeriod = .seconds(10)
        let server = RPCServer(configuration: configuration, router: router, logger: logger)
        let address = try await server.start()
        // Written straight to fd 1, unbuffered, so a supervisor reading a pipe sees it at once.
        FileHandle.standardOutput.write(
            Data("READY platos-\(options.name) rpc=\(options.host):\(address.port ?? options.port)\n".utf8))
        let group = ServiceGroup(
            configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// Logs to stderr at the configured level.
    public static func logger(_ options: ServiceOptions) -> Logger {
        var logger = Logger(label: "platos.\(options.name)")
        logger.logLevel = options.logLevel
        return logger
    }

    /// Prints a configuration error the way a person needs it, and exits 2.
    public static func exitWithUsage(_ error: any Error, name: String) -> Never {
        FileHandle.standardError.write(Data("platos-\(name): \(error)\n".utf8))
        exit(2)
    }
}

extension ServiceRunner {
    /// `platos-<name> health [--host H] [--port P]`: asks the process listening there for
    /// `health.check` and exits 0 when it is SERVING, 1 otherwise. Container health checks use it.
    /// Returns without doing anything when the arguments are not a health check.
    public static func runHealthCheckIfAsked(name: String, defaultPort: Int, arguments: [String] = Array(CommandLine.arguments.dropFirst())) async {
        guard arguments.first == "health" else { return }
        var host = "127.0.0.1"
        var port = defaultPort
        var it = arguments.dropFirst().makeIterator()
        while let arg = it.next() {
            if arg == "--host", let value = it.next() { host = value }
            if arg == "--port", let value = it.next().flatMap({ Int($0) }) { port = value }
        }
        let pool = RPCConnectionPool(host: host, port: port)
        let client = RPCClient(transport: pool, defaultTimeout: .seconds(3))
        let serving = (try? await client.call(V1.HealthService.check, V1.HealthCheckRequest()))?.status == .serving
        await pool.close()
        print(serving ? "platos-\(name) at \(host):\(port): SERVING" : "platos-\(name) at \(host):\(port): NOT SERVING")
        exit(serving ? 0 : 1)
    }
}
