import Foundation
import GRDB
import PlatosProto
import PlatosRPC
import PlatosStorage

/// The registry on SQLite. Reads go to the pool; writes to the group-commit writer, each in its
/// own savepoint, so every multi-row change (a cluster and its memberships) is all or nothing.
final class SQLiteRegistryStore: RegistryStore {
    let database: ServiceDatabase
    let feed: MembershipFeed
    let resolveCache = ResolveCache()

    init(database: ServiceDatabase, feed: MembershipFeed) {
        self.database = database
        self.feed = feed
    }

    /// A write that can change what `auth.resolve` answers (memberships, revocations, deleted
    /// agents). The resolve cache answers nothing from before it starts until it has committed
    /// (see ``ResolveCache``), so a gateway that hears of the change resolves afresh.
    func writeChangingResolutions<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        resolveCache.beginChange()
        do {
            // A body that throws leaves nothing behind: its batch is rolled back and run again.
            let (result, changed) = try await database.write { db in
                let before = db.totalChangesCount
                let result = try body(db)
                return (result, db.totalChangesCount != before)
            }
            resolveCache.endChange(changed: changed)
            return result
        } catch {
            resolveCache.endChange(changed: false)
            throw error
        }
    }

    /// After such a write: wakes the watchers, which send its events from the table.
    func committed(_ events: [V1.MembershipEvent]) {
        guard !events.isEmpty else { return }
        feed.publish(events)
    }

    // MARK: Agents

    func createAgent(_ request: V1.CreateAgentRequest, scope: V1.Scope) async throws -> V1.Agent {
        let id = try await database.write { db -> String in
            if let replay = try Self.idempotentResult(db, scope, "agents.create", request.idempotencyKey) { return replay }
            let id = RegistryIDs.agent()
            let now = RegistryRows.nowMs()
            do {
                try db.execute(
                    sql: """
                        INSERT INTO agent (id, org, project, env, slug, name, avatar_url, description, metadata,
                                           created_at, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        id, scope.org, scope.project, scope.env, request.slug, request.name, request.avatarUrl,
                        request.description, RegistryRows.encodeMetadata(request.metadata), now, now,
                    ])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw RPCError(
                    .alreadyExists, "an agent with slug '\(request.slug)' already exists in \(RegistryError.describe(scope))")
            }
            try Self.rememberIdempotent(db, scope, "agents.create", request.idempotencyKey, id)
            return id
        }
        return try await agent(id, scope: scope)
    }

    func agent(_ id: String, scope: V1.Scope) async throws -> V1.Agent {
        try await database.read { db in try Self.agent(db, id, scope) }
    }

    static func agent(_ db: Database, _ id: String, _ scope: V1.Scope) throws -> V1.Agent {
        var arguments = RegistryRows.scopeArguments(scope)
        arguments += [id]
        guard let row = try Row.fetchOne(db, sql: RegistryRows.agentSelect + " AND agent.id = ?", arguments: arguments)
        else { throw RegistryError.agentNotFound(id) }
        return RegistryRows.agent(row)
    }

    func listAgents(_ request: V1.ListAgentsRequest, scope: V1.Scope, reach: AgentReach?) async throws
        -> V1.ListAgentsResponse
    {
        let size = PageCursor.size(request.page)
        let after = try PageCursor.after(request.page)
        return try await database.read { db in
            var sql = RegistryRows.agentSelect + " AND agent.id > ?"
            var arguments = RegistryRows.scopeArguments(scope)
            arguments += [after]
            if request.unclusteredOnly { sql += " AND membership.cluster_id IS NULL" }
            if let reach {
                // Empty ids match nothing: every stored agent and cluster id is non-empty.
                sql += " AND (agent.id = ? OR membership.cluster_id = ?)"
                arguments += [reach.agentId, reach.clusterId]
            }
            sql += " ORDER BY agent.id LIMIT ?"
            arguments += [size + 1]
            let rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            let agents = rows.prefix(size).map(RegistryRows.agent)
            return V1.ListAgentsResponse(
                agents: Array(agents), nextPageToken: rows.count > size ? PageCursor.token(after: agents.last?.id) : "")
        }
    }

    func updateAgent(_ request: V1.UpdateAgentRequest, scope: V1.Scope) async throws -> V1.Agent {
        try await database.write { db in
            var agent = try Self.agent(db, request.agentId, scope)
            if let name = request.name { agent.name = name.value }
            if let slug = request.slug { agent.slug = slug.value }
            if let avatar = request.avatarUrl { agent.avatarUrl = avatar.value }
            if let description = request.description { agent.description = description.value }
            if request.replaceMetadata {
                agent.metadata = request.metadata
            } else {
                agent.metadata.merge(request.metadata) { _, new in new }
                try RegistryValidation.metadata(agent.metadata, field: "metadata (merged with the agent's)")
            }
            agent.updatedAtUnixMs = RegistryRows.nowMs()
            do {
                try db.execute(
                    sql: """
                        UPDATE agent SET slug = ?, name = ?, avatar_url = ?, description = ?, metadata = ?, updated_at = ?
                        WHERE id = ? AND org = ? AND project = ? AND env = ?
                        """,
                    arguments: [
                        agent.slug, agent.name, agent.avatarUrl, agent.description,
                        RegistryRows.encodeMetadata(agent.metadata), agent.updatedAtUnixMs, agent.id, scope.org,
                        scope.project, scope.env,
                    ])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw RPCError(
                    .alreadyExists, "an agent with slug '\(agent.slug)' already exists in \(RegistryError.describe(scope))")
            }
            return agent
        }
    }

    func deleteAgent(_ id: String, scope: V1.Scope) async throws {
        let events = try await writeChangingResolutions { db -> [V1.MembershipEvent] in
            let agent = try Self.agent(db, id, scope)
            var events: [V1.MembershipEvent] = []
            if !agent.clusterId.isEmpty {
                events.append(try Self.recordEvent(db, scope, agent: id, cluster: "", previous: agent.clusterId))
            }
            // Its tokens stop working with it.
            for tokenId in try String.fetchAll(
                db, sql: "SELECT id FROM token WHERE agent_id = ? AND revoked_at = 0", arguments: [id])
            {
                try db.execute(sql: "UPDATE token SET revoked_at = ? WHERE id = ?", arguments: [RegistryRows.nowMs(), tokenId])
                events.append(try Self.recordEvent(db, scope, revokedToken: tokenId))
            }
            try db.execute(
                sql: "DELETE FROM agent WHERE id = ? AND org = ? AND project = ? AND env = ?",
                arguments: [id, scope.org, scope.project, scope.env])
            return events
        }
        committed(events)
    }

    // MARK: Clusters

    func createCluster(_ request: V1.CreateClusterRequest, scope: V1.Scope) async throws -> V1.Cluster {
        let (cluster, events) = try await writeChangingResolutions { db -> (V1.Cluster, [V1.MembershipEvent]) in
            if let replay = try Self.idempotentResult(db, scope, "clusters.create", request.idempotencyKey) {
                return (try Self.cluster(db, replay, scope), [])
            }
            let id = RegistryIDs.cluster()
            let now = RegistryRows.nowMs()
            // Every agent must exist in this scope and be free; checked and claimed in one savepoint.
            for agentId in request.agentIds {
                let agent = try Self.agent(db, agentId, scope)
                if !agent.clusterId.isEmpty { throw try Self.alreadyInCluster(db, agent, scope) }
            }
            do {
                try db.execute(
                    sql: """
                        INSERT INTO cluster (id, org, project, env, slug, name, metadata, created_at, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        id, scope.org, scope.project, scope.env, request.slug, request.name,
                        RegistryRows.encodeMetadata(request.metadata), now, now,
                    ])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw RPCError(
                    .alreadyExists, "a cluster with slug '\(request.slug)' already exists in \(RegistryError.describe(scope))")
            }
            var events: [V1.MembershipEvent] = []
            for agentId in request.agentIds {
                try Self.insertMembership(db, agentId: agentId, clusterId: id, now: now, scope: scope)
                events.append(try Self.recordEvent(db, scope, agent: agentId, cluster: id, previous: ""))
            }
            try Self.rememberIdempotent(db, scope, "clusters.create", request.idempotencyKey, id)
            return (try Self.cluster(db, id, scope), events)
        }
        committed(events)
        return cluster
    }

    /// The unique key on `membership.agent_id` is the last word: a racing writer that got past
    /// the check still cannot put an agent in two clusters.
    private static func insertMembership(_ db: Database, agentId: String, clusterId: String, now: Int64, scope: V1.Scope) throws {
        do {
            try db.execute(
                sql: "INSERT INTO membership (agent_id, cluster_id, joined_at) VALUES (?, ?, ?)",
                arguments: [agentId, clusterId, now])
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw try alreadyInCluster(db, try agent(db, agentId, scope), scope)
        }
    }

    private static func alreadyInCluster(_ db: Database, _ agent: V1.Agent, _ scope: V1.Scope) throws -> RPCError {
        let clusterSlug = try String.fetchOne(db, sql: "SELECT slug FROM cluster WHERE id = ?", arguments: [agent.clusterId]) ?? ""
        return RegistryError.alreadyInCluster(agent: agent.id, slug: agent.slug, cluster: agent.clusterId, clusterSlug: clusterSlug)
    }

    func cluster(_ id: String, scope: V1.Scope) async throws -> V1.Cluster {
        try await database.read { db in try Self.cluster(db, id, scope) }
    }

    static func cluster(_ db: Database, _ id: String, _ scope: V1.Scope) throws -> V1.Cluster {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT * FROM cluster WHERE id = ? AND org = ? AND project = ? AND env = ?",
                arguments: [id, scope.org, scope.project, scope.env])
        else { throw RegistryError.clusterNotFound(id) }
        let members = try String.fetchAll(
            db, sql: "SELECT agent_id FROM membership WHERE cluster_id = ? ORDER BY joined_at, agent_id", arguments: [id])
        return V1.Cluster(
            id: row["id"], scope: RegistryRows.scope(row), name: row["name"], slug: row["slug"], agentIds: members,
            metadata: RegistryRows.decodeMetadata(row["metadata"]), createdAtUnixMs: row["created_at"],
            updatedAtUnixMs: row["updated_at"])
    }

    func listClusters(_ request: V1.ListClustersRequest, scope: V1.Scope, reach: AgentReach?) async throws
        -> V1.ListClustersResponse
    {
        let size = PageCursor.size(request.page)
        let after = try PageCursor.after(request.page)
        return try await database.read { db in
            var sql = "SELECT id FROM cluster WHERE org = ? AND project = ? AND env = ? AND id > ?"
            var arguments: StatementArguments = [scope.org, scope.project, scope.env, after]
            if let reach {
                sql += " AND id = ?"
                arguments += [reach.clusterId]
            }
            sql += " ORDER BY id LIMIT ?"
            arguments += [size + 1]
            let ids = try String.fetchAll(db, sql: sql, arguments: arguments)
            let clusters = try ids.prefix(size).map { try Self.cluster(db, $0, scope) }
            return V1.ListClustersResponse(
                clusters: clusters, nextPageToken: ids.count > size ? PageCursor.token(after: clusters.last?.id) : "")
        }
    }

    func updateCluster(_ request: V1.UpdateClusterRequest, scope: V1.Scope) async throws -> V1.Cluster {
        try await database.write { db in
            var cluster = try Self.cluster(db, request.clusterId, scope)
            if let name = request.name { cluster.name = name.value }
            if let slug = request.slug { cluster.slug = slug.value }
            if request.replaceMetadata {
                cluster.metadata = request.metadata
            } else {
                cluster.metadata.merge(request.metadata) { _, new in new }
                try RegistryValidation.metadata(cluster.metadata, field: "metadata (merged with the cluster's)")
            }
            cluster.updatedAtUnixMs = RegistryRows.nowMs()
            do {
                try db.execute(
                    sql: "UPDATE cluster SET name = ?, slug = ?, metadata = ?, updated_at = ? WHERE id = ?",
                    arguments: [
                        cluster.name, cluster.slug, RegistryRows.encodeMetadata(cluster.metadata), cluster.updatedAtUnixMs,
                        cluster.id,
                    ])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw RPCError(
                    .alreadyExists, "a cluster with slug '\(cluster.slug)' already exists in \(RegistryError.describe(scope))")
            }
            return cluster
        }
    }

    func deleteCluster(_ id: String, scope: V1.Scope) async throws -> UInt64 {
        let events = try await writeChangingResolutions { db -> [V1.MembershipEvent] in
            let cluster = try Self.cluster(db, id, scope)
            var events: [V1.MembershipEvent] = []
            for agentId in cluster.agentIds {
                events.append(try Self.recordEvent(db, scope, agent: agentId, cluster: "", previous: id))
            }
            try db.execute(sql: "DELETE FROM membership WHERE cluster_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM cluster WHERE id = ?", arguments: [id])
            return events
        }
        committed(events)
        return try await scopeVersion(scope, through: events.last?.version)
    }

    func setMembership(
        agentId: String, clusterId: String?, scope: V1.Scope, requireCurrent: String?, requireNone: Bool
    ) async throws -> (V1.Cluster?, UInt64) {
        let (cluster, event) = try await writeChangingResolutions { db -> (V1.Cluster?, V1.MembershipEvent?) in
            let agent = try Self.agent(db, agentId, scope)
            let target = try clusterId.map { try Self.cluster(db, $0, scope) }
            if let requireCurrent {
                // Report a cluster of another scope like a missing one.
                _ = try Self.cluster(db, requireCurrent, scope)
                guard agent.clusterId == requireCurrent else {
                    throw RPCError(.failedPrecondition, "agent '\(agent.slug)' (\(agentId)) is not in cluster \(requireCurrent)")
                }
            }
            if requireNone, !agent.clusterId.isEmpty { throw try Self.alreadyInCluster(db, agent, scope) }
            let newCluster = clusterId ?? ""
            guard agent.clusterId != newCluster else { return (target, nil) }
            try db.execute(sql: "DELETE FROM membership WHERE agent_id = ?", arguments: [agentId])
            if let clusterId {
                try Self.insertMembership(db, agentId: agentId, clusterId: clusterId, now: RegistryRows.nowMs(), scope: scope)
            }
            let event = try Self.recordEvent(db, scope, agent: agentId, cluster: newCluster, previous: agent.clusterId)
            let after = try (clusterId ?? requireCurrent).map { try Self.cluster(db, $0, scope) }
            return (after, event)
        }
        guard let event else { return (cluster, try await scopeVersion(scope, through: nil)) }
        committed([event])
        return (cluster, try await scopeVersion(scope, through: event.version))
    }

    // MARK: Events

    private static func recordEvent(
        _ db: Database, _ scope: V1.Scope, agent: String = "", cluster: String = "", previous: String = "",
        revokedToken: String = ""
    ) throws -> V1.MembershipEvent {
        let now = RegistryRows.nowMs()
        try db.execute(
            sql: """
                INSERT INTO membership_event (org, project, env, agent_id, cluster_id, previous_cluster_id,
                                              revoked_token_id, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [scope.org, scope.project, scope.env, agent, cluster, previous, revokedToken, now])
        return V1.MembershipEvent(
            version: UInt64(db.lastInsertedRowID), scope: scope, agentId: agent, clusterId: cluster,
            previousClusterId: previous, atUnixMs: now, revokedTokenId: revokedToken)
    }

    static func revocationEvent(_ db: Database, _ scope: V1.Scope, tokenId: String) throws -> V1.MembershipEvent {
        try recordEvent(db, scope, revokedToken: tokenId)
    }

    func events(after version: UInt64) async throws -> [V1.MembershipEvent] {
        try await database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM membership_event WHERE version > ? ORDER BY version LIMIT 10000",
                arguments: [Int64(clamping: version)]
            ).map(RegistryRows.event)
        }
    }

    /// What public answers call the membership version: how many membership changes and token
    /// revocations `scope` has seen, through the event at `version` (nil: all so far). The global
    /// version would tell one tenant how busy all the others are.
    func scopeVersion(_ scope: V1.Scope, through version: UInt64?) async throws -> UInt64 {
        try await database.read { db in
            UInt64(
                try Int64.fetchOne(
                    db,
                    sql: "SELECT COUNT(*) FROM membership_event WHERE org = ? AND project = ? AND env = ? AND version <= ?",
                    arguments: [scope.org, scope.project, scope.env, Int64(clamping: version ?? .max)]) ?? 0)
        }
    }

    func currentVersion() async throws -> UInt64 {
        try await database.read { db in
            UInt64(try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(version), 0) FROM membership_event") ?? 0)
        }
    }

    // MARK: Idempotency

    static func idempotentResult(_ db: Database, _ scope: V1.Scope, _ method: String, _ key: String) throws -> String? {
        guard !key.isEmpty else { return nil }
        return try String.fetchOne(
            db,
            sql: "SELECT result_id FROM idempotency WHERE org = ? AND project = ? AND env = ? AND method = ? AND key = ?",
            arguments: [scope.org, scope.project, scope.env, method, key])
    }

    static func rememberIdempotent(_ db: Database, _ scope: V1.Scope, _ method: String, _ key: String, _ id: String) throws {
        guard !key.isEmpty else { return }
        try db.execute(
            sql: "INSERT INTO idempotency (org, project, env, method, key, result_id) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [scope.org, scope.project, scope.env, method, key, id])
    }
}
