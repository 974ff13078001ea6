import Logging
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosService
import ProtobufCSwift

/// The only public endpoint: authenticates every call, enforces the caller's scope and role,
/// stamps the signed principal, and routes each public method to the backend that owns it
/// (from the generated method table), or fans out (`context.load`).
public final class Gateway: Sendable {
    let configuration: GatewayConfiguration
    let backends: Backends
    let cache: PrincipalCache
    let authenticator: CallerAuthenticator
    let limiter: RateLimiter
    let liveCalls: LiveCalls
    let logger: Logger

    public init(configuration: GatewayConfiguration, signer: PrincipalSigner, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        backends = Backends(configuration: configuration, signer: signer, logger: logger)
        cache = PrincipalCache(ttl: configuration.principalCacheTTL)
        authenticator = CallerAuthenticator(backends: backends, cache: cache)
        limiter = RateLimiter(perSecond: configuration.rateLimitPerSecond, burst: configuration.rateLimitBurst)
        liveCalls = LiveCalls(maxPerAgent: configuration.maxLiveCallsPerAgent)
    }

    /// The public server's limits: call metadata a little below what the backends accept, so
    /// that a call the gateway takes still fits once its principal stamp (two entries, under a
    /// KiB) has been added.
    public static func configurePublicServer(_ configuration: inout RPCServerConfiguration) {
        configuration.maxMetadataEntries -= 4
        configuration.maxMetadataBytes -= 4 * 1024
    }

    /// Follows `registry.watch` until cancelled; run it next to the server.
    public func watchMemberships() async {
        await MembershipWatcher(backends: backends, cache: cache, liveCalls: liveCalls, logger: logger).run()
    }

    public func close() async { await backends.close() }

    /// Every public method of the method table, routed.
    public func router() -> RPCRouter {
        var router = RPCRouter()
        for method in V1.allMethods {
            switch (method.access, method.owner) {
            case (.internal, _), (_, .everyProcess), (_, .gateway):
                continue
            default:
                router.register(method, erased: forward(method))
            }
        }
        router.register(V1.TasksService.spawn) { [self] request, context in
            try await spawn(request, context)
        }
        router.register(V1.ContextService.load) { [self] request, context in
            try await loadContext(request, context)
        }
        return router
    }

    /// Authenticates, authorizes and rate-limits a call; returns the principal to stamp.
    func admit(_ method: RPCMethodDescriptor, _ context: ServerContext) async throws -> V1.Principal {
        try await admitCaller(method, context).principal
    }

    /// ``admit(_:_:)``, with the token that was presented.
    func admitCaller(_ method: RPCMethodDescriptor, _ context: ServerContext) async throws -> AuthenticatedCaller {
        let caller = try await authenticator.caller(context) { [limiter] token in
            if let wait = limiter.admit(token.tokenId) {
                throw RPCError(
                    .resourceExhausted, "rate limit exceeded for this token; retry in \(wait) ms",
                    details: [MetadataKey.retryAfterMs: String(wait)])
            }
        }
        let principal = caller.principal
        if method.access == .admin, principal.role != .admin {
            throw RPCError(.permissionDenied, "\(method.name) needs an admin token for this project scope")
        }
        return caller
    }

    /// Admits a long-lived call and runs `body` (given the principal to stamp) among the
    /// ``LiveCalls``, so that a membership or token change, or the token's expiry, ends it. The
    /// call is registered before `body` starts; a change between the admission and the
    /// registration moves the cache's generation, and the caller's identity is then resolved
    /// again before `body` goes on.
    func runLive<T: Sendable>(
        _ method: RPCMethodDescriptor, _ context: ServerContext,
        _ body: @escaping @Sendable (V1.Principal) async throws -> T
    ) async throws -> T {
        let generation = cache.generation
        let caller = try await admitCaller(method, context)
        let principal = caller.principal
        return try await liveCalls.run(
            agentId: principal.agentId, tokenId: caller.tokenId, clusterId: principal.clusterId,
            tokenExpiresAtUnixMs: caller.tokenExpiresAtUnixMs
        ) { [self] in
            if cache.generation != generation {
                // Authentication only: the call was already admitted and rate-limited once.
                let current = try await authenticator.caller(context).principal
                guard Self.sameIdentity(current, principal) else {
                    throw RPCError(.unavailable, "the caller's cluster membership or token changed; reopen the call")
                }
            }
            return try await body(principal)
        }
    }

