import PlatosProto
import PlatosRPC
import PlatosService

extension ThreadsService {
    static let defaultMessageLimit = 100
    static let maxMessageLimit = 1000

    func registerMessages(_ routes: inout AuthenticatedRouter) {
        routes.register(V1.MessagesService.post) { [self] request, caller in try await postMessage(request, caller) }
        routes.register(V1.MessagesService.list) { [self] request, caller in try await listMessages(request, caller) }
    }

    func postMessage(_ request: V1.PostMessageRequest, _ caller: Caller) async throws -> V1.Message {
        let access = try access(caller)
        try RequestLimits.require(request.threadId, "thread_id")
        let role: V1.MessageRole
        switch request.role {
        // An agent posts as an agent unless it says otherwise.
        case .unspecified: role = .agent
        case .user, .agent, .system, .tool: role = request.role
        case .unrecognized(let value): throw RPCError(.invalidArgument, "role \(value) is not a MessageRole")
        }
        guard !request.content.isEmpty else { throw RPCError(.invalidArgument, "content is required") }
        try RequestLimits.limit(request.content, "content", RequestLimits.maxContentBytes)
        try RequestLimits.metadata(request.metadata)
        try RequestLimits.idempotencyKey(request.idempotencyKey)
        // The author is the signed caller; the request has no author field to trust.
        let draft = MessageDraft(
            threadId: request.threadId, role: role, content: request.content, metadata: request.metadata,
            userId: caller.userId, idempotencyKey: request.idempotencyKey)
        let message = try await store.postMessage(draft, access: access, now: now)
        messageSignal.signal(message.threadId)
        return message
    }

    func listMessages(_ request: V1.ListMessagesRequest, _ caller: Caller) async throws -> V1.ListMessagesResponse {
        let access = try access(caller)
        try RequestLimits.require(request.threadId, "thread_id")
        try RequestLimits.optionalId(request.authorAgentId, "author_agent_id")
        guard request.limit <= Self.maxMessageLimit else {
            throw RPCError(.invalidArgument, "limit is \(request.limit); the limit is \(Self.maxMessageLimit)")
        }
        let limit = request.limit == 0 ? Self.defaultMessageLimit : Int(request.limit)
        let page = try await store.listMessages(
            threadId: request.threadId, access: access, afterSeq: request.afterSeq, limit: limit,
            authorAgentId: request.authorAgentId, newest: request.newest, includeThread: request.includeThread)
        return V1.ListMessagesResponse(messages: page.messages, hasMore: page.hasMore, thread: page.thread)
    }
}
