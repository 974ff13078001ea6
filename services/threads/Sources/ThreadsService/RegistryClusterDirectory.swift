import PlatosAuth
import PlatosProto
import PlatosRPC

/// The cluster directory of a running stack: asks `platos-registry` (`agents.get`, and
/// `agents.list` to find a slug) with a principal it signs itself, an admin of the caller's
/// project scope tied to no agent, since the registry trusts only signed principals too.
public struct RegistryClusterDirectory: ClusterDirectory {
    private let transport: any RPCTransport
    private let signer: PrincipalSigner
    /// Bounds a slug search, so a huge project cannot turn one spawn into an unbounded scan.
    private let maxListPages = 20

    /// `transport` reaches the registry (for example an `RPCConnectionPool`); `signer` holds the
    /// internal secret the registry verifies.
    public init(transport: any RPCTransport, signer: PrincipalSigner) {
        self.transport = transport
        self.signer = signer
    }

    public func agent(_ slugOrId: String, in scope: V1.Scope) async throws -> DirectoryAgent? {
        let client = RPCClient(
            transport: SignedPrincipalTransport(
                inner: transport, signer: signer, principal: V1.Principal(scope: scope, role: .admin)),
            defaultTimeout: .seconds(5))
        do {
            let agent = try await client.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: slugOrId))
            if Self.inScope(agent, scope) { return DirectoryAgent(agentId: agent.id, clusterId: agent.clusterId) }
        } catch let error as RPCError where error.code == .notFound || error.code == .invalidArgument {
            // Not an id (or not one the registry knows): it may be a slug.
        }
        var token = ""
        for _ in 0..<maxListPages {
            let page = try await client.call(
                V1.AgentsService.list, V1.ListAgentsRequest(page: V1.PageRequest(pageSize: 500, pageToken: token)))
            if let agent = page.agents.first(where: { $0.slug == slugOrId && Self.inScope($0, scope) }) {
                return DirectoryAgent(agentId: agent.id, clusterId: agent.clusterId)
            }
            guard !page.nextPageToken.isEmpty else { return nil }
            token = page.nextPageToken
        }
        return nil
    }

    /// The registry answers within the signed scope; checked again here so that a registry bug
    /// cannot make a sibling of an agent in another project. An agent without a scope fails.
    private static func inScope(_ agent: V1.Agent, _ scope: V1.Scope) -> Bool {
        guard let agentScope = agent.scope else { return false }
        return agentScope.org == scope.org && agentScope.project == scope.project && agentScope.env == scope.env
    }
}

/// Stamps a signed principal on every call before handing it to `inner`, as the gateway does.
public struct SignedPrincipalTransport: RPCTransport {
    let inner: any RPCTransport
    let signer: PrincipalSigner
    let principal: V1.Principal

    public init(inner: any RPCTransport, signer: PrincipalSigner, principal: V1.Principal) {
        self.inner = inner
        self.signer = signer
        self.principal = principal
    }

    private func stamped(_ metadata: Metadata, _ method: String) throws -> Metadata {
        var all = metadata
        for entry in try signer.stamp(principal, method: method) { all[entry.key] = entry.value }
        return all
    }

    public func unary(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8] {
        try await inner.unary(
            method: method, payload: payload, metadata: try stamped(metadata, method.name), deadline: deadline)
    }

    public func serverStreaming(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        do {
            return inner.serverStreaming(
                method: method, payload: payload, metadata: try stamped(metadata, method.name), deadline: deadline)
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
    }
}