    /// Who the caller is and what it reaches; not the registry's version counter, which moves
    /// with every change to anyone.
    static func sameIdentity(_ a: V1.Principal, _ b: V1.Principal) -> Bool {
        a.agentId == b.agentId && a.clusterId == b.clusterId && a.userId == b.userId && a.role == b.role
            && a.scope == b.scope && a.taskId == b.taskId
    }

    /// Unary methods that may wait for a long time (a long poll): run as live calls.
    static let longPolls: Set<String> = [V1.TasksService.claim.descriptor.name]

    func deadline(_ context: ServerContext) -> ContinuousClock.Instant {
        context.deadline ?? .now + configuration.defaultTimeout
    }

    /// Passes the payload through untouched: the owning backend decodes and validates it.
    func forward(_ method: RPCMethodDescriptor) -> ErasedHandler {
        guard let pool = backends.pool(for: method.owner) else { preconditionFailure("\(method.name) has no backend") }
        let backends = self.backends
        switch method.kind {
        case .unary:
            // Admin writes to the registry may change who a token is (memberships, revocations):
            // the caller's own project scope is dropped from the cache once one returns, so the
            // very next call sees the change. Reads (tokens.list) change nothing.
            let changesIdentities = method.owner == .registry && method.access == .admin && !method.idempotent
            if Self.longPolls.contains(method.name) {
                return .unary { [self] payload, context in
                    try await runLive(method, context) { [self] principal in
                        let metadata = try backends.stamped(context.metadata, principal: principal, method: method.name)
                        return try await pool.unary(
                            method: method, payload: payload, metadata: metadata, deadline: deadline(context))
                    }
                }
            }
            return .unary { [self] payload, context in
                let principal = try await admit(method, context)
                let metadata = try backends.stamped(context.metadata, principal: principal, method: method.name)
                let response = try await pool.unary(
                    method: method, payload: payload, metadata: metadata, deadline: deadline(context))
                if changesIdentities {
                    cache.invalidate(scope: principal.scope)
                    endLiveCalls(touchedBy: method, request: payload, response: response)
                }
                return response
            }
        case .serverStreaming:
            return .serverStreaming { [self] payload, context, send in
                try await runLive(method, context) { principal in
                    let metadata = try backends.stamped(context.metadata, principal: principal, method: method.name)
                    // Streams (live feeds) have no default deadline: they last as long as the
                    // caller wants, or until a change to the caller's identity ends them.
                    for try await message in pool.serverStreaming(
                        method: method, payload: payload, metadata: metadata, deadline: context.deadline)
                    {
                        try await send(message)
                    }
                }
            }
        }
    }

    /// Ends the live calls an admin change made through this gateway touches, before the change's
    /// answer goes back: from then on the admin may rely on it, and a stream admitted under the
    /// old membership must not deliver one more message while `registry.watch` is on its way with
    /// the same news. The ids come from what the registry accepted: the request of a call that
    /// succeeded (the registry checked them against the caller's scope), and for clusters.create
    /// the answer, since a retried create answers the first cluster whatever the retry names.
    func endLiveCalls(touchedBy method: RPCMethodDescriptor, request: [UInt8], response: [UInt8]) {
        if method.name == V1.ClustersService.create.descriptor.name {
            for agentId in (try? V1.Cluster(serializedBytes: response))?.agentIds ?? [] { liveCalls.end(agentId: agentId) }
        } else if let agentOf = Self.agentChangedBy[method.name], let agentId = agentOf(request) {
            liveCalls.end(agentId: agentId)
        } else if method.name == V1.ClustersService.delete.descriptor.name {
            if let request = try? V1.DeleteClusterRequest(serializedBytes: request) { liveCalls.end(clusterId: request.clusterId) }
        } else if method.name == V1.TokensService.revoke.descriptor.name {
            if let request = try? V1.RevokeTokenRequest(serializedBytes: request) { liveCalls.end(tokenId: request.tokenId) }
        }
    }

