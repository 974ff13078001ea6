import PlatosProto

/// Where the registry keeps its data. Every method takes the caller's scope and touches nothing
/// outside it. SQLite now (``SQLiteRegistryStore``); another engine can follow behind this.
protocol RegistryStore: Sendable {
    func createAgent(_ request: V1.CreateAgentRequest, scope: V1.Scope) async throws -> V1.Agent
    func agent(_ id: String, scope: V1.Scope) async throws -> V1.Agent
    /// `reach` nil lists the whole scope (an admin); else only what that agent may read.
    func listAgents(_ request: V1.ListAgentsRequest, scope: V1.Scope, reach: AgentReach?) async throws
        -> V1.ListAgentsResponse
    func updateAgent(_ request: V1.UpdateAgentRequest, scope: V1.Scope) async throws -> V1.Agent
    func deleteAgent(_ id: String, scope: V1.Scope) async throws

    func createCluster(_ request: V1.CreateClusterRequest, scope: V1.Scope) async throws -> V1.Cluster
    func cluster(_ id: String, scope: V1.Scope) async throws -> V1.Cluster
    func listClusters(_ request: V1.ListClustersRequest, scope: V1.Scope, reach: AgentReach?) async throws
        -> V1.ListClustersResponse
    func updateCluster(_ request: V1.UpdateClusterRequest, scope: V1.Scope) async throws -> V1.Cluster
    func deleteCluster(_ id: String, scope: V1.Scope) async throws -> UInt64
    /// Puts `agentId` into `clusterId` (nil: out of any cluster). `requireCurrent` guards
    /// remove_member (the agent must be in that cluster); `requireNone` guards add_member.
    func setMembership(
        agentId: String, clusterId: String?, scope: V1.Scope, requireCurrent: String?, requireNone: Bool
    ) async throws -> (V1.Cluster?, UInt64)

    func issueToken(_ request: V1.IssueTokenRequest, scope: V1.Scope) async throws -> V1.IssueTokenResponse
    /// `actingFor`: the user a caller acts for ("" for none); it sees and revokes only the tokens
    /// bound to that user.
    func revokeToken(_ id: String, scope: V1.Scope, actingFor: String) async throws -> V1.TokenInfo
    func listTokens(_ request: V1.ListTokensRequest, scope: V1.Scope, actingFor: String) async throws
        -> V1.ListTokensResponse
    func resolve(secret: String) async throws -> V1.ResolveTokenResponse

    func events(after version: UInt64) async throws -> [V1.MembershipEvent]
    /// The newest membership version (0 before any change).
    func currentVersion() async throws -> UInt64
}

/// What an agent principal may read of the registry: itself, and its own cluster with its members.
/// Agents and clusters elsewhere in the scope are answered like ids that do not exist: nothing
/// crosses a cluster boundary (DESIGN §4). Admins read the whole project scope.
struct AgentReach: Sendable, Hashable {
    let agentId: String
    /// Empty when the agent is in no cluster; it then reaches only itself.
    let clusterId: String

    /// nil for a caller that reads the whole scope.
    init?(_ principal: V1.Principal) {
        guard principal.role != .admin else { return nil }
        agentId = principal.agentId
        clusterId = principal.clusterId
    }

    func reaches(_ agent: V1.Agent) -> Bool {
        (!agentId.isEmpty && agent.id == agentId) || (!clusterId.isEmpty && agent.clusterId == clusterId)
    }

    func reaches(_ cluster: V1.Cluster) -> Bool { !clusterId.isEmpty && cluster.id == clusterId }
}
