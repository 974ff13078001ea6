import Foundation
import GRDB
import PlatosProto

/// Row ↔ proto conversions. Metadata maps are stored as JSON text.
enum RegistryRows {
    static func encodeMetadata(_ metadata: [String: String]) -> String {
        guard !metadata.isEmpty, let data = try? JSONEncoder().encode(metadata) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    static func decodeMetadata(_ text: String) -> [String: String] {
        (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))) ?? [:]
    }

    static func scope(_ row: Row) -> V1.Scope {
        V1.Scope(org: row["org"], project: row["project"], env: row["env"])
    }

    static func agent(_ row: Row) -> V1.Agent {
        V1.Agent(
            id: row["id"], scope: scope(row), slug: row["slug"], name: row["name"], avatarUrl: row["avatar_url"],
            description: row["description"], clusterId: row["cluster_id"] ?? "",
            metadata: decodeMetadata(row["metadata"]), createdAtUnixMs: row["created_at"],
            updatedAtUnixMs: row["updated_at"])
    }

    static func token(_ row: Row) -> V1.TokenInfo {
        V1.TokenInfo(
            id: row["id"], scope: scope(row), role: V1.Role(protoValue: row["role"]), agentId: row["agent_id"],
            boundUserId: row["bound_user_id"], description: row["description"], createdAtUnixMs: row["created_at"],
            expiresAtUnixMs: row["expires_at"], revokedAtUnixMs: row["revoked_at"])
    }

    static func event(_ row: Row) -> V1.MembershipEvent {
        V1.MembershipEvent(
            version: UInt64(row["version"] as Int64), scope: scope(row), agentId: row["agent_id"],
            clusterId: row["cluster_id"], previousClusterId: row["previous_cluster_id"], atUnixMs: row["at"],
            revokedTokenId: row["revoked_token_id"])
    }

    /// `SELECT agent.*, membership.cluster_id` for one scope; append a WHERE continuation.
    static let agentSelect = """
        SELECT agent.*, membership.cluster_id AS cluster_id FROM agent
        LEFT JOIN membership ON membership.agent_id = agent.id
        WHERE agent.org = ? AND agent.project = ? AND agent.env = ?
        """

    static func scopeArguments(_ scope: V1.Scope) -> StatementArguments {
        [scope.org, scope.project, scope.env]
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// Opaque list cursors: the last id of the previous page, base64url so nobody builds one by hand.
enum PageCursor {
    static let defaultSize = 50
    static let maxSize = 500

    static func size(_ page: V1.PageRequest?) -> Int {
        let asked = Int(page?.pageSize ?? 0)
        return asked == 0 ? defaultSize : min(asked, maxSize)
    }

    static func after(_ page: V1.PageRequest?) throws -> String {
        guard let token = page?.pageToken, !token.isEmpty else { return "" }
        guard let data = Data(base64Encoded: token), let id = String(data: data, encoding: .utf8) else {
            throw RegistryError.invalid("page.page_token", "is not a token this service issued")
        }
        return id
    }

    static func token(after lastId: String?) -> String {
        lastId.map { Data($0.utf8).base64EncodedString() } ?? ""
    }
}
