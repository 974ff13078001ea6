import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosService
import Testing
import ThreadsService

/// The directory against a stand-in registry that, like the real one, trusts only signed
/// principals.
@Suite("threads: registry cluster directory")
struct RegistryClusterDirectoryTests {
    static let scope = ThreadsHarness.scope
    static let agents = [
        V1.Agent(id: "agent_a", scope: scope, slug: "alpha", clusterId: "cluster_one"),
        V1.Agent(id: "agent_b", scope: scope, slug: "beta"),
        V1.Agent(id: "agent_c", scope: scope, slug: "gamma", clusterId: "cluster_one"),
    ]

    static func registry(_ signer: PrincipalSigner) -> RPCRouter {
        var routes = AuthenticatedRouter(signer: signer)
        routes.register(V1.AgentsService.get) { request, caller in
            guard caller.isAdmin, caller.agentId.isEmpty else { throw RPCError(.permissionDenied, "admin only") }
            guard let agent = agents.first(where: { $0.id == request.agentId }) else {
                throw RPCError(.notFound, "agent '\(request.agentId)' not found")
            }
            return agent
        }
        // One agent per page, so a slug search has to follow page tokens.
        routes.register(V1.AgentsService.list) { request, caller in
            guard caller.isAdmin else { throw RPCError(.permissionDenied, "admin only") }
            let index = Int(request.page?.pageToken ?? "") ?? 0
            return V1.ListAgentsResponse(
                agents: [agents[index]], nextPageToken: index + 1 < agents.count ? "\(index + 1)" : "")
        }
        return routes.router
    }

    @Test func resolvesIdsAndSlugsWithASignedAdminPrincipal() async throws {
        let signer = try PrincipalSigner(secret: Array("a test secret of at least thirty-two bytes".utf8))
        let directory = RegistryClusterDirectory(transport: InProcessTransport(router: Self.registry(signer)), signer: signer)
        #expect(try await directory.agent("agent_a", in: Self.scope) == DirectoryAgent(agentId: "agent_a", clusterId: "cluster_one"))
        #expect(try await directory.agent("gamma", in: Self.scope) == DirectoryAgent(agentId: "agent_c", clusterId: "cluster_one"))
        #expect(try await directory.agent("beta", in: Self.scope) == DirectoryAgent(agentId: "agent_b", clusterId: ""))
        #expect(try await directory.agent("nobody", in: Self.scope) == nil)
    }

    @Test func aRegistryThatRejectsTheSignatureFailsTheLookupClosed() async throws {
        let registrySigner = try PrincipalSigner(secret: Array("the registry's secret, thirty-two bytes or more".utf8))
        let ours = try PrincipalSigner(secret: Array("a different secret, also thirty-two bytes long".utf8))
        let directory = RegistryClusterDirectory(
            transport: InProcessTransport(router: Self.registry(registrySigner)), signer: ours)
        let error = await rpcError { _ = try await directory.agent("agent_a", in: Self.scope) }
        #expect(error?.code == .unauthenticated)
    }
}
