import MemoryService
import PlatosAuth
import PlatosService

await ServiceRunner.runHealthCheckIfAsked(name: "memory", defaultPort: 7402)

// Thin on purpose: configuration in, service out. Everything testable lives in MemoryService.
let options: ServiceOptions
let store: SQLiteMemoryStore
let signer: PrincipalSigner
do {
    options = try ServiceOptions.parse(name: "memory", defaultPort: 7402)
    store = try SQLiteMemoryStore.open(path: options.databasePath, synchronous: options.synchronous)
    signer = try PrincipalSigner(secret: options.loadSecret())
} catch {
    ServiceRunner.exitWithUsage(error, name: "memory")
}
let logger = ServiceRunner.logger(options)
let router = MemoryHandlers(store: store).router(signer: signer)
try await ServiceRunner.run(options: options, router: router, logger: logger)
