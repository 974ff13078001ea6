// platos-threads: parses configuration, opens the database and serves. Everything else lives in
// the ThreadsService library, which tests run in-process.
import Foundation
import PlatosAuth
import PlatosRPC
import PlatosService
import ThreadsService

await ServiceRunner.runHealthCheckIfAsked(name: "threads", defaultPort: 7403)

/// `--registry host:port` (or PLATOS_REGISTRY_ADDR) is this service's own flag; it is taken out
/// here because ServiceOptions rejects flags it does not know.
func splitRegistryFlag(_ arguments: [String], environment: [String: String]) throws -> (String, [String]) {
    var registry = environment["PLATOS_REGISTRY_ADDR"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1:7401"
    var rest: [String] = []
    var index = arguments.startIndex
    while index < arguments.endIndex {
        let argument = arguments[index]
        if argument == "--registry" {
            let next = arguments.index(after: index)
            guard next < arguments.endIndex else { throw ServiceOptionsError("--registry needs a value") }
            registry = arguments[next]
            index = arguments.index(after: next)
            continue
        }
        if argument.hasPrefix("--registry=") {
            registry = String(argument.dropFirst("--registry=".count))
        } else {
            rest.append(argument)
        }
        index = arguments.index(after: index)
    }
    return (registry, rest)
}

func parseAddress(_ address: String) throws -> (host: String, port: Int) {
    guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
        (1...65535).contains(port), colon > address.startIndex
    else {
        throw ServiceOptionsError("--registry must be host:port, got '\(address)'")
    }
    return (String(address[..<colon]), port)
}

let environment = ProcessInfo.processInfo.environment
let options: ServiceOptions
let registry: (host: String, port: Int)
do {
    let (registryAddress, rest) = try splitRegistryFlag(
        Array(CommandLine.arguments.dropFirst()), environment: environment)
    registry = try parseAddress(registryAddress)
    options = try ServiceOptions.parse(name: "threads", defaultPort: 7403, arguments: rest, environment: environment)
} catch {
    ServiceRunner.exitWithUsage(error, name: "threads")
}

let logger = ServiceRunner.logger(options)
do {
    let store = try SQLiteThreadsStore.open(path: options.databasePath, synchronous: options.synchronous)
    let signer = try PrincipalSigner(secret: options.loadSecret())
    let directory = RegistryClusterDirectory(
        transport: RPCConnectionPool(host: registry.host, port: registry.port), signer: signer)
    let service = ThreadsService(store: store, directory: directory, signer: signer, logger: logger)
    let reaper = Task { await service.runLeaseReaper() }
    defer { reaper.cancel() }
    try await ServiceRunner.run(options: options, router: service.router, logger: logger)
} catch {
    logger.critical("platos-threads stopped", metadata: ["error": "\(error)"])
    exit(1)
}
