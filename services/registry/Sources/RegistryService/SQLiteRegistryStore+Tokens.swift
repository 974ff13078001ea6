import Foundation
import GRDB
import PlatosProto
import PlatosRPC

extension SQLiteRegistryStore {
    func issueToken(_ request: V1.IssueTokenRequest, scope: V1.Scope) async throws -> V1.IssueTokenResponse {
        let id = RegistryIDs.token()
        let secret = TokenSecret.generate(tokenId: id)
        let now = RegistryRows.nowMs()
        let expires = request.ttlSeconds > 0 ? now + request.ttlSeconds * 1000 : 0
        let info = try await database.write { db -> V1.TokenInfo in
            if let first = try Self.idempotentResult(db, scope, "tokens.issue", request.idempotencyKey) {
                throw RPCError(
                    .alreadyExists,
                    "idempotency_key '\(request.idempotencyKey)' already issued token '\(first)', whose secret was shown once; "
                        + "if that answer was lost, revoke the token (tokens.revoke) and issue a new one",
                    details: [MetadataKey.tokenId: first])
            }
            if request.role == .agent { _ = try Self.agent(db, request.agentId, scope) }
            try Self.rememberIdempotent(db, scope, "tokens.issue", request.idempotencyKey, id)
            try db.execute(
                sql: """
                    INSERT INTO token (id, org, project, env, role, agent_id, bound_user_id, description, secret_hash,
                                       created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    id, scope.org, scope.project, scope.env, request.role.protoValue, request.agentId,
                    request.boundUserId, request.description, TokenSecret.hash(secret.text), now, expires,
                ])
            return V1.TokenInfo(
                id: id, scope: scope, role: request.role, agentId: request.agentId, boundUserId: request.boundUserId,
                description: request.description, createdAtUnixMs: now, expiresAtUnixMs: expires)
        }
        return V1.IssueTokenResponse(token: info, secret: secret.text)
    }

    func revokeToken(_ id: String, scope: V1.Scope, actingFor: String) async throws -> V1.TokenInfo {
        let (info, event) = try await writeChangingResolutions { db -> (V1.TokenInfo, V1.MembershipEvent?) in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM token WHERE id = ? AND org = ? AND project = ? AND env = ?",
                    arguments: [id, scope.org, scope.project, scope.env])
            else { throw RegistryError.tokenNotFound(id) }
            var info = RegistryRows.token(row)
            // Another user's token is one this caller cannot see: the same answer as no token.
            guard actingFor.isEmpty || info.boundUserId == actingFor else { throw RegistryError.tokenNotFound(id) }
            guard info.revokedAtUnixMs == 0 else { return (info, nil) }
            info.revokedAtUnixMs = RegistryRows.nowMs()
            try db.execute(sql: "UPDATE token SET revoked_at = ? WHERE id = ?", arguments: [info.revokedAtUnixMs, id])
            // Published like a membership change, so gateways drop the token from their caches.
            return (info, try Self.revocationEvent(db, scope, tokenId: id))
        }
        if let event { committed([event]) }
        return info
    }

    func listTokens(_ request: V1.ListTokensRequest, scope: V1.Scope, actingFor: String) async throws
        -> V1.ListTokensResponse
    {
        let size = PageCursor.size(request.page)
        let after = try PageCursor.after(request.page)
        return try await database.read { db in
            var sql = "SELECT * FROM token WHERE org = ? AND project = ? AND env = ? AND id > ?"
            var arguments: StatementArguments = [scope.org, scope.project, scope.env, after]
            if !request.agentId.isEmpty {
                sql += " AND agent_id = ?"
                arguments += [request.agentId]
            }
            if !actingFor.isEmpty {
                sql += " AND bound_user_id = ?"
                arguments += [actingFor]
            }
            if !request.includeRevoked { sql += " AND revoked_at = 0" }
            sql += " ORDER BY id LIMIT ?"
            arguments += [size + 1]
            let rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            let tokens = rows.prefix(size).map(RegistryRows.token)
            return V1.ListTokensResponse(
                tokens: Array(tokens), nextPageToken: rows.count > size ? PageCursor.token(after: tokens.last?.id) : "")
        }
    }

    /// The principal behind a secret, with the agent's current cluster. Every way a secret can be
    /// wrong (unknown, altered, revoked, expired, agent deleted) gets the same answer.
    func resolve(secret: String) async throws -> V1.ResolveTokenResponse {
        let invalid = RPCError(.unauthenticated, "invalid, expired or revoked token")
        guard let tokenId = TokenSecret.tokenId(in: secret) else { throw invalid }
        let entry: ResolveCache.Entry
        if let cached = resolveCache.entry(tokenId) {
            entry = cached
        } else {
            let generation = resolveCache.generation
            guard let loaded = try await loadResolveEntry(tokenId) else { throw invalid }
            resolveCache.store(loaded, for: tokenId, readAt: generation)
            entry = loaded
        }
        guard TokenSecret.matches(secret, storedHash: entry.secretHash) else { throw invalid }
        let info = entry.token
        let now = RegistryRows.nowMs()
        guard info.revokedAtUnixMs == 0, info.expiresAtUnixMs == 0 || info.expiresAtUnixMs > now else { throw invalid }
        if info.role == .agent, !entry.agentExists { throw invalid }
        let principal = V1.Principal(
            scope: info.scope, agentId: info.agentId, clusterId: entry.clusterId, userId: info.boundUserId,
            role: info.role, membershipVersion: entry.membershipVersion)
        return V1.ResolveTokenResponse(principal: principal, tokenId: info.id, expiresAtUnixMs: info.expiresAtUnixMs)
    }

    private func loadResolveEntry(_ tokenId: String) async throws -> ResolveCache.Entry? {
        try await database.read { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT token.*, membership.cluster_id AS cluster_id, agent.id AS live_agent
                        FROM token
                        LEFT JOIN agent ON agent.id = token.agent_id
                        LEFT JOIN membership ON membership.agent_id = token.agent_id
                        WHERE token.id = ?
                        """,
                    arguments: [tokenId])
            else { return nil }
            let version = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(version), 0) FROM membership_event") ?? 0
            return ResolveCache.Entry(
                secretHash: row["secret_hash"], token: RegistryRows.token(row), clusterId: row["cluster_id"] ?? "",
                agentExists: (row["live_agent"] as String?) != nil, membershipVersion: UInt64(version))
        }
    }
}
