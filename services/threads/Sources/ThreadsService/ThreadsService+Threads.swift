import PlatosProto
import PlatosRPC
import PlatosService

extension ThreadsService {
    func registerThreads(_ routes: inout AuthenticatedRouter) {
        routes.register(V1.ThreadsService.create) { [self] request, caller in try await createThread(request, caller) }
        routes.register(V1.ThreadsService.get) { [self] request, caller in
            try RequestLimits.require(request.threadId, "thread_id")
            return try await store.thread(request.threadId, access: try access(caller))
        }
        routes.register(V1.ThreadsService.list) { [self] request, caller in try await listThreads(request, caller) }
        routes.register(V1.ThreadsService.update) { [self] request, caller in try await updateThread(request, caller) }
        routes.register(V1.ThreadsService.delete) { [self] request, caller in
            try RequestLimits.require(request.threadId, "thread_id")
            try await store.deleteThread(request.threadId, access: try access(caller))
            // Watchers re-read, find the thread gone, and end with NOT_FOUND.
            messageSignal.signal(request.threadId)
            taskSignal.signal(request.threadId)
            return V1.DeleteThreadResponse(deleted: true)
        }
        routes.register(V1.ThreadsService.watch, stream: { [self] request, caller, writer in
            try await watchThread(request, caller, writer)
        })
    }

    func createThread(_ request: V1.CreateThreadRequest, _ caller: Caller) async throws -> V1.Thread {
        let access = try access(caller)
        try RequestLimits.limit(request.title, "title", RequestLimits.maxTitleBytes)
        try RequestLimits.metadata(request.metadata)
        try RequestLimits.idempotencyKey(request.idempotencyKey)
        let draft = ThreadDraft(
            title: request.title, metadata: request.metadata, userId: caller.userId,
            idempotencyKey: request.idempotencyKey)
        return try await store.createThread(draft, access: access, now: now)
    }

    func listThreads(_ request: V1.ListThreadsRequest, _ caller: Caller) async throws -> V1.ListThreadsResponse {
        let access = try access(caller)
        let limit = try PageCursor.pageSize(request.page)
        let after = try PageCursor.decode(request.page?.pageToken ?? "")
        try RequestLimits.metadata(request.metadataFilter, "metadata_filter")
        guard request.metadataFilter.count <= RequestLimits.maxMetadataFilterEntries else {
            throw RPCError(
                .invalidArgument,
                "metadata_filter has \(request.metadataFilter.count) entries; the limit is \(RequestLimits.maxMetadataFilterEntries)")
        }
        let page = try await store.listThreads(
            access: access, metadataFilter: request.metadataFilter, after: after, limit: limit)
        return V1.ListThreadsResponse(threads: page.threads, nextPageToken: page.next?.token ?? "")
    }

    func updateThread(_ request: V1.UpdateThreadRequest, _ caller: Caller) async throws -> V1.Thread {
        let access = try access(caller)
        try RequestLimits.require(request.threadId, "thread_id")
        if let title = request.title { try RequestLimits.limit(title.value, "title", RequestLimits.maxTitleBytes) }
        try RequestLimits.metadata(request.metadata)
        let change = ThreadChange(
            title: request.title?.value, metadata: request.metadata, replaceMetadata: request.replaceMetadata)
        return try await store.updateThread(request.threadId, change, access: access, now: now)
    }

    /// Replays every message after `after_seq`, then follows live.
    ///
    /// Gap-free and duplicate-free by construction: the watch subscribes before its first read,
    /// and every read asks the database for the messages after the last seq it sent. A message
    /// committed while a read runs either is in that read or bumps the signal's generation, which
    /// makes the next wait return at once.
    func watchThread(
        _ request: V1.WatchThreadRequest, _ caller: Caller, _ writer: RPCStreamWriter<V1.Message>
    ) async throws {
        let access = try access(caller)
        try RequestLimits.require(request.threadId, "thread_id")
        let subscription = messageSignal.subscribe(request.threadId)
        defer { messageSignal.unsubscribe(subscription) }
        var lastSeq = request.afterSeq
        while true {
            try Task.checkCancellation()
            let generation = messageSignal.generation(subscription)
            // Throws NOT_FOUND for a thread the caller cannot see, and once the thread is deleted.
            let page = try await store.listMessages(
                threadId: request.threadId, access: access, afterSeq: lastSeq, limit: 256, authorAgentId: "", newest: false,
                includeThread: false)
            for message in page.messages {
                try await writer.send(message)
                lastSeq = message.seq
            }
            if page.hasMore { continue }
            await messageSignal.wait(subscription, since: generation)
        }
    }
}
