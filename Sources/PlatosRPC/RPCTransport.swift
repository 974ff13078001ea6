import PlatosProto

/// How a client reaches a server. The TCP connection pool and the in-process transport both
/// implement it, so services and their tests use the same ``RPCClient``.
public protocol RPCTransport: Sendable {
    /// One unary call. Throws ``RPCError`` for every failure.
    func unary(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8]

    /// One server-streaming call. The stream ends with an ``RPCError`` unless the status is OK;
    /// dropping the iterator (or cancelling its task) cancels the call on the server.
    func serverStreaming(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error>
}

/// A typed client over any transport.
public struct RPCClient: Sendable {
    public let transport: any RPCTransport
    /// Sent with every call; per-call metadata is added after it.
    public var defaultMetadata: Metadata
    /// Used when a call names no timeout.
    public var defaultTimeout: Duration?

    public init(transport: any RPCTransport, defaultMetadata: Metadata = [:], defaultTimeout: Duration? = nil) {
        self.transport = transport
        self.defaultMetadata = defaultMetadata
        self.defaultTimeout = defaultTimeout
    }

    /// The deadline for a call: its own timeout, cut short by the deadline of the call being served
    /// by this task (if any), so a handler's downstream calls never outlive their caller.
    func deadline(timeout: Duration?) -> ContinuousClock.Instant? {
        let own = (timeout ?? defaultTimeout).map { ContinuousClock.now + $0 }
        let inherited = ServerContext.current?.deadline
        switch (own, inherited) {
        case (let a?, let b?): return min(a, b)
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (nil, nil): return nil
        }
    }

    func merged(_ metadata: Metadata) -> Metadata {
        guard !defaultMetadata.isEmpty else { return metadata }
        var all = defaultMetadata
        for entry in metadata.entries { all[entry.key] = entry.value }
        return all
    }

    public func call<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ request: Request,
        metadata: Metadata = [:],
        timeout: Duration? = nil
    ) async throws -> Response {
        let payload: [UInt8]
        do {
            payload = try request.serializedBytes()
        } catch {
            throw RPCError(.invalidArgument, "\(method.name): request cannot be encoded: \(error)")
        }
        let response = try await transport.unary(
            method: method.descriptor, payload: payload, metadata: merged(metadata), deadline: deadline(timeout: timeout))
        do {
            return try Response(serializedBytes: response)
        } catch {
            throw RPCError(.internal, "\(method.name): response is not a valid \(Response.protoDescriptor.fullName): \(error)")
        }
    }

    public func stream<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ request: Request,
        metadata: Metadata = [:],
        timeout: Duration? = nil
    ) -> AsyncThrowingStream<Response, any Error> {
        let payload: [UInt8]
        do {
            payload = try request.serializedBytes()
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: RPCError(.invalidArgument, "request cannot be encoded: \(error)")) }
        }
        let raw = transport.serverStreaming(
            method: method.descriptor, payload: payload, metadata: merged(metadata), deadline: deadline(timeout: timeout))
        // Pull-based, so the consumer's pace is the stream's pace and dropping it cancels the call.
        let box = IteratorBox(raw.makeAsyncIterator())
        return AsyncThrowingStream(unfolding: {
            guard let bytes = try await box.next() else { return nil }
            do {
                return try Response(serializedBytes: bytes)
            } catch {
                throw RPCError(.internal, "\(method.name): stream message is not a valid \(Response.protoDescriptor.fullName)")
            }
        })
    }
}

/// Lets an `unfolding` closure own an iterator (for a transport that passes a stream on with its
/// messages or errors changed). Only ever advanced by the single consumer of the stream it
/// feeds, one `next()` at a time, which is why the unchecked Sendable is safe.
public final class IteratorBox: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator
    public init(_ iterator: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator) { self.iterator = iterator }
    public func next() async throws -> [UInt8]? { try await iterator.next() }
}
