import PlatosProto
import ProtobufCSwift

/// Sends the messages of a server-streaming call, in order.
public struct RPCStreamWriter<Message: ProtoMessage>: Sendable {
    let sendPayload: @Sendable ([UInt8]) async throws -> Void

    public init(sendPayload: @escaping @Sendable ([UInt8]) async throws -> Void) {
        self.sendPayload = sendPayload
    }

    /// Sends one message. Suspends while the connection is backed up; throws when the call has
    /// ended (cancelled, deadline passed, connection gone), which ends the handler's loop.
    public func send(_ message: Message) async throws {
        try await sendPayload(try message.serializedBytes())
    }
}

/// A handler with its types erased to payload bytes, as the transports call it.
public enum ErasedHandler: Sendable {
    case unary(@Sendable ([UInt8], ServerContext) async throws -> [UInt8])
    case serverStreaming(
        @Sendable ([UInt8], ServerContext, _ send: @escaping @Sendable ([UInt8]) async throws -> Void) async throws
            -> Void)
}

/// The method table of one server: wire name → handler. Built from the generated
/// `V1.<Service>Service` method descriptors, so a handler's types always match the proto.
public struct RPCRouter: Sendable {
    public private(set) var handlers: [String: (method: RPCMethodDescriptor, handler: ErasedHandler)] = [:]
    /// Largest request payload accepted, checked before protobuf-c sees it.
    public var maxRequestSize = ProtoLimits.defaultMaxMessageSize

    public init() {}

    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        precondition(method.descriptor.kind == .unary, "\(method.name) is server-streaming: register a stream handler")
        let limit = maxRequestSize
        handlers[method.name] = (
            method.descriptor,
            .unary { payload, context in
                let request = try Self.decode(Request.self, payload, method: method.name, limit: limit)
                return try await handler(request, context).serializedBytes()
            }
        )
    }

    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        stream handler: @escaping @Sendable (Request, ServerContext, RPCStreamWriter<Response>) async throws -> Void
    ) {
        precondition(method.descriptor.kind == .serverStreaming, "\(method.name) is unary: register a unary handler")
        let limit = maxRequestSize
        handlers[method.name] = (
            method.descriptor,
            .serverStreaming { payload, context, send in
                let request = try Self.decode(Request.self, payload, method: method.name, limit: limit)
                try await handler(request, context, RPCStreamWriter(sendPayload: send))
            }
        )
    }

    /// Registers a handler that works on payload bytes, for a proxy that forwards what it does
    /// not need to read (the gateway). The handler's kind must match the method's.
    public mutating func register(_ method: RPCMethodDescriptor, erased handler: ErasedHandler) {
        switch (method.kind, handler) {
        case (.unary, .unary), (.serverStreaming, .serverStreaming): break
        default: preconditionFailure("\(method.name): handler kind does not match the method's \(method.kind)")
        }
        handlers[method.name] = (method, handler)
    }

    public func handler(for method: String) -> ErasedHandler? { handlers[method]?.handler }

    static func decode<M: ProtoMessage>(_ type: M.Type, _ payload: [UInt8], method: String, limit: Int) throws -> M {
        do {
            return try M(serializedBytes: payload, maxSize: limit)
        } catch let error as ProtoError {
            throw RPCError(.invalidArgument, "\(method): request is not a valid \(M.protoDescriptor.fullName): \(error)")
        }
    }

    /// The status a thrown error is answered with. Only ``RPCError`` text reaches the caller.
    public static func status(for error: any Error) -> RPCError {
        switch error {
        case let error as RPCError: return error
        case is CancellationError: return RPCError(.cancelled, "the call was cancelled")
        default: return RPCError(.internal, "internal error")
        }
    }

    /// The status a handler's thrown error is answered with. A `not-started` mark (from a
    /// downstream call the handler made) is dropped: this call did start, and what its handler
    /// did before passing the refusal on may have taken effect, so its caller must not send it
    /// again as if nothing had run.
    public static func handlerStatus(for error: any Error) -> RPCError {
        var status = status(for: error)
        status.details[MetadataKey.notStarted] = nil
        return status
    }
}
