import PlatosAuth
import PlatosProto
import PlatosRPC

/// Who is calling a backend, as the gateway resolved and signed it.
public struct Caller: Sendable {
    public let principal: V1.Principal
    public let scope: V1.Scope
    public let context: ServerContext

    public var agentId: String { principal.agentId }
    /// Empty when the agent is in no cluster.
    public var clusterId: String { principal.clusterId }
    public var userId: String { principal.userId }
    public var isAdmin: Bool { principal.role == .admin }
}

/// A router whose every handler first verifies the gateway's signature on the principal, so a
/// caller that reaches a backend port directly gets `UNAUTHENTICATED` and nothing else.
public struct AuthenticatedRouter: Sendable {
    public private(set) var router = RPCRouter()
    public let signer: PrincipalSigner

    public init(signer: PrincipalSigner) {
        self.signer = signer
    }

    public func caller(_ context: ServerContext) throws -> Caller {
        let principal = try signer.verify(context.metadata, method: context.method)
        guard let scope = principal.scope, !scope.org.isEmpty, !scope.project.isEmpty, !scope.env.isEmpty else {
            throw RPCError.principalRejected("the signed principal names no complete scope (org, project, env)")
        }
        return Caller(principal: principal, scope: scope, context: context)
    }

    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ handler: @escaping @Sendable (Request, Caller) async throws -> Response
    ) {
        let authenticate = self.caller
        router.register(method) { request, context in
            try await handler(request, try authenticate(context))
        }
    }

    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        stream handler: @escaping @Sendable (Request, Caller, RPCStreamWriter<Response>) async throws -> Void
    ) {
        let authenticate = self.caller
        router.register(method, stream: { request, context, writer in
            try await handler(request, try authenticate(context), writer)
        })
    }
}