    /// The agent whose membership (or existence) an admin method changes, read from its request.
    static let agentChangedBy: [String: @Sendable ([UInt8]) -> String?] = [
        V1.ClustersService.moveMember.descriptor.name: { try? V1.MoveMemberRequest(serializedBytes: $0).agentId },
        V1.ClustersService.addMember.descriptor.name: { try? V1.AddMemberRequest(serializedBytes: $0).agentId },
        V1.ClustersService.removeMember.descriptor.name: { try? V1.RemoveMemberRequest(serializedBytes: $0).agentId },
        V1.AgentsService.delete.descriptor.name: { try? V1.DeleteAgentRequest(serializedBytes: $0).agentId },
    ]

    /// `tasks.spawn`: the target must be another member of the caller's own cluster. Checked here,
    /// at the auth layer, before the threads service sees the call.
    func spawn(_ request: V1.SpawnTaskRequest, _ context: ServerContext) async throws -> V1.Task {
        let principal = try await admit(V1.TasksService.spawn.descriptor, context)
        guard !principal.clusterId.isEmpty else {
            throw RPCError(.permissionDenied, "tasks.spawn needs the caller to be in a cluster")
        }
        guard !request.targetAgent.isEmpty else {
            throw RPCError(.invalidArgument, "target_agent is required (a sibling's slug or id)")
        }
        let registry = backends.client(.registry, as: principal)
        let target = try await resolveAgent(request.targetAgent, registry: registry, deadline: deadline(context))
        guard let target, target.clusterId == principal.clusterId, target.id != principal.agentId else {
            throw RPCError(.permissionDenied, "tasks.spawn can target only another member of the caller's cluster")
        }
        var forwarded = request
        forwarded.targetAgentId = target.id
        return try await backends.client(.threads, as: principal)
            .call(V1.TasksService.spawn, forwarded, metadata: context.metadata, timeout: deadline(context) - .now)
    }

    /// The agent a spawn names, among those the caller reaches (the registry lists an agent's
    /// own cluster only), or nil.
    private func resolveAgent(
        _ slugOrId: String, registry: RPCClient, deadline: ContinuousClock.Instant
    ) async throws -> V1.Agent? {
        if slugOrId.hasPrefix("agt_") {
            do {
                return try await registry.call(
                    V1.AgentsService.get, V1.GetAgentRequest(agentId: slugOrId), timeout: deadline - .now)
            } catch let error as RPCError where error.code == .notFound {
                return nil
            }
        }
        var page = V1.PageRequest(pageSize: 500)
        repeat {
            let response = try await registry.call(
                V1.AgentsService.list, V1.ListAgentsRequest(page: page), timeout: deadline - .now)
            if let match = response.agents.first(where: { $0.slug == slugOrId }) { return match }
            page.pageToken = response.nextPageToken
        } while !page.pageToken.isEmpty
        return nil
    }

