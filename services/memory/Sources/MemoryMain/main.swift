// platos-memory: cluster-shared memory per (cluster, user).
//
//   platos-memory [common flags]
//
// Thin on purpose: configuration in, service out. Everything testable lives in MemoryService.
import Foundation
import MemoryService
import PlatosAuth
import PlatosService

await ServiceRunner.runHealthCheckIfAsked(.memory)

let options: ServiceOptions
do {
    options = try ServiceOptions.parse(.memory)
} catch {
    ServiceRunner.exitWithUsage(error, name: "memory")
}
let logger = ServiceRunner.bootstrap(options)
do {
    let store = try SQLiteMemoryStore.open(path: options.databasePath, synchronous: options.synchronous)
    let signer = try PrincipalSigner(secret: options.loadSecret())
    let router = MemoryHandlers(store: store).router(signer: signer)
    let maintenance = Task { await store.runIndexMaintenance() }
    defer { maintenance.cancel() }
    try await ServiceRunner.run(options: options, router: router, logger: logger)
} catch {
    logger.critical("platos-memory stopped", metadata: ["error": "\(error)"])
    exit(1)
}
