import ArgumentParser
import Dispatch
import Foundation

/// `platos dev`: the whole stack on this machine, until Ctrl-C.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run registry, memory, threads and gateway locally on embedded SQLite.",
        discussion: """
            Starts the four services as child processes under --data-dir (logs in <data-dir>/logs), \
            waits until each answers health.check, creates the demo scope's admin token on the first \
            run (<data-dir>/admin.token), and prints how to call it. The last line it prints is \
            'READY platos-dev gateway=<host>:<port>'. A child that crashes is restarted with backoff. \
            Ctrl-C (or SIGTERM) stops all four gracefully; the exit status is 0 when all four exited 0. \
            A second run on the same data directory reuses the data.
            """
    )

    @Option(help: ArgumentHelp("Where the databases, secret, token and logs live (env PLATOS_DATA_DIR).", valueName: "path"))
    var dataDir: String?

    @Option(help: "The address every service binds.")
    var host = "127.0.0.1"

    @Option(help: "Gateway port.") var gatewayPort = 7400
    @Option(help: "Registry port.") var registryPort = 7401
    @Option(help: "Memory port.") var memoryPort = 7402
    @Option(help: "Threads port.") var threadsPort = 7403

    @Flag(help: "Let the OS pick every port, RPC and admin (for tests and side-by-side stacks).")
    var freePorts = false

    @Option(help: "The demo scope's org.") var org = "demo"
    @Option(help: "The demo scope's project.") var project = "demo"
    @Option(help: "The demo scope's env.") var env = "dev"

    @Option(help: ArgumentHelp("Directory of the platos-* executables (default: next to this one).", valueName: "path"))
    var binDir: String?

    func run() async throws {
        let dataDir = dataDir ?? ProcessInfo.processInfo.environment["PLATOS_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./data"
        var ports: [DevStack.Service: Int] = [.registry: registryPort, .memory: memoryPort, .threads: threadsPort, .gateway: gatewayPort]
        var adminPorts = ports.mapValues { $0 + 1000 }
        if freePorts {
            ports = ports.mapValues { _ in 0 }
            adminPorts = adminPorts.mapValues { _ in 0 }
        }
        let stack = DevStack(settings: .init(
            dataDir: dataDir, host: host, ports: ports, adminPorts: adminPorts, binDir: Self.binDirectory(binDir),
            scope: (org, project, env)))

        let (events, signals) = AsyncStream<Event>.makeStream()
        let sources = Self.forward([SIGINT, SIGTERM], to: signals)
        DevStack.say("starting the Platos dev stack in \(dataDir)")
        Task {
            do {
                let endpoints = try await stack.start()
                DevStack.say(try await banner(stack: stack, endpoints: endpoints, dataDir: dataDir))
                DevStack.say("READY platos-dev gateway=\(endpoints.rpc[.gateway]!.description)")
            } catch {
                signals.yield(.startFailed(error))
            }
        }
        var failure: (any Error)?
        for await event in events {
            if case .startFailed(let error) = event { failure = error }
            break
        }
        DevStack.say("\nstopping...")
        var clean = failure == nil
        for (service, status) in await stack.stop() {
            guard let status else { continue }
            DevStack.say("  platos-\(service.rawValue) exited \(status)")
            if status != 0 { clean = false }
        }
        withExtendedLifetime(sources) {}
        if let failure {
            FileHandle.standardError.write(Data("platos dev: \(failure)\n".utf8))
        }
        DevStack.say(clean ? "stopped" : "stopped, not cleanly: see \(dataDir)/logs/")
        if !clean { throw ExitCode.failure }
    }

    enum Event: Sendable {
        case signal(Int32)
        case startFailed(any Error)
    }

    /// SIGINT and SIGTERM become events instead of killing this process, so it can stop its
    /// children first.
    static func forward(_ signals: [Int32], to continuation: AsyncStream<Event>.Continuation) -> [any DispatchSourceSignal] {
        signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(.signal(number)) }
            source.resume()
            return source
        }
    }

    static func binDirectory(_ explicit: String?) -> URL {
        if let explicit { return URL(fileURLWithPath: explicit) }
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return me.deletingLastPathComponent()
    }

    func banner(stack: DevStack, endpoints: DevStack.Endpoints, dataDir: String) async throws -> String {
        let gateway = endpoints.rpc[.gateway]!
        var environment: [String] = []
        if gateway.description != GatewayOptions.defaultGateway { environment.append("export PLATOS_GATEWAY=\(gateway.description)") }
        if dataDir != "./data" { environment.append("export PLATOS_DATA_DIR=\(dataDir)") }
        let services = DevStack.Service.allCases.map { service in
            let admin = endpoints.admin[service].map { "  metrics http://\($0.description)/metrics" } ?? ""
            return "  \(service.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(endpoints.rpc[service]!.description)\(admin)"
        }
        return """

            Platos is up: gateway \(gateway.description), scope \(org)/\(project)/\(env).
            \(services.joined(separator: "\n"))
              admin token  \(try await stack.adminToken())   (also in \(dataDir)/admin.token)
              logs         \(dataDir)/logs/

            Try, from another terminal in this directory (with the platos executables on PATH):
            \(environment.map { "  \($0)\n" }.joined())  platos call agents.create '{"slug": "wally-chat", "name": "Wally chat"}'
              platos call agents.list '{}' --output table
              platos call tokens.list '{}' --output table
            More: `platos call --list`, `platos call --describe <method>`, and the README's walkthrough.

            Ctrl-C stops the stack.
            """
    }
}
