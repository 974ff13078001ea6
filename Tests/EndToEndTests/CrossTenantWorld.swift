import Foundation
import PlatosProto
import PlatosRPC
import ProtobufCSwift

/// The tenants of the cross-tenant matrix (`CrossTenantMatrixTests`), all on one running stack.
///
/// Every tenant is built the same way: a cluster of two agents (`chat`, `bgo`) plus an agent in no
/// cluster (`loner`), agent tokens for both members, a cluster thread with messages, a shared and
/// a private memory about the end user, a task that `bgo` has claimed (so it has a live lease)
/// and a task still queued. The victim is one tenant; each attacker is another, whose own
/// resources fill the fields of a request that the matrix does not point at the victim.
struct MatrixTenant: Sendable {
    /// Every end user is this one: a request acting for the victim's own user is the strongest
    /// attempt, since only the cluster, project and env then keep the tenants apart.
    static let user = "user-U"

    let name: String
    let scope: V1.Scope
    let adminSecret: String
    /// A lowercase word that appears in every text this tenant wrote, and nowhere else.
    let canary: String
    let chat: V1.Agent
    let bgo: V1.Agent
    let loner: V1.Agent
    let cluster: V1.Cluster
    let chatToken: V1.IssueTokenResponse
    let bgoToken: V1.IssueTokenResponse
    let thread: V1.Thread
    let messages: [V1.Message]
    let sharedMemory: V1.MemoryItem
    let privateMemory: V1.MemoryItem
    /// Claimed by `bgo` with a long lease: its lease id is what heartbeat, complete and fail need.
    let running: V1.Task
    let queued: V1.Task

