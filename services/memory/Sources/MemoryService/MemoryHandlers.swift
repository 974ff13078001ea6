import Foundation
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosService

/// The `memory.*` methods: checks who is calling and what it sent, decides scopes and owners,
/// and leaves storage to a ``MemoryStore``.
///
/// Every method needs the gateway's signed principal (``AuthenticatedRouter``); the caller's
/// cluster, agent and end user come from it and never from the request body.
public struct MemoryHandlers: Sendable {
    public let store: any MemoryStore
    /// Unix milliseconds; injectable so tests can move time past `expires_at` without waiting.
    public let now: @Sendable () -> Int64

    public init(store: any MemoryStore, now: @escaping @Sendable () -> Int64 = MemoryHandlers.systemNow) {
        self.store = store
        self.now = now
    }

    public static let systemNow: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The router serving every method of `service Memory`, each behind signature verification.
    public func router(signer: PrincipalSigner) -> RPCRouter {
        var router = AuthenticatedRouter(signer: signer)
        let tokens = PageTokens(key: signer.derivedKey(for: PageTokens.purpose))
        router.register(V1.MemoryService.write) { request, caller in try await write(request, caller) }
        router.register(V1.MemoryService.recall) { request, caller in try await recall(request, caller) }
        router.register(V1.MemoryService.get) { request, caller in try await get(request, caller) }
        router.register(V1.MemoryService.list) { request, caller in try await list(request, caller, tokens) }
        router.register(V1.MemoryService.update) { request, caller in try await update(request, caller) }
        router.register(V1.MemoryService.delete) { request, caller in try await delete(request, caller) }
        router.register(V1.MemoryService.history) { request, caller in try await history(request, caller, tokens) }
        router.register(V1.MemoryService.forgetUser) { request, caller in try await forgetUser(request, caller) }
        return router.router
    }

