import PlatosProto

/// Where memories live. Handlers speak only to this protocol, so a PostgreSQL store can replace
/// ``SQLiteMemoryStore`` without touching them. Every method applies the scope it is given inside
/// its queries; none returns a row the scope does not reach and then filters it out.
public protocol MemoryStore: Sendable {
    /// Stores a new memory, or returns the earlier one when `memory.idempotencyKey` was used
    /// before by the same agent (`replayed` true).
    func write(_ memory: NewMemory) async throws -> (item: V1.MemoryItem, replayed: Bool)

    /// The best matches of `query` within its scopes, best first.
    func recall(_ query: RecallQuery) async throws -> [V1.RecalledMemory]

    /// One memory the caller can reach, or ``MemoryStoreError/notFound(_:)``.
    func get(id: String, access: MemoryAccess) async throws -> V1.MemoryItem

    /// The caller's memories, newest first, one page at a time.
    func list(_ query: ListQuery) async throws -> MemoryPage

    /// Applies `change`; ``MemoryStoreError/versionConflict(id:expected:current:)`` when the
    /// memory moved on since the version the caller read.
    func update(_ change: MemoryUpdate) async throws -> V1.MemoryItem

    /// Deletes a memory; `expectedVersion` 0 deletes whatever version is current.
    func delete(id: String, expectedVersion: UInt64, access: MemoryAccess, actorAgentId: String, nowMs: Int64)
        async throws

    /// The add/update/delete entries of one memory, oldest first; still answered after a delete.
    func history(id: String, access: MemoryAccess, pageSize: Int, after: Int64?) async throws -> HistoryPage

    /// Erases every memory of `userId` the scope reaches, with its history. Returns how many
    /// memories were erased.
    func forgetUser(_ userId: String, in scope: ForgetScope) async throws -> UInt64
}

/// A memory to store, with its owner already decided.
public struct NewMemory: Sendable {
    public var scope: MemoryScope
    public var authorAgentId: String
    public var content: String
    public var tags: [String]
    public var metadata: [String: String]
    public var visibility: V1.Visibility
    /// 0 for never.
    public var expiresAtUnixMs: Int64
    /// Empty for none.
    public var idempotencyKey: String
    /// The writer's current cluster, empty for none: a retried write answers with the first
    /// write's memory only while the writer still reaches it.
    public var writerClusterId: String
    public var nowMs: Int64

    public init(
        scope: MemoryScope, authorAgentId: String, content: String, tags: [String] = [],
        metadata: [String: String] = [:], visibility: V1.Visibility = .shared, expiresAtUnixMs: Int64 = 0,
        idempotencyKey: String = "", writerClusterId: String = "", nowMs: Int64
    ) {
        self.scope = scope
        self.authorAgentId = authorAgentId
        self.writerClusterId = writerClusterId
        self.content = content
        self.tags = tags
        self.metadata = metadata
        self.visibility = visibility
        self.expiresAtUnixMs = expiresAtUnixMs
        self.idempotencyKey = idempotencyKey
        self.nowMs = nowMs
    }
}

/// A validated `memory.recall`.
public struct RecallQuery: Sendable {
    /// `access.userId` is the user recalled for; it is never empty here.
    public var access: MemoryAccess
    public var text: String
    public var limit: Int
    /// Every one must be present.
    public var tags: [String] = []
    /// Empty for any author.
    public var authorAgentId: String = ""
    /// Creation time bounds, 0 for open.
    public var sinceUnixMs: Int64 = 0
    public var untilUnixMs: Int64 = 0
    /// Memories that expired at or before this are not recalled; the base of recency.
    public var nowMs: Int64

    public init(access: MemoryAccess, text: String, limit: Int, nowMs: Int64) {
        self.access = access
        self.text = text
        self.limit = limit
        self.nowMs = nowMs
    }
}

/// A validated `memory.list`.
public struct ListQuery: Sendable {
    public var access: MemoryAccess
    public var pageSize: Int
    /// Continue below this row (from the page token), nil for the first page.
    public var after: Int64?
    public var tags: [String] = []
    public var authorAgentId: String = ""

    public init(access: MemoryAccess, pageSize: Int, after: Int64?) {
        self.access = access
        self.pageSize = pageSize
        self.after = after
    }
}

public struct MemoryPage: Sendable {
    public var items: [V1.MemoryItem]
    /// Where the next page starts, nil when this page is the last.
    public var next: Int64?
}

public struct HistoryPage: Sendable {
    public var entries: [V1.MemoryHistoryEntry]
    public var next: Int64?
}

/// A validated `memory.update`. Nil and empty mean "leave as it is".
public struct MemoryUpdate: Sendable {
    public var id: String
    public var access: MemoryAccess
    /// 0 for no check.
    public var expectedVersion: UInt64
    public var content: String?
    /// Added to the current tags, or replacing them when `replaceTags`.
    public var tags: [String] = []
    public var replaceTags = false
    /// Merged over the current metadata, or replacing it when `replaceMetadata`.
    public var metadata: [String: String] = [:]
    public var replaceMetadata = false
    public var expiresAtUnixMs: Int64?
    public var actorAgentId: String
    public var nowMs: Int64

    public init(id: String, access: MemoryAccess, expectedVersion: UInt64, actorAgentId: String, nowMs: Int64) {
        self.id = id
        self.access = access
        self.expectedVersion = expectedVersion
        self.actorAgentId = actorAgentId
        self.nowMs = nowMs
    }
}

/// Whose memories `forget_user` erases.
public enum ForgetScope: Sendable {
    /// An agent's call: its current cluster's memories and its own.
    case reachableBy(MemoryAccess)
    /// An admin's call: the whole project scope.
    case project(org: String, project: String, env: String)
}

/// Why a store refused; handlers turn each into its RPC status.
public enum MemoryStoreError: Error, Equatable {
    /// Also what a memory outside the caller's scope is, so ids leak nothing.
    case notFound(id: String)
    case versionConflict(id: String, expected: UInt64, current: UInt64)
    /// The idempotency key was used before for a write with different content.
    case idempotencyKeyReused(key: String)
    /// The idempotency key's write happened, but its memory is out of the writer's reach now:
    /// deleted, or owned by a cluster the writer has left. Which of the two is not said.
    case idempotentWriteOutOfReach(key: String)
    /// The result of an update would break a limit (for example too many tags after a merge).
    case invalidUpdate(String)
}
