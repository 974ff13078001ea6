import PlatosProto
import PlatosRPC

/// A transport that stamps `principal`, signed, on every call before handing it to `inner`: how
/// the gateway calls the backends, and how tests and benchmarks call a backend as the gateway
/// would. Whatever principal entries or token the metadata already carried are dropped, never
/// forwarded: a backend trusts only the stamp made here.
public struct SignedTransport: RPCTransport {
    public let inner: any RPCTransport
    public let signer: PrincipalSigner
    public let principal: V1.Principal

    public init(inner: any RPCTransport, signer: PrincipalSigner, principal: V1.Principal) {
        self.inner = inner
        self.signer = signer
        self.principal = principal
    }

    /// `metadata` without the caller's credentials, plus the stamp for `method`.
    public static func stamped(
        _ metadata: Metadata, principal: V1.Principal, method: String, signer: PrincipalSigner
    ) throws -> Metadata {
        var out = Metadata(
            metadata.entries.filter { !$0.key.hasPrefix("x-platos-principal") && $0.key != MetadataKey.authorization })
        for entry in try signer.stamp(principal, method: method) { out[entry.key] = entry.value }
        return out
    }

    public func unary(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8] {
        let stamped = try Self.stamped(metadata, principal: principal, method: method.name, signer: signer)
        return try await inner.unary(method: method, payload: payload, metadata: stamped, deadline: deadline)
    }

    public func serverStreaming(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        do {
            let stamped = try Self.stamped(metadata, principal: principal, method: method.name, signer: signer)
            return inner.serverStreaming(method: method, payload: payload, metadata: stamped, deadline: deadline)
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
    }
}
