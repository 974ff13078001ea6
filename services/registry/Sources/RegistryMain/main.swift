// platos-registry: agents, clusters, memberships and tokens.
//
//   platos-registry [common flags]
//   platos-registry issue-admin-token --org O --project P --env E [--data-dir D] [--config F]
//
// The second form creates the first admin token of a scope straight in the database and prints
// its secret once: there is no built-in default secret to bootstrap from.
import Foundation
import PlatosAuth
import PlatosService
import RegistryService

await ServiceRunner.runHealthCheckIfAsked(.registry)

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "issue-admin-token" {
    arguments.removeFirst()
    var scopeParts: [String: String] = [:]
    var rest: [String] = []
    var it = arguments.makeIterator()
    while let arg = it.next() {
        if ["--org", "--project", "--env"].contains(arg), let value = it.next() {
            scopeParts[String(arg.dropFirst(2))] = value
        } else {
            rest.append(arg)
        }
    }
    do {
        let options = try ServiceOptions.parse(.registry, arguments: rest)
        guard let org = scopeParts["org"], let project = scopeParts["project"], let env = scopeParts["env"] else {
            throw ServiceOptionsError("issue-admin-token needs --org, --project and --env")
        }
        let handlers = try Registry.handlers(databasePath: options.databasePath, synchronous: options.synchronous)
        let secret = try await handlers.bootstrapAdminToken(org: org, project: project, env: env)
        print(secret)
    } catch {
        ServiceRunner.exitWithUsage(error, name: "registry")
    }
    exit(0)
}

let options: ServiceOptions
do {
    options = try ServiceOptions.parse(.registry, arguments: arguments)
} catch {
    ServiceRunner.exitWithUsage(error, name: "registry")
}
let logger = ServiceRunner.bootstrap(options)
do {
    let signer = try PrincipalSigner(secret: try options.loadSecret())
    let handlers = try Registry.handlers(databasePath: options.databasePath, synchronous: options.synchronous)
    try await ServiceRunner.run(options: options, router: handlers.router(signer: signer), logger: logger)
} catch {
    logger.critical("platos-registry stopped", metadata: ["error": "\(error)"])
    exit(1)
}
