import GRDB
import PlatosProto

/// Whose threads and tasks a caller may touch: those owned by its cluster, and threads owned by
/// itself as an agent (created while it was in no cluster), inside its project scope.
///
/// Every query takes one of these, so the ownership test is part of the SQL rather than a check
/// made in Swift after fetching a row.
public struct ThreadAccess: Sendable, Hashable {
    public let org: String
    public let project: String
    public let env: String
    /// Empty for an admin principal that is not an agent; such a caller owns nothing.
    public let agentId: String
    /// Empty when the agent is in no cluster.
    public let clusterId: String

    public init(scope: V1.Scope, agentId: String, clusterId: String) {
        org = scope.org
        project = scope.project
        env = scope.env
        self.agentId = agentId
        self.clusterId = clusterId
    }

    public var scope: V1.Scope { V1.Scope(org: org, project: project, env: env) }

    /// The owner a thread created by this caller gets: its cluster, else itself.
    var newThreadOwner: (kind: V1.OwnerKind, id: String) {
        clusterId.isEmpty ? (.agent, agentId) : (.cluster, clusterId)
    }

    /// True for a row of `threads` (under `alias`) this caller may see. An empty cluster or agent
    /// id matches nothing, because every stored owner id is non-empty.
    static func threadVisible(_ alias: String) -> String {
        """
        \(alias).org = ? AND \(alias).project = ? AND \(alias).env = ? \
        AND ((\(alias).owner_kind = \(V1.OwnerKind.cluster.protoValue) AND \(alias).owner_id = ?) \
        OR (\(alias).owner_kind = \(V1.OwnerKind.agent.protoValue) AND \(alias).owner_id = ?))
        """
    }

    var threadVisibleArguments: StatementArguments {
        [org, project, env, clusterId, agentId]
    }

    /// True for a row of `tasks` or `task_events` (under `alias`) this caller may see: tasks only
    /// ever belong to a cluster, so an unclustered caller sees none.
    static func taskVisible(_ alias: String) -> String {
        "\(alias).org = ? AND \(alias).project = ? AND \(alias).env = ? AND \(alias).cluster_id = ? AND \(alias).cluster_id <> ''"
    }

    var taskVisibleArguments: StatementArguments { [org, project, env, clusterId] }
}
