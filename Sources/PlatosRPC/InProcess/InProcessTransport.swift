import PlatosProto

/// Calls a router's handlers directly, with no sockets and no event loops: fast, deterministic
/// service tests. Payloads are still encoded and decoded, so a test exercises the same bytes the
/// network would carry; deadlines and cancellation behave as over TCP.
public struct InProcessTransport: RPCTransport {
    public let router: RPCRouter
    public let peer: String

    public init(router: RPCRouter, peer: String = "in-process") {
        self.router = router
        self.peer = peer
    }

    private func context(_ method: String, _ metadata: Metadata, _ deadline: ContinuousClock.Instant?) -> ServerContext {
        ServerContext(method: method, metadata: metadata, deadline: deadline, peer: peer, callId: 0)
    }

    public func unary(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8] {
        guard case .unary(let body)? = router.handler(for: method.name) else {
            throw RPCError(.unimplemented, "unknown method '\(method.name)'")
        }
        let context = context(method.name, metadata, deadline)
        do {
            return try await withDeadline(deadline) {
                try await ServerContext.$current.withValue(context) { try await body(payload, context) }
            }
        } catch {
            throw RPCRouter.handlerStatus(for: error)
        }
    }

    public func serverStreaming(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        guard case .serverStreaming(let body)? = router.handler(for: method.name) else {
            return AsyncThrowingStream { $0.finish(throwing: RPCError(.unimplemented, "unknown method '\(method.name)'")) }
        }
        let context = context(method.name, metadata, deadline)
        // As over TCP (StreamInbox): a reader that falls behind gets the messages it holds, then
        // RESOURCE_EXHAUSTED; nothing is dropped silently.
        let (inbox, stream) = StreamInbox.make(RPCClientConfiguration().streamInboxLimits)
        let task = Task {
            do {
                try await withDeadline(deadline) {
                    try await ServerContext.$current.withValue(context) {
                        try await body(payload, context) { message in
                            try Task.checkCancellation()
                            if !inbox.deliver(message) { throw inbox.fellBehind }
                        }
                    }
                }
                inbox.finish()
            } catch {
                inbox.finish(throwing: RPCRouter.handlerStatus(for: error))
            }
        }
        inbox.onTermination { _ in task.cancel() }
        return stream
    }
}

/// Runs `body`, cancelling it and throwing `DEADLINE_EXCEEDED` when `deadline` passes first.
func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant?, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    guard let deadline else { return try await body() }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(until: deadline, clock: .continuous)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw RPCError(.deadlineExceeded, "deadline exceeded")
        }
        return value
    }
}
