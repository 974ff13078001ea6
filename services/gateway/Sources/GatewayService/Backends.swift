import PlatosAuth
import PlatosProto
import PlatosRPC

/// Connection pools to the three backends, and the stamp the gateway puts on every call to them.
struct Backends: Sendable {
    let registry: RPCConnectionPool
    let memory: RPCConnectionPool
    let threads: RPCConnectionPool
    let signer: PrincipalSigner

    init(configuration: GatewayConfiguration, signer: PrincipalSigner) {
        var client = RPCClientConfiguration()
        client.connections = 2
        // A backend that is down must answer quickly, not hold calls until their deadline.
        client.connectTimeout = .milliseconds(500)
        registry = RPCConnectionPool(host: configuration.registry.host, port: configuration.registry.port, configuration: client)
        memory = RPCConnectionPool(host: configuration.memory.host, port: configuration.memory.port, configuration: client)
        threads = RPCConnectionPool(host: configuration.threads.host, port: configuration.threads.port, configuration: client)
        self.signer = signer
    }

    func pool(for owner: MethodOwner) -> RPCConnectionPool? {
        switch owner {
        case .registry: return registry
        case .memory: return memory
        case .threads: return threads
        case .gateway, .everyProcess: return nil
        }
    }

    /// `metadata` with the caller's principal stamped for `method`. The caller's own
    /// `x-platos-principal*` entries, if it sent any, are replaced, never trusted.
    func stamped(_ metadata: Metadata, principal: V1.Principal, method: String) throws -> Metadata {
        var out = Metadata(metadata.entries.filter { !$0.key.hasPrefix("x-platos-principal") && $0.key != MetadataKey.authorization })
        for entry in try signer.stamp(principal, method: method) { out[entry.key] = entry.value }
        return out
    }

    /// A typed client that calls as `principal`.
    func client(_ owner: MethodOwner, as principal: V1.Principal) -> RPCClient {
        RPCClient(transport: StampedTransport(backends: self, pool: pool(for: owner)!, principal: principal))
    }

    func close() async {
        await registry.close()
        await memory.close()
        await threads.close()
    }
}

/// Stamps `principal` on each call before it reaches `pool`.
struct StampedTransport: RPCTransport {
    let backends: Backends
    let pool: RPCConnectionPool
    let principal: V1.Principal

    func unary(method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?)
        async throws -> [UInt8]
    {
        let stamped = try backends.stamped(metadata, principal: principal, method: method.name)
        return try await pool.unary(method: method, payload: payload, metadata: stamped, deadline: deadline)
    }

    func serverStreaming(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        do {
            let stamped = try backends.stamped(metadata, principal: principal, method: method.name)
            return pool.serverStreaming(method: method, payload: payload, metadata: stamped, deadline: deadline)
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
    }
}
