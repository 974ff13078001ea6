import NIOConcurrencyHelpers
import PlatosProto

/// An agent as the directory knows it: its id and its current cluster (empty when none).
public struct DirectoryAgent: Sendable, Hashable {
    public var agentId: String
    public var clusterId: String

    public init(agentId: String, clusterId: String) {
        self.agentId = agentId
        self.clusterId = clusterId
    }
}

/// Who is in which cluster. The threads service owns no membership data; it asks this when a
/// task is spawned, to check that the target is a sibling of the spawner, and when a lease runs
/// out, to end rather than requeue a task whose target has left its cluster.
public protocol ClusterDirectory: Sendable {
    /// The agent named by `slugOrId` in `scope`, or nil when there is none. Throws when the answer
    /// cannot be had (registry unreachable), so a spawn fails closed.
    func agent(_ slugOrId: String, in scope: V1.Scope) async throws -> DirectoryAgent?
}

/// A directory held in memory: for tests, and for benchmarks that run without a registry.
public final class InMemoryClusterDirectory: ClusterDirectory {
    private struct Key: Hashable {
        var org: String
        var project: String
        var env: String
        var name: String
    }

    private let agents = NIOLockedValueBox<[Key: DirectoryAgent]>([:])

    public init() {}

    /// Adds or replaces an agent, reachable by its id and, when given, its slug.
    public func set(_ agent: DirectoryAgent, slug: String? = nil, in scope: V1.Scope) {
        agents.withLockedValue { agents in
            agents[Key(org: scope.org, project: scope.project, env: scope.env, name: agent.agentId)] = agent
            if let slug { agents[Key(org: scope.org, project: scope.project, env: scope.env, name: slug)] = agent }
        }
    }

    public func agent(_ slugOrId: String, in scope: V1.Scope) async throws -> DirectoryAgent? {
        agents.withLockedValue { $0[Key(org: scope.org, project: scope.project, env: scope.env, name: slugOrId)] }
    }
}
