import Logging
import PlatosAuth
import PlatosProto
import PlatosRPC

/// Connection pools to the three backends, and the stamp the gateway puts on every call to them.
struct Backends: Sendable {
    let registry: BackendTransport
    let memory: BackendTransport
    let threads: BackendTransport
    let signer: PrincipalSigner

    init(configuration: GatewayConfiguration, signer: PrincipalSigner, logger: Logger) {
        var client = RPCClientConfiguration()
        client.connections = 2
        // A backend that is down must answer quickly, not hold calls until their deadline.
        client.connectTimeout = .milliseconds(500)
        func backend(_ endpoint: RPCEndpoint, _ name: String) -> BackendTransport {
            BackendTransport(
                pool: RPCConnectionPool(host: endpoint.host, port: endpoint.port, configuration: client), name: name,
                logger: logger)
        }
        registry = backend(configuration.registry, "platos-registry")
        memory = backend(configuration.memory, "platos-memory")
        threads = backend(configuration.threads, "platos-threads")
        self.signer = signer
    }

    func pool(for owner: MethodOwner) -> BackendTransport? {
        switch owner {
        case .registry: return registry
        case .memory: return memory
        case .threads: return threads
        case .gateway, .everyProcess: return nil
        }
    }

    /// `metadata` with the caller's principal stamped for `method`; the caller's own token and
    /// any principal entries it sent are dropped, never trusted.
    func stamped(_ metadata: Metadata, principal: V1.Principal, method: String) throws -> Metadata {
        try SignedTransport.stamped(metadata, principal: principal, method: method, signer: signer)
    }

    /// A typed client that calls the backend owning `owner`'s methods as `principal`.
    func client(_ owner: MethodOwner, as principal: V1.Principal) -> RPCClient {
        RPCClient(transport: SignedTransport(inner: pool(for: owner)!, signer: signer, principal: principal))
    }

    func close() async {
        await registry.pool.close()
        await memory.pool.close()
        await threads.pool.close()
    }
}