    /// One round trip for an agent turn: recall and the thread's newest messages (with the
    /// thread itself) in parallel, one call to each backend. A side that fails for want of a
    /// backend (down, overloaded, timed out) does not fail the call; its status says what went
    /// wrong. A request that is wrong does, whichever side said so: a thread the caller cannot
    /// read is `NOT_FOUND` or `PERMISSION_DENIED`, as from threads.get, and bad input (no end
    /// user, a limit out of range) is the side's own `INVALID_ARGUMENT`, named after the call
    /// that refused it. A partial answer to a request that cannot succeed would only hide the
    /// mistake.
    func loadContext(_ request: V1.LoadContextRequest, _ context: ServerContext) async throws -> V1.LoadContextResponse {
        let principal = try await admit(V1.ContextService.load.descriptor, context)
        guard !request.threadId.isEmpty else { throw RPCError(.invalidArgument, "thread_id is required") }
        let timeout = deadline(context) - .now
        let memory = backends.client(.memory, as: principal)
        let threads = backends.client(.threads, as: principal)
        async let recalled = Self.outcome {
            try await memory.call(
                V1.MemoryService.recall,
                V1.RecallRequest(query: request.query, limit: request.recallLimit == 0 ? 10 : request.recallLimit),
                timeout: timeout)
        }
        async let listed = Self.outcome {
            try await threads.call(
                V1.MessagesService.list,
                V1.ListMessagesRequest(
                    threadId: request.threadId, limit: request.messageLimit == 0 ? 20 : request.messageLimit, newest: true,
                    includeThread: true),
                timeout: timeout)
        }
        let (memories, messages) = await (recalled, listed)
        // A thread the caller cannot read is answered as threads.get answers it, whole: a
        // partial answer is for a side that is down, not for naming someone else's thread
        // (DESIGN §4: the same answer as for a thread that does not exist).
        if case .failure(let error) = messages, error.code == .notFound || error.code == .permissionDenied {
            throw error
        }
        for (side, outcome) in [("memory.recall", memories.map { _ in () }), ("messages.list", messages.map { _ in () })] {
            if case .failure(let error) = outcome, Self.callersMistakes.contains(error.code) {
                throw RPCError(error.code, "\(side): \(error.message)", details: error.details)
            }
        }
        var response = V1.LoadContextResponse()
        switch memories {
        case .success(let r): response.memories = r.items; response.memoriesStatus = V1.Status(code: .ok)
        case .failure(let e): response.memoriesStatus = RPCError(e.code, "memory: \(e.message)").status
        }
        switch messages {
        case .success(let m):
            response.messages = m.messages
            response.thread = m.thread
            response.messagesStatus = V1.Status(code: .ok)
        case .failure(let e):
            response.messagesStatus = RPCError(e.code, "threads: \(e.message)").status
        }
        Self.fitInOneAnswer(&response)
        return response
    }

    /// Answers that say the request itself is wrong: sending it again cannot help, so
    /// context.load fails whole rather than answer one side.
    static let callersMistakes: Set<RPCError.Code> = [
        .invalidArgument, .outOfRange, .failedPrecondition, .unauthenticated, .permissionDenied, .notFound,
    ]

    /// Each side fits one answer by itself (``ResponseBudget``); both together may not. The
    /// oldest messages go first, then the lowest-ranked memories, until the whole is within
    /// 1.75 × the budget (3.5 MiB, under the 4 MiB frame limit), keeping at least one of each.
    static func fitInOneAnswer(_ response: inout V1.LoadContextResponse) {
        let budget = ResponseBudget.bytes * 7 / 4
        let memorySize = { (memory: V1.RecalledMemory) in memory.item.map(ResponseBudget.size(of:)) ?? 0 }
        var total = response.messages.reduce(0) { $0 + ResponseBudget.size(of: $1) }
            + response.memories.reduce(0) { $0 + memorySize($1) }
            + (response.thread.map { ResponseBudget.size(of: $0.metadata) + $0.title.utf8.count } ?? 0)
        var oldest = 0
        while total > budget, oldest < response.messages.count - 1 {
            total -= ResponseBudget.size(of: response.messages[oldest])
            oldest += 1
        }
        response.messages.removeFirst(oldest)
        while total > budget, response.memories.count > 1 {
            total -= memorySize(response.memories.removeLast())
        }
    }

    private static func outcome<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, RPCError> {
        do {
            return .success(try await body())
        } catch {
            return .failure(RPCRouter.status(for: error))
        }
    }
}