    /// Runs a store call, turning its refusals into their RPC statuses.
    private func storing<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as MemoryStoreError {
            throw error.rpcError
        }
    }

    func write(_ request: V1.WriteMemoryRequest, _ caller: Caller) async throws -> V1.WriteMemoryResponse {
        let access = try caller.memoryAccess("memory.write")
        let userId = try caller.requiredUser("memory.write")
        try MemoryValidation.content(request.content)
        try MemoryValidation.tags(request.tags)
        try MemoryValidation.metadata(request.metadata)
        try MemoryValidation.visibility(request.visibility)
        try MemoryValidation.expiresAt(request.expiresAtUnixMs)
        try MemoryValidation.idempotencyKey(request.idempotencyKey)
        let owner = MemoryOwner.forWrite(
            agentId: access.agentId, clusterId: access.clusterId, visibility: request.visibility)
        let memory = NewMemory(
            scope: MemoryScope(org: access.org, project: access.project, env: access.env, owner: owner, userId: userId),
            authorAgentId: access.agentId, content: request.content, tags: request.tags, metadata: request.metadata,
            visibility: request.visibility, expiresAtUnixMs: request.expiresAtUnixMs,
            idempotencyKey: request.idempotencyKey, writerClusterId: access.clusterId, nowMs: now())
        let (item, replayed) = try await storing { try await store.write(memory) }
        return V1.WriteMemoryResponse(item: item, replayed: replayed)
    }

    func recall(_ request: V1.RecallRequest, _ caller: Caller) async throws -> V1.RecallResponse {
        var access = try caller.memoryAccess("memory.recall")
        access.userId = try caller.requiredUser("memory.recall")
        try MemoryValidation.query(request.query)
        try MemoryValidation.tags(request.tags)
        try MemoryValidation.authorAgentId(request.authorAgentId)
        try MemoryValidation.timeRange(since: request.sinceUnixMs, until: request.untilUnixMs)
        let limit = request.limit == 0 ? MemoryLimits.defaultRecallLimit : Int(request.limit)
        var query = RecallQuery(
            access: access, text: request.query, limit: min(limit, MemoryLimits.maxRecallLimit), nowMs: now())
        query.tags = MemoryValidation.distinct(request.tags)
        query.authorAgentId = request.authorAgentId
        query.sinceUnixMs = request.sinceUnixMs
        query.untilUnixMs = request.untilUnixMs
        let items = try await storing { try await store.recall(query) }
        return V1.RecallResponse(items: items)
    }

    func get(_ request: V1.GetMemoryRequest, _ caller: Caller) async throws -> V1.MemoryItem {
        let access = try caller.memoryAccess("memory.get")
        try MemoryValidation.memoryId(request.memoryId)
        return try await storing { try await store.get(id: request.memoryId, access: access) }
    }

    func list(_ request: V1.ListMemoriesRequest, _ caller: Caller, _ tokens: PageTokens) async throws
        -> V1.ListMemoriesResponse
    {
        let access = try caller.memoryAccess("memory.list")
        try MemoryValidation.tags(request.tags)
        try MemoryValidation.authorAgentId(request.authorAgentId)
        let page = request.page ?? V1.PageRequest()
        let after = try tokens.decode(page.pageToken, as: .memories)
        var query = ListQuery(access: access, pageSize: Self.pageSize(page), after: after)
        query.tags = MemoryValidation.distinct(request.tags)
        query.authorAgentId = request.authorAgentId
        let result = try await storing { try await store.list(query) }
        return V1.ListMemoriesResponse(
            items: result.items, nextPageToken: result.next.map { tokens.encode(.memories, $0) } ?? "")
    }

    func update(_ request: V1.UpdateMemoryRequest, _ caller: Caller) async throws -> V1.MemoryItem {
        let access = try caller.memoryAccess("memory.update")
        try MemoryValidation.memoryId(request.memoryId)
        if let content = request.content { try MemoryValidation.content(content.value, field: "content.value") }
        try MemoryValidation.tags(request.tags)
        try MemoryValidation.metadata(request.metadata)
        if let expires = request.expiresAtUnixMs {
            try MemoryValidation.expiresAt(expires.value, field: "expires_at_unix_ms.value")
        }
        let changesTags = request.replaceTags || !request.tags.isEmpty
        let changesMetadata = request.replaceMetadata || !request.metadata.isEmpty
        guard request.content != nil || changesTags || changesMetadata || request.expiresAtUnixMs != nil else {
            throw MemoryValidation.invalid(
                "nothing to update: set content, tags (or replace_tags), metadata (or replace_metadata) "
                    + "or expires_at_unix_ms")
        }
        // expected_version 0 means "no check", as it does for memory.delete; versions start at 1.
        var change = MemoryUpdate(
            id: request.memoryId, access: access, expectedVersion: request.expectedVersion,
            actorAgentId: access.agentId, nowMs: now())
        change.content = request.content?.value
        change.tags = request.tags
        change.replaceTags = request.replaceTags
        change.metadata = request.metadata
        change.replaceMetadata = request.replaceMetadata
        change.expiresAtUnixMs = request.expiresAtUnixMs?.value
        return try await storing { try await store.update(change) }
    }

    func delete(_ request: V1.DeleteMemoryRequest, _ caller: Caller) async throws -> V1.DeleteMemoryResponse {
        let access = try caller.memoryAccess("memory.delete")
        try MemoryValidation.memoryId(request.memoryId)
        try await storing {
            try await store.delete(
                id: request.memoryId, expectedVersion: request.expectedVersion, access: access,
                actorAgentId: access.agentId, nowMs: now())
        }
        return V1.DeleteMemoryResponse(deleted: true)
    }

    func history(_ request: V1.MemoryHistoryRequest, _ caller: Caller, _ tokens: PageTokens) async throws
        -> V1.MemoryHistoryResponse
    {
        let access = try caller.memoryAccess("memory.history")
        try MemoryValidation.memoryId(request.memoryId)
        let page = request.page ?? V1.PageRequest()
        let after = try tokens.decode(page.pageToken, as: .history)
        let result = try await storing {
            try await store.history(id: request.memoryId, access: access, pageSize: Self.pageSize(page), after: after)
        }
        return V1.MemoryHistoryResponse(
            entries: result.entries, nextPageToken: result.next.map { tokens.encode(.history, $0) } ?? "")
    }

    func forgetUser(_ request: V1.ForgetUserRequest, _ caller: Caller) async throws -> V1.ForgetUserResponse {
        let userId = request.userId.isEmpty ? caller.userId : request.userId
        guard !userId.isEmpty else { throw MemoryValidation.invalid("user_id is required") }
        guard userId.utf8.count <= MemoryLimits.maxIdBytes else {
            throw MemoryValidation.invalid(
                "user_id is \(userId.utf8.count) bytes; the limit is \(MemoryLimits.maxIdBytes)")
        }
        // A call acting for one end user may erase that user only (DESIGN §4: naming something
        // outside the caller's scope is PERMISSION_DENIED).
        if !caller.userId.isEmpty, userId != caller.userId {
            throw RPCError(
                .permissionDenied, "this call acts for another end user; it cannot erase user_id '\(userId)'")
        }
        let scope: ForgetScope
        if caller.isAdmin, caller.agentId.isEmpty {
            // An admin of the project scope erases the user everywhere in it: right to erasure
            // must not depend on which agents and clusters happened to write.
            scope = .project(org: caller.scope.org, project: caller.scope.project, env: caller.scope.env)
        } else {
            scope = .reachableBy(try caller.memoryAccess("memory.forget_user"))
        }
        let erased = try await storing { try await store.forgetUser(userId, in: scope) }
        return V1.ForgetUserResponse(deletedCount: erased)
    }

    static func pageSize(_ page: V1.PageRequest) -> Int {
        page.pageSize == 0 ? MemoryLimits.defaultPageSize : min(Int(page.pageSize), MemoryLimits.maxPageSize)
    }
}
