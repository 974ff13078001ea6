import Foundation
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosTestSupport
@testable import RegistryService

/// A registry on a fresh database, called in-process with principals signed as the gateway would.
struct RegistryFixture {
    static let secret = Array("registry-tests-internal-secret-0123456789".utf8)
    let handlers: RegistryHandlers
    let router: RPCRouter
    let signer = try! PrincipalSigner(secret: RegistryFixture.secret)

    static let scopeP = V1.Scope(org: "acme", project: "wally", env: "prod")
    static let scopeQ = V1.Scope(org: "acme", project: "other", env: "prod")
    static let scopeE2 = V1.Scope(org: "acme", project: "wally", env: "staging")

    init() throws {
        let path = TestDirectories.make("registry") + "/r.sqlite"
        handlers = try Registry.handlers(databasePath: path)
        router = handlers.router(signer: signer)
    }

    func admin(_ scope: V1.Scope = scopeP) -> RPCClient {
        client(V1.Principal(scope: scope, role: .admin))
    }

    func agent(_ id: String, cluster: String = "", scope: V1.Scope = scopeP) -> RPCClient {
        client(V1.Principal(scope: scope, agentId: id, clusterId: cluster, role: .agent))
    }

    var gateway: RPCClient { client(ServicePrincipal.gateway) }

    func client(_ principal: V1.Principal) -> RPCClient {
        RPCClient(transport: SignedTransport(inner: InProcessTransport(router: router), signer: signer, principal: principal))
    }

    /// No signature at all: what a caller that skips the gateway sends.
    var unsigned: RPCClient { RPCClient(transport: InProcessTransport(router: router)) }

    @discardableResult
    func createAgent(_ slug: String, scope: V1.Scope = scopeP) async throws -> V1.Agent {
        try await admin(scope).call(V1.AgentsService.create, V1.CreateAgentRequest(slug: slug, name: slug.capitalized))
    }
}

/// The error a call threw, as an RPCError (nil when it succeeded).
func rpcError(_ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(.unknown, "\(error)")
    }
}
