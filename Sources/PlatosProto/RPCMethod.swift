import ProtobufCSwift

/// How a call is shaped on the wire.
public enum RPCKind: String, Sendable, Hashable {
    /// REQUEST → RESPONSE.
    case unary
    /// REQUEST → STREAM_MESSAGE* → STREAM_END.
    case serverStreaming
}

/// Which process owns a method's data, and so where the gateway routes it.
public enum MethodOwner: String, Sendable, Hashable, CaseIterable {
    case registry
    case memory
    case threads
    /// Answered by the gateway itself (fan-out methods).
    case gateway
    /// Answered by every process (`health.check`).
    case everyProcess
}

/// Who may call a method, from the rpc's `// platos:` annotation in the proto.
public enum MethodAccess: String, Sendable, Hashable {
    /// No principal needed (`health.check`).
    case `public`
    /// Any authenticated principal of the scope.
    case agent
    /// Role ADMIN of the scope.
    case admin
    /// Service-to-service only; the gateway never routes it.
    case `internal`
}

/// A method as the method table knows it, without its Swift types.
public struct RPCMethodDescriptor: Sendable, Hashable, CustomStringConvertible {
    /// Dotted wire name, for example `clusters.add_member`.
    public let name: String
    public let kind: RPCKind
    public let owner: MethodOwner
    public let access: MethodAccess
    /// Safe to retry after `UNAVAILABLE`: it has no effect that a retry could double.
    public let idempotent: Bool
    public let requestType: any ProtoMessage.Type
    public let responseType: any ProtoMessage.Type

    public var description: String { name }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

/// A method with its request and response types, as generated into `V1.<Service>Service`.
public struct RPCMethod<Request: ProtoMessage, Response: ProtoMessage>: Sendable, Hashable {
    public let descriptor: RPCMethodDescriptor
    public var name: String { descriptor.name }

    public init(name: String, kind: RPCKind, owner: MethodOwner, access: MethodAccess, idempotent: Bool) {
        descriptor = RPCMethodDescriptor(
            name: name, kind: kind, owner: owner, access: access, idempotent: idempotent,
            requestType: Request.self, responseType: Response.self)
    }
}

extension V1 {
    /// The method table by wire name.
    public static let methodsByName: [String: RPCMethodDescriptor] = Dictionary(
        uniqueKeysWithValues: allMethods.map { ($0.name, $0) })
}
