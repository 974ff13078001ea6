import PlatosProto
import PlatosRPC

/// The registry's errors, worded once so every path says the same thing. Anything outside the
/// caller's scope is reported exactly like an id that does not exist.
enum RegistryError {
    static func invalid(_ field: String, _ problem: String) -> RPCError {
        RPCError(.invalidArgument, "\(field) \(problem)")
    }

    static func agentNotFound(_ id: String) -> RPCError { RPCError(.notFound, "agent '\(id)' not found") }
    static func clusterNotFound(_ id: String) -> RPCError { RPCError(.notFound, "cluster '\(id)' not found") }
    static func tokenNotFound(_ id: String) -> RPCError { RPCError(.notFound, "token '\(id)' not found") }

    static func adminRequired(_ method: String) -> RPCError {
        RPCError(.permissionDenied, "\(method) needs an admin token for this project scope")
    }

    static func alreadyInCluster(agent: String, slug: String, cluster: String, clusterSlug: String) -> RPCError {
        RPCError(
            .failedPrecondition,
            "agent '\(slug)' (\(agent)) is already in cluster '\(clusterSlug)' (\(cluster)); remove or move it first")
    }

    static func describe(_ scope: V1.Scope) -> String { "\(scope.org)/\(scope.project)/\(scope.env)" }
}
