import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import PlatosProto
import PlatosRPC
import ServiceLifecycle

/// Runs an executable: serves `router` on the configured address and the admin HTTP server
/// (`/metrics`, `/healthz`) on the admin port, prints one readiness line
/// (`READY platos-<name> rpc=<host>:<port> admin=<host>:<adminPort>`, for scripts and
/// end-to-end tests), and drains gracefully on SIGTERM or SIGINT: the RPC server first (while
/// `/healthz` answers 503), then the admin server. Under `platos dev`, it also stops when
/// `platos dev` is gone (``ParentWatch``).
public enum ServiceRunner {
    /// `configure` adjusts the RPC server's settings beyond the options (the gateway's limits).
    public static func run(
        options: ServiceOptions, router: RPCRouter, logger: Logger,
        configure: (inout RPCServerConfiguration) -> Void = { _ in }
    ) async throws {
        let registry = metricsRegistry
        var configuration = RPCServerConfiguration(host: options.host, port: options.port, serverName: "platos-\(options.name)")
        configuration.shutdownGracePeriod = .seconds(10)
        configure(&configuration)
        let server = RPCServer(configuration: configuration, router: router, logger: logger)
        let admin = AdminHTTPServer(
            host: options.host, port: options.adminPort, registry: registry,
            isServing: { !server.isDraining }, logger: logger)
        let rpcAddress = try await server.start()
        let adminAddress: SocketAddress
        do {
            adminAddress = try await admin.start()
        } catch {
            await server.closeImmediately()
            throw ServiceOptionsError("cannot serve the admin port \(options.host):\(options.adminPort): \(error)")
        }
        // Written straight to fd 1, unbuffered, so a supervisor reading a pipe sees it at once.
        FileHandle.standardOutput.write(
            Data(
                ("READY platos-\(options.name) rpc=\(options.host):\(rpcAddress.port ?? options.port)"
                    + " admin=\(options.host):\(adminAddress.port ?? options.adminPort)\n").utf8))
        let parentWatch = ParentWatch.start(environment: ProcessInfo.processInfo.environment, logger: logger)
        defer { parentWatch?.cancel() }
        // Shut down in reverse order: the RPC server drains first, /healthz says 503 meanwhile.
        let group = ServiceGroup(
            configuration: .init(services: [admin, server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// Call first thing after parsing the options, before opening stores or clients: tunes the
    /// allocator (``MallocTuning``), sets up metrics (instruments made before this record
    /// nothing) and returns the process's logger.
    public static func bootstrap(_ options: ServiceOptions) -> Logger {
        MallocTuning.keepFreedMemory()
        _ = metricsRegistry
        return logger(options)
    }

    /// The process's Prometheus registry. Its first use bootstraps swift-metrics with it, so
    /// every swift-metrics instrument made afterwards is exported on `/metrics`.
    public static let metricsRegistry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // RPC latencies are mostly well under the default 5 ms first bucket.
        factory.durationHistogramBuckets["rpc_server_call_duration_seconds"] = [
            .microseconds(100), .microseconds(250), .microseconds(500),
            .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        // Writes per group commit: 1 up to GroupCommitWriter.maxBatch (512).
        factory.valueHistogramBuckets["db_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

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
    /// `platos-<name> health [--host H] [--port P] [--config F]`: asks the process listening there
    /// for `health.check` and exits 0 when it is SERVING, 1 otherwise. The address is resolved as
    /// the service resolves its own (flags, environment, config file). Container health checks
    /// use it.
    /// Returns without doing anything when the arguments are not a health check.
    public static func runHealthCheckIfAsked(_ kind: ServiceKind, arguments: [String] = Array(CommandLine.arguments.dropFirst())) async {
        guard arguments.first == "health" else { return }
        let name = kind.rawValue
        // The address comes from the same places as the service's own: flags, then the
        // environment, then the config file (`--config` or PLATOS_CONFIG).
        let options: ServiceOptions
        do {
            options = try ServiceOptions.parse(kind, arguments: Array(arguments.dropFirst()))
        } catch {
            exitWithUsage(error, name: name)
        }
        // A service bound to every interface is reached on loopback.
        let host = ["0.0.0.0", "::", "[::]"].contains(options.host) ? "127.0.0.1" : options.host
        let port = options.port
        let pool = RPCConnectionPool(host: host, port: port)
        let client = RPCClient(transport: pool, defaultTimeout: .seconds(3))
        let serving = (try? await client.call(V1.HealthService.check, V1.HealthCheckRequest()))?.status == .serving
        await pool.close()
        print(serving ? "platos-\(name) at \(host):\(port): SERVING" : "platos-\(name) at \(host):\(port): NOT SERVING")
        exit(serving ? 0 : 1)
    }
}
