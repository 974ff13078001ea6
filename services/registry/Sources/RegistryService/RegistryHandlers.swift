import Logging
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosService
import PlatosStorage

/// The registry's RPC surface: validates each request, checks the caller's role, and calls the
/// store with the caller's own scope (never a scope from the request body).
public struct RegistryHandlers: Sendable {
    let store: any RegistryStore
    let feed: MembershipFeed

    init(store: any RegistryStore, feed: MembershipFeed) {
        self.store = store
        self.feed = feed
    }

    static func requireAdmin(_ caller: Caller) throws {
        guard caller.isAdmin, !ServicePrincipal.isInternal(caller.principal) else {
            throw RegistryError.adminRequired(caller.context.method)
        }
    }

    static func requireGateway(_ caller: Caller) throws {
        guard ServicePrincipal.isInternal(caller.principal) else {
            throw RPCError(.permissionDenied, "\(caller.context.method) is for the gateway only")
        }
    }

    public func router(signer: PrincipalSigner) -> RPCRouter {
        var router = AuthenticatedRouter(signer: signer)
        registerAgents(&router)
        registerClusters(&router)
        registerTokens(&router)
        return router.router
    }

    private func registerAgents(_ router: inout AuthenticatedRouter) {
        let store = self.store
        router.register(V1.AgentsService.create) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.slug(request.slug)
            try RegistryValidation.name(request.name)
            try RegistryValidation.text(request.avatarUrl, field: "avatar_url", max: 2048)
            try RegistryValidation.text(request.description, field: "description", max: 4096)
            try RegistryValidation.metadata(request.metadata)
            try RegistryValidation.idempotencyKey(request.idempotencyKey)
            return try await store.createAgent(request, scope: caller.scope)
        }
        router.register(V1.AgentsService.get) { request, caller in
            try RegistryValidation.id(request.agentId, field: "agent_id")
            let agent = try await store.agent(request.agentId, scope: caller.scope)
            if let reach = AgentReach(caller.principal), !reach.reaches(agent) {
                throw RegistryError.agentNotFound(request.agentId)
            }
            return agent
        }
        router.register(V1.AgentsService.list) { request, caller in
            try await store.listAgents(request, scope: caller.scope, reach: AgentReach(caller.principal))
        }
        router.register(V1.AgentsService.update) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.id(request.agentId, field: "agent_id")
            if let slug = request.slug { try RegistryValidation.slug(slug.value) }
            if let name = request.name { try RegistryValidation.name(name.value) }
            if let avatar = request.avatarUrl { try RegistryValidation.text(avatar.value, field: "avatar_url", max: 2048) }
            if let description = request.description {
                try RegistryValidation.text(description.value, field: "description", max: 4096)
            }
            try RegistryValidation.metadata(request.metadata)
            return try await store.updateAgent(request, scope: caller.scope)
        }
        router.register(V1.AgentsService.delete) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.id(request.agentId, field: "agent_id")
            try await store.deleteAgent(request.agentId, scope: caller.scope)
            return V1.DeleteAgentResponse(deleted: true)
        }
    }

    private func registerClusters(_ router: inout AuthenticatedRouter) {
        let store = self.store
        router.register(V1.ClustersService.create) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.name(request.name)
            try RegistryValidation.slug(request.slug)
            try RegistryValidation.clusterMembers(request.agentIds)
            try RegistryValidation.metadata(request.metadata)
            try RegistryValidation.idempotencyKey(request.idempotencyKey)
            return try await store.createCluster(request, scope: caller.scope)
        }
        router.register(V1.ClustersService.get) { request, caller in
            try RegistryValidation.id(request.clusterId, field: "cluster_id")
            let cluster = try await store.cluster(request.clusterId, scope: caller.scope)
            if let reach = AgentReach(caller.principal), !reach.reaches(cluster) {
                throw RegistryError.clusterNotFound(request.clusterId)
            }
            return cluster
        }
        router.register(V1.ClustersService.list) { request, caller in
            try await store.listClusters(request, scope: caller.scope, reach: AgentReach(caller.principal))
        }
        router.register(V1.ClustersService.update) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.id(request.clusterId, field: "cluster_id")
            if let slug = request.slug { try RegistryValidation.slug(slug.value) }
            if let name = request.name { try RegistryValidation.name(name.value) }
            try RegistryValidation.metadata(request.metadata)
            return try await store.updateCluster(request, scope: caller.scope)
        }
        router.register(V1.ClustersService.delete) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.id(request.clusterId, field: "cluster_id")
            let version = try await store.deleteCluster(request.clusterId, scope: caller.scope)
            return V1.DeleteClusterResponse(deleted: true, membershipVersion: version)
        }
        router.register(V1.ClustersService.addMember) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.id(request.clusterId, field: "cluster_id")
            try RegistryValidation.id(request.agentId, field: "agent_id")
            let (cluster, version) = try await store.setMembership(
                agentId: request.agentId, clusterId: request.clusterId, scope: caller.scope, requireCurrent: nil,
                requireNone: true)
            return V1.MembershipChangeResponse(cluster: cluster, membershipVersion: version)
        }
        router.register(V1.ClustersService.removeMember) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.id(request.clusterId, field: "cluster_id")
            try RegistryValidation.id(request.agentId, field: "agent_id")
            let (cluster, version) = try await store.setMembership(
                agentId: request.agentId, clusterId: nil, scope: caller.scope, requireCurrent: request.clusterId,
                requireNone: false)
            return V1.MembershipChangeResponse(cluster: cluster, membershipVersion: version)
        }
        router.register(V1.ClustersService.moveMember) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.id(request.agentId, field: "agent_id")
            try RegistryValidation.id(request.toClusterId, field: "to_cluster_id")
            let (cluster, version) = try await store.setMembership(
                agentId: request.agentId, clusterId: request.toClusterId, scope: caller.scope, requireCurrent: nil,
                requireNone: false)
            return V1.MembershipChangeResponse(cluster: cluster, membershipVersion: version)
        }
    }

    private func registerTokens(_ router: inout AuthenticatedRouter) {
        let store = self.store
        let feed = self.feed
        router.register(V1.TokensService.issue) { request, caller in
            try Self.requireAdmin(caller)
            switch request.role {
            case .agent: try RegistryValidation.id(request.agentId, field: "agent_id")
            case .admin:
                guard request.agentId.isEmpty else { throw RegistryError.invalid("agent_id", "must be empty for an admin token") }
            default: throw RegistryError.invalid("role", "must be ROLE_AGENT or ROLE_ADMIN")
            }
            guard (0...RegistryValidation.maxTokenTTLSeconds).contains(request.ttlSeconds) else {
                throw RegistryError.invalid(
                    "ttl_seconds", "must be between 0 (no expiry) and \(RegistryValidation.maxTokenTTLSeconds) (ten years)")
            }
            try RegistryValidation.text(request.boundUserId, field: "bound_user_id", max: 256)
            try RegistryValidation.text(request.description, field: "description", max: 1024)
            try RegistryValidation.idempotencyKey(request.idempotencyKey)
            // A caller acting for one user (an admin token bound to it, or `x-platos-user`) may
            // not mint a token that reaches further: an unbound token, or one bound to someone
            // else, would undo the binding of its own. It lists and revokes only that user's
            // tokens too.
            if !caller.userId.isEmpty, request.boundUserId != caller.userId {
                throw RPCError(
                    .permissionDenied,
                    "this caller acts for user '\(caller.userId)' and may only issue tokens bound to that user (bound_user_id)")
            }
            return try await store.issueToken(request, scope: caller.scope)
        }
        router.register(V1.TokensService.revoke) { request, caller in
            try Self.requireAdmin(caller)
            try RegistryValidation.id(request.tokenId, field: "token_id")
            return V1.RevokeTokenResponse(
                token: try await store.revokeToken(request.tokenId, scope: caller.scope, actingFor: caller.userId))
        }
        router.register(V1.TokensService.list) { request, caller in
            try Self.requireAdmin(caller)
            return try await store.listTokens(request, scope: caller.scope, actingFor: caller.userId)
        }
        router.register(V1.AuthService.resolve) { request, caller in
            try Self.requireGateway(caller)
            guard !request.secret.isEmpty else { throw RegistryError.invalid("secret", "is required") }
            return try await store.resolve(secret: request.secret)
        }
        router.register(V1.RegistryService.watch, stream: { request, caller, writer in
            // The gateway watches every scope; anyone else sees only their own scope's events.
            let everything = ServicePrincipal.isInternal(caller.principal)
            let visible = { (event: V1.MembershipEvent) in everything || event.scope == caller.scope }
            // Subscribe before reading the backlog, so nothing committed in between is missed.
            let live = feed.subscribe()
            let current = try await store.currentVersion()
            guard request.afterVersion <= current else {
                // A watcher ahead of the history (the database was restored from a backup) would
                // otherwise wait for versions it believes it has, and miss every change until then.
                throw RPCError(
                    .outOfRange,
                    "after_version \(request.afterVersion) is past the newest membership version \(current): "
                        + "the registry's history was reset; drop what was derived from it and watch from \(current)",
                    details: [MetadataKey.currentVersion: String(current)])
            }
            var last = request.afterVersion
            /// Sends every committed event after `last`, in version order.
            func sendCommitted() async throws {
                while true {
                    let backlog = try await store.events(after: last)
                    for event in backlog where visible(event) { try await writer.send(event) }
                    guard let newest = backlog.last?.version else { return }
                    last = newest
                }
            }
            try await sendCommitted()
            // An event naming nothing marks "caught up at `version`": from here on the watcher
            // sees every change live. The gateway reuses cached tokens only after this marker.
            try await writer.send(V1.MembershipEvent(version: last))
            // A live event is only a wake-up: each writer publishes from its own task once its
            // commit is answered, so two changes committed in order can be published in either
            // order. The table has them in commit order; sending it from there never skips the
            // earlier one because the later one came first.
            for await event in live where event.version > last {
                try await sendCommitted()
            }
            throw RPCError(.unavailable, "watch ended: the registry is shutting down or the watcher fell behind")
        })
    }
}

/// Builds the registry from a database path: the entry point for `main` and for tests.
public enum Registry {
    public static func handlers(databasePath: String, synchronous: SynchronousMode = .normal) throws -> RegistryHandlers {
        let database = try ServiceDatabase.open(path: databasePath, synchronous: synchronous, label: "registry") {
            RegistrySchema.register(&$0)
        }
        let feed = MembershipFeed()
        return RegistryHandlers(store: SQLiteRegistryStore(database: database, feed: feed), feed: feed)
    }
}

extension RegistryHandlers {
    /// Issues an admin token for a scope without a caller: the bootstrap path of
    /// `platos-registry issue-admin-token` and `platos dev`. Returns the secret.
    public func bootstrapAdminToken(org: String, project: String, env: String, description: String = "bootstrap admin")
        async throws -> String
    {
        try RegistryValidation.slug(org, field: "org")
        try RegistryValidation.slug(project, field: "project")
        try RegistryValidation.slug(env, field: "env")
        let response = try await store.issueToken(
            V1.IssueTokenRequest(role: .admin, description: description), scope: V1.Scope(org: org, project: project, env: env))
        return response.secret
    }
}
