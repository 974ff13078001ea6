// platos-gateway: the only public endpoint.
//
//   platos-gateway [--registry H:P] [--memory H:P] [--threads H:P] [common service flags]
//
// Backend addresses also come from PLATOS_REGISTRY_ADDR, PLATOS_MEMORY_ADDR, PLATOS_THREADS_ADDR.
import Foundation
import GatewayService
import PlatosAuth
import PlatosService

await ServiceRunner.runHealthCheckIfAsked(name: "gateway", defaultPort: 7400)

var configuration = GatewayConfiguration()
var rest: [String] = []
do {
    let environment = ProcessInfo.processInfo.environment
    for (key, apply) in [
        ("PLATOS_REGISTRY_ADDR", { (e: GatewayConfiguration.Endpoint) in configuration.registry = e }),
        ("PLATOS_MEMORY_ADDR", { configuration.memory = $0 }),
        ("PLATOS_THREADS_ADDR", { configuration.threads = $0 }),
    ] as [(String, (GatewayConfiguration.Endpoint) -> Void)] {
        if let text = environment[key] {
            guard let endpoint = GatewayConfiguration.Endpoint(text) else { throw ServiceOptionsError("\(key) must be host:port, got '\(text)'") }
            apply(endpoint)
        }
    }
    var it = CommandLine.arguments.dropFirst().makeIterator()
    while let arg = it.next() {
        switch arg {
        case "--registry", "--memory", "--threads":
            guard let text = it.next(), let endpoint = GatewayConfiguration.Endpoint(text) else {
                throw ServiceOptionsError("\(arg) needs host:port")
            }
            if arg == "--registry" { configuration.registry = endpoint }
            if arg == "--memory" { configuration.memory = endpoint }
            if arg == "--threads" { configuration.threads = endpoint }
        default:
            rest.append(arg)
        }
    }
} catch {
    ServiceRunner.exitWithUsage(error, name: "gateway")
}

let options: ServiceOptions
do {
    options = try ServiceOptions.parse(name: "gateway", defaultPort: 7400, arguments: rest)
} catch {
    ServiceRunner.exitWithUsage(error, name: "gateway")
}
let logger = ServiceRunner.logger(options)
do {
    let gateway = Gateway(configuration: configuration, signer: try PrincipalSigner(secret: try options.loadSecret()), logger: logger)
    let watcher = Task { await gateway.watchMemberships() }
    try await ServiceRunner.run(options: options, router: gateway.router(), logger: logger)
    watcher.cancel()
    await gateway.close()
} catch {
    logger.critical("platos-gateway stopped: \(error)")
    exit(1)
}
