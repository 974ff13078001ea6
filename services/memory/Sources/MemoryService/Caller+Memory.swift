import PlatosRPC
import PlatosService

extension Caller {
    /// What this caller reaches. Memory belongs to agents and clusters, so a principal that is not
    /// an agent (an admin token) has none to reach.
    func memoryAccess(_ method: String) throws -> MemoryAccess {
        guard !agentId.isEmpty else {
            throw RPCError(.permissionDenied, "\(method) needs an agent principal; this token is not tied to an agent")
        }
        return MemoryAccess(
            org: scope.org, project: scope.project, env: scope.env, agentId: agentId, clusterId: clusterId,
            userId: userId)
    }

    /// The end user the call acts for; writes and recalls are always about one.
    func requiredUser(_ method: String) throws -> String {
        guard !userId.isEmpty else {
            throw RPCError(
                .invalidArgument,
                "\(method) needs principal.user_id: send the end user in x-platos-user or use a token bound to a user")
        }
        return userId
    }
}

extension MemoryStoreError {
    /// The status a caller sees. `notFound` reads the same whether the id does not exist or
    /// belongs to someone else's scope.
    var rpcError: RPCError {
        switch self {
        case .notFound(let id):
            return RPCError(.notFound, "memory '\(id)' not found")
        case .versionConflict(let id, let expected, let current):
            return RPCError(
                .aborted,
                "memory '\(id)' is at version \(current), not the expected \(expected): read it again and retry")
        case .idempotencyKeyReused(let key):
            return RPCError(
                .failedPrecondition, "idempotency_key '\(key)' was already used for a write with different content")
        case .idempotentWriteOutOfReach(let key):
            return RPCError(
                .failedPrecondition,
                "idempotency_key '\(key)' was already used, and its memory is no longer within reach "
                    + "(deleted, or owned by a cluster this agent has left); use a new key to write again")
        case .invalidUpdate(let message):
            return RPCError(.invalidArgument, message)
        }
    }
}
