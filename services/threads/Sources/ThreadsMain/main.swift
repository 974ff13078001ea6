// platos-threads: parses configuration, opens the database and serves. Everything else lives in
// the ThreadsService library, which tests run in-process.
//
//   platos-threads [--registry H:P] [common flags]
import Foundation
import PlatosAuth
import PlatosRPC
import PlatosService
import ThreadsService

await ServiceRunner.runHealthCheckIfAsked(.threads)

let options: ServiceOptions
do {
    options = try ServiceOptions.parse(.threads)
} catch {
    ServiceRunner.exitWithUsage(error, name: "threads")
}
let logger = ServiceRunner.bootstrap(options)
do {
    let store = try SQLiteThreadsStore.open(path: options.databasePath, synchronous: options.synchronous)
    let signer = try PrincipalSigner(secret: options.loadSecret())
    let registry = options.peer("registry")
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
