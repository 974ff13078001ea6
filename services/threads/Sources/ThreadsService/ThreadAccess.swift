import GRDB
import PlatosProto

/// Whose threads and tasks a caller may touch: those owned by its cluster, and threads owned by
/// itself as an agent (created while it was in no cluster), inside its project scope. A caller
/// acting for an end user (a token bound to one, `x-platos-user`, or the user of the task it
/// works on) sees, of those, only threads and tasks bound to that user or to none: one bound to
/// another user is answered exactly like one that does not exist. A caller acting for no user
/// (the agent as itself) sees all of them.
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
    /// The end user the caller acts for; empty when it acts for none, and then it is not
    /// restricted by the users threads are bound to.
    public let userId: String

    public init(scope: V1.Scope, agentId: String, clusterId: String, userId: String = "") {
        org = scope.org
        project = scope.project
        env = scope.env
        self.agentId = agentId
        self.clusterId = clusterId
        self.userId = userId
    }

    /// The same reach, whichever end user threads and tasks are bound to.
    var anyUser: ThreadAccess {
        ThreadAccess(scope: scope, agentId: agentId, clusterId: clusterId)
    }

    public var scope: V1.Scope { V1.Scope(org: org, project: project, env: env) }

    /// The owner a thread created by this caller gets: its cluster, else itself.
    var newThreadOwner: (kind: V1.OwnerKind, id: String) {
        clusterId.isEmpty ? (.agent, agentId) : (.cluster, clusterId)
    }

    /// True for a row of `threads` (under `alias`) this caller may see. An empty cluster or agent
    /// id matches nothing, because every stored owner id is non-empty. The last clause is the
    /// end user's (``userVisible(_:)``). Every statement that reaches a thread by id or lists
    /// them carries this whole predicate, so no call can skip the user check.
    static func threadVisible(_ alias: String) -> String {
        """
        \(alias).org = ? AND \(alias).project = ? AND \(alias).env = ? \
        AND ((\(alias).owner_kind = \(V1.OwnerKind.cluster.protoValue) AND \(alias).owner_id = ?) \
        OR (\(alias).owner_kind = \(V1.OwnerKind.agent.protoValue) AND \(alias).owner_id = ?)) \
        AND \(userVisible(alias))
        """
    }

    var threadVisibleArguments: StatementArguments {
        [org, project, env, clusterId, agentId, userId, userId]
    }

    /// True for a row of `tasks` or `task_events` (under `alias`) this caller may see: tasks only
    /// ever belong to a cluster, so an unclustered caller sees none; and, as for threads, only
    /// tasks spawned for no user or for the caller's, unless it acts for none. Every statement
    /// that reaches a task or its events for a caller carries this whole predicate (reads, claims,
    /// the worker's and the spawner's changes, watches); the lease reaper, which acts for nobody,
    /// uses an access with no user and so still reaches every task of the task's cluster.
    static func taskVisible(_ alias: String) -> String {
        """
        \(alias).org = ? AND \(alias).project = ? AND \(alias).env = ? \
        AND \(alias).cluster_id = ? AND \(alias).cluster_id <> '' AND \(userVisible(alias))
        """
    }

    var taskVisibleArguments: StatementArguments { [org, project, env, clusterId, userId, userId] }

    /// The end user's clause, for a row (under `alias`) with a `user_id` column: a row bound to
    /// no user, or to the caller's, or a caller acting for none. Takes ``userVisibleArguments``.
    static func userVisible(_ alias: String) -> String {
        "(\(alias).user_id = '' OR \(alias).user_id = ? OR ? = '')"
    }

    var userVisibleArguments: StatementArguments { [userId, userId] }
}
