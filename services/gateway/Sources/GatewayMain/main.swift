// platos-gateway: the only public endpoint.
//
//   platos-gateway [--registry H:P] [--memory H:P] [--threads H:P] [--max-live-calls-per-agent N]
//                  [--rate-limit-per-second N] [--rate-limit-burst N] [common flags]
//
// Every setting also comes from the config file and the environment (README.md, "Configuration").
import Foundation
import GatewayService
import PlatosAuth
import PlatosService

await ServiceRunner.runHealthCheckIfAsked(.gateway)

let options: ServiceOptions
do {
    options = try ServiceOptions.parse(.gateway)
} catch {
    ServiceRunner.exitWithUsage(error, name: "gateway")
}
let logger = ServiceRunner.bootstrap(options)
do {
    var configuration = GatewayConfiguration()
    configuration.registry = options.peer("registry")
    configuration.memory = options.peer("memory")
    configuration.threads = options.peer("threads")
    configuration.maxLiveCallsPerAgent = options.limit(.maxLiveCallsPerAgent)
    configuration.rateLimitPerSecond = Double(options.limit(.rateLimitPerSecond))
    configuration.rateLimitBurst = Double(options.limit(.rateLimitBurst))
    let gateway = Gateway(configuration: configuration, signer: try PrincipalSigner(secret: try options.loadSecret()), logger: logger)
    let watcher = Task { await gateway.watchMemberships() }
    try await ServiceRunner.run(
        options: options, router: gateway.router(), logger: logger, configure: Gateway.configurePublicServer)
    watcher.cancel()
    await gateway.close()
} catch {
    logger.critical("platos-gateway stopped", metadata: ["error": "\(error)"])
    exit(1)
}