    /// Creates the tenant's resources through the gateway at `port`, as its admin and its agents.
    static func make(name: String, scope: V1.Scope, adminSecret: String, port: Int) async throws -> MatrixTenant {
        let canary = "canary" + String((0..<10).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        let admin = SeedStoryTests.client(port, token: adminSecret)
        func agent(_ role: String) async throws -> V1.Agent {
            try await admin.call(
                V1.AgentsService.create,
                V1.CreateAgentRequest(
                    slug: "\(name)-\(role)", name: "\(name) \(role) \(canary)", description: "about \(canary)",
                    metadata: ["note": canary]))
        }
        let chat = try await agent("chat")
        let bgo = try await agent("bgo")
        let loner = try await agent("loner")
        let cluster = try await admin.call(
            V1.ClustersService.create,
            V1.CreateClusterRequest(
                name: "\(name) \(canary)", slug: "\(name)-cluster", agentIds: [chat.id, bgo.id], metadata: ["note": canary]))
        func token(_ agent: V1.Agent) async throws -> V1.IssueTokenResponse {
            try await admin.call(
                V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id, description: "for \(canary)"))
        }
        let chatToken = try await token(chat)
        let bgoToken = try await token(bgo)
        let asChat = SeedStoryTests.client(port, token: chatToken.secret, user: user)
        let asBgo = SeedStoryTests.client(port, token: bgoToken.secret)

        func remember(_ text: String, _ visibility: V1.Visibility) async throws -> V1.MemoryItem {
            let written = try await asChat.call(
                V1.MemoryService.write,
                V1.WriteMemoryRequest(content: text, tags: [canary], metadata: ["note": canary], visibility: visibility))
            guard let item = written.item else { throw RPCError(.internal, "memory.write returned no item") }
            return item
        }
        var sharedMemory = try await remember("\(name) shared memory \(canary)", .shared)
        // A second version, so memory.history has an update to show.
        sharedMemory = try await asChat.call(
            V1.MemoryService.update,
            V1.UpdateMemoryRequest(memoryId: sharedMemory.id, content: V1.StringValue(value: "\(name) updated \(canary)")))
        let privateMemory = try await remember("\(name) private memory \(canary)", .private)

        let thread = try await asChat.call(
            V1.ThreadsService.create, V1.CreateThreadRequest(title: "\(name) \(canary)", metadata: ["note": canary]))
        var messages: [V1.Message] = []
        for text in ["hello \(canary)", "more \(canary)"] {
            messages.append(
                try await asChat.call(
                    V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, role: .user, content: text)))
        }
        func spawn(_ prompt: String) async throws -> V1.Task {
            try await asChat.call(
                V1.TasksService.spawn,
                V1.SpawnTaskRequest(targetAgent: bgo.slug, prompt: "\(prompt) \(canary)", threadId: thread.id))
        }
        let first = try await spawn("first")
        let claim = try await asBgo.call(V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 5000, leaseMs: 600_000))
        guard let running = claim.task, running.id == first.id, !running.leaseId.isEmpty else {
            throw RPCError(.internal, "\(name): bgo did not claim its first task: \(claim)")
        }
        let queued = try await spawn("second")
        return MatrixTenant(
            name: name, scope: scope, adminSecret: adminSecret, canary: canary, chat: chat, bgo: bgo, loner: loner,
            cluster: cluster, chatToken: chatToken, bgoToken: bgoToken, thread: thread, messages: messages,
            sharedMemory: sharedMemory, privateMemory: privateMemory, running: running, queued: queued)
    }

    /// The tenant's values of a kind that a request field may name, the most telling first.
    func values(_ resource: MatrixResource) -> [String] {
        switch resource {
        case .agent: return [chat.id, loner.id]
        case .agentRef: return [bgo.id, bgo.slug]
        case .cluster: return [cluster.id]
        case .token: return [chatToken.token?.id ?? "", bgoToken.token?.id ?? ""]
        case .tokenSecret: return [chatToken.secret]
        case .thread: return [thread.id]
        case .task: return [running.id, queued.id]
        case .memory: return [sharedMemory.id, privateMemory.id]
        }
    }

    /// The value a request gets for a field that is not pointed at the victim: valid for the
    /// attacker, so that only the victim's value can be the reason for a refusal. (The agent in
    /// no cluster, so that `clusters.add_member` into the victim's cluster would succeed but for
    /// the scope check; the sibling, so that `tasks.spawn` into the victim's thread would.)
    func own(_ resource: MatrixResource) -> String {
        switch resource {
        case .agent: return loner.id
        case .agentRef: return bgo.slug
        default: return values(resource)[0]
        }
    }

    /// Everything of this tenant that must never show up in another tenant's answers.
    var markers: [String] {
        var all = [canary, adminSecret, chat.id, bgo.id, loner.id, cluster.id, thread.id, running.leaseId]
        all += [chatToken, bgoToken].flatMap { [$0.token?.id ?? "", $0.secret] }
        all += messages.map(\.id) + [sharedMemory.id, privateMemory.id, running.id, queued.id]
        return all.filter { !$0.isEmpty }
    }

    /// The principals the gateway would stamp for this tenant, for calls straight at a backend.
    var agentPrincipal: V1.Principal {
        V1.Principal(scope: scope, agentId: chat.id, clusterId: cluster.id, userId: Self.user, role: .agent)
    }
    var adminPrincipal: V1.Principal { V1.Principal(scope: scope, role: .admin) }

    /// Everything the victim can read of its own, as the victim, keyed by what was read. Two
    /// snapshots are equal when nothing of the tenant changed (timestamps and versions included).
    func snapshot(port: Int) async throws -> [String: String] {
        let admin = SeedStoryTests.client(port, token: adminSecret)
        // Without x-platos-user: memory lists every user's items of the owner scopes.
        let asChat = SeedStoryTests.client(port, token: chatToken.secret)
        let asBgo = SeedStoryTests.client(port, token: bgoToken.secret)
        var out: [String: String] = [:]
        for agent in [chat, bgo, loner] {
            out["agent \(agent.slug)"] = try await admin.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: agent.id))
                .jsonString()
        }
        out["cluster"] = try await admin.call(V1.ClustersService.get, V1.GetClusterRequest(clusterId: cluster.id))
            .jsonString()
        let agentIds: Set = [chat.id, bgo.id, loner.id]
        let tokens = try await admin.call(
            V1.TokensService.list, V1.ListTokensRequest(page: V1.PageRequest(pageSize: 500), includeRevoked: true))
        out["tokens"] = try V1.ListTokensResponse(
            tokens: tokens.tokens.filter { agentIds.contains($0.agentId) || $0.role == .admin }
        ).jsonString()
        let threads = try await asChat.call(V1.ThreadsService.list, V1.ListThreadsRequest(page: V1.PageRequest(pageSize: 500)))
        out["threads"] = try threads.jsonString()
        for thread in threads.threads {
            out["messages \(thread.id)"] = try await asChat.call(
                V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, limit: 1000)
            ).jsonString()
        }
        out["tasks"] = try await asChat.call(V1.TasksService.list, V1.ListTasksRequest(page: V1.PageRequest(pageSize: 500)))
            .jsonString()
        out["bgo's tasks"] = try await asBgo.call(
            V1.TasksService.list, V1.ListTasksRequest(page: V1.PageRequest(pageSize: 500))
        ).jsonString()
        for (who, client) in [("chat", asChat), ("bgo", asBgo)] {
            let memories = try await client.call(V1.MemoryService.list, V1.ListMemoriesRequest(page: V1.PageRequest(pageSize: 500)))
            out["\(who)'s memories"] = try memories.jsonString()
            for item in memories.items {
                out["history \(item.id)"] = try await client.call(
                    V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: item.id, page: V1.PageRequest(pageSize: 500))
                ).jsonString()
            }
        }
        return out
    }
}

/// What an id-like request field names.
enum MatrixResource: String, Sendable, CaseIterable {
    case agent
    /// An agent named by slug or by id (`tasks.spawn`'s `target_agent`).
    case agentRef
    case cluster
    case token
    /// A token's secret (`auth.resolve`).
    case tokenSecret
    case thread
    case task
    case memory
}

/// A string that looks like `value` (same prefix up to its last `_`, same length, same kinds of
/// characters) but names nothing: what the matrix compares a victim's id against.
func lookalike(_ value: String) -> String {
    while true {
        let candidate = mutated(value)
        if candidate != value { return candidate }
    }
}

private func mutated(_ value: String) -> String {
    let keep = value.lastIndex(of: "_").map { value.index(after: $0) } ?? value.startIndex
    let hex = Set("0123456789abcdef")
    let tail = value[keep...].map { ch -> Character in
        if ch.isNumber { return "0123456789".randomElement()! }
        if hex.contains(ch) { return "abcdef".randomElement()! }
        if ch.isLowercase { return "abcdefghijklmnopqrstuvwxyz".randomElement()! }
        if ch.isUppercase { return "ABCDEFGHIJKLMNOPQRSTUVWXYZ".randomElement()! }
        return ch
    }
    return String(value[..<keep]) + String(tail)
}
