import GRDB
import PlatosProto

/// How a memory is laid out in SQL: the columns every read selects, in one order, and the way
/// back to a ``V1/MemoryItem``.
enum MemoryRow {
    /// Selected from `memories` aliased `m`; content last, like the table.
    static let columns = """
        m.rowid, m.id, m.owner_kind, m.owner_id, m.author_agent_id, m.user_id, m.visibility, m.version,
        m.created_at_ms, m.updated_at_ms, m.expires_at_ms, m.tags_json, m.metadata_json, m.content
        """
    static let columnCount = 14

    static func item(_ row: Row) -> V1.MemoryItem {
        V1.MemoryItem(
            id: row[1],
            ownerKind: V1.OwnerKind(protoValue: row[2]),
            ownerId: row[3],
            authorAgentId: row[4],
            userId: row[5],
            content: row[13],
            tags: JSONColumn.strings(row[11]),
            metadata: JSONColumn.dictionary(row[12]),
            visibility: V1.Visibility(protoValue: row[6]),
            version: UInt64(clamping: row[7] as Int64),
            createdAtUnixMs: row[8],
            updatedAtUnixMs: row[9],
            expiresAtUnixMs: row[10])
    }

    static func rowid(_ row: Row) -> Int64 { row[0] }
}

/// The SQL that limits a query on `memories` (or `memory_history`, which carries the same scope
/// columns) to what one caller reaches: its project scope, then its current cluster's and its own
/// memories, then its end user when it acts for one.
struct ScopeFilter {
    var sql: String
    var arguments: StatementArguments

    static let clusterKind = V1.OwnerKind.cluster.protoValue
    static let agentKind = V1.OwnerKind.agent.protoValue

    init(alias a: String, access: MemoryAccess) {
        // An agent in no cluster binds "" for the cluster, which no row has as an owner id.
        sql = """
            \(a).org = ? AND \(a).project = ? AND \(a).env = ? \
            AND ((\(a).owner_kind = \(Self.clusterKind) AND \(a).owner_id = ?) \
            OR (\(a).owner_kind = \(Self.agentKind) AND \(a).owner_id = ?))
            """
        arguments = [access.org, access.project, access.env, access.clusterId, access.agentId]
        if !access.userId.isEmpty {
            sql += " AND \(a).user_id = ?"
            arguments += [access.userId]
        }
    }

    /// The project-wide filter of an admin's `forget_user`.
    init(alias a: String, org: String, project: String, env: String) {
        sql = "\(a).org = ? AND \(a).project = ? AND \(a).env = ?"
        arguments = [org, project, env]
    }
}
