import PlatosProto

/// Who owns a memory: a cluster (shared by its members) or one agent.
public struct MemoryOwner: Sendable, Hashable {
    public var kind: V1.OwnerKind
    public var id: String

    public static func cluster(_ id: String) -> MemoryOwner { MemoryOwner(kind: .cluster, id: id) }
    public static func agent(_ id: String) -> MemoryOwner { MemoryOwner(kind: .agent, id: id) }

    /// The owner of a new memory. DESIGN §5.2: the writer's cluster at write time when it has one
    /// and the memory is shared, else the writer agent. `clusterId` comes from the signed
    /// principal, so it is the cluster the agent is in now, never one a request body names.
    public static func forWrite(agentId: String, clusterId: String, visibility: V1.Visibility) -> MemoryOwner {
        if !clusterId.isEmpty, visibility == .shared { return .cluster(clusterId) }
        return .agent(agentId)
    }
}

/// One owner's memories about one end user inside one project scope: the unit a recall searches
/// and the unit the full-text index is partitioned by.
public struct MemoryScope: Sendable, Hashable {
    public var org: String
    public var project: String
    public var env: String
    public var owner: MemoryOwner
    public var userId: String

    public init(org: String, project: String, env: String, owner: MemoryOwner, userId: String) {
        self.org = org
        self.project = project
        self.env = env
        self.owner = owner
        self.userId = userId
    }

    /// The prefix of every index term of this scope: 8 base-36 digits (~41 bits) of a stable hash.
    ///
    /// Two scopes whose prefixes collide only share index terms; every query also checks the
    /// owner columns in SQL, so a collision can change ranking statistics, never who sees what.
    var termPrefix: String {
        var hash = StableHash()
        hash.combine(field: org)
        hash.combine(field: project)
        hash.combine(field: env)
        hash.combine(field: String(owner.kind.protoValue))
        hash.combine(field: owner.id)
        hash.combine(field: userId)
        return hash.base36(digits: 8)
    }
}

/// What one caller may see: its project scope, its current cluster and itself, and the end user
/// it acts for (when it acts for one).
public struct MemoryAccess: Sendable, Hashable {
    public var org: String
    public var project: String
    public var env: String
    public var agentId: String
    /// Empty when the caller is in no cluster.
    public var clusterId: String
    /// Empty when the call acts for no end user; then every user's memories in the owner scope
    /// are visible (recall and write always need a user).
    public var userId: String

    public init(org: String, project: String, env: String, agentId: String, clusterId: String, userId: String) {
        self.org = org
        self.project = project
        self.env = env
        self.agentId = agentId
        self.clusterId = clusterId
        self.userId = userId
    }

    /// The owners whose memories the caller reaches: its current cluster's (shared) and its own.
    /// The cluster of the principal is the agent's current one, so memory of a cluster it left
    /// is out of reach from the moment the registry records the move.
    public var owners: [MemoryOwner] {
        clusterId.isEmpty ? [.agent(agentId)] : [.cluster(clusterId), .agent(agentId)]
    }

    /// The index partitions a recall for `userId` searches.
    func recallScopes(userId: String) -> [MemoryScope] {
        owners.map { MemoryScope(org: org, project: project, env: env, owner: $0, userId: userId) }
    }
}
