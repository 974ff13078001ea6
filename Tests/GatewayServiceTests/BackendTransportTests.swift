import Foundation
import Logging
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosService
import Testing

@testable import GatewayService

/// A backend that refuses the gateway's own stamp (another internal secret) has not judged the
/// caller's token: the gateway answers INTERNAL, naming the backend and what to fix, not
/// UNAUTHENTICATED, which would tell a client to drop a good token.
@Suite struct BackendTransportTests {
    static func signer() throws -> PrincipalSigner {
        try PrincipalSigner(secret: Array(UUID().uuidString.utf8) + Array(UUID().uuidString.utf8))
    }

    /// A memory-like backend checking stamps with `signer`: `memory.get` and `tasks.watch`
    /// answer once the stamp holds.
    static func backend(_ signer: PrincipalSigner) async throws -> (RPCServer, Int) {
        var router = AuthenticatedRouter(signer: signer)
        router.register(V1.MemoryService.get) { request, _ in V1.MemoryItem(id: request.memoryId) }
        router.register(V1.TasksService.watch, stream: { _, _, writer in try await writer.send(V1.Task(id: "t")) })
        let server = RPCServer(
            configuration: RPCServerConfiguration(host: "127.0.0.1", port: 0, serverName: "backend"), router: router.router)
        let port = try await server.start().port!
        return (server, port)
    }

    static func client(port: Int, signer: PrincipalSigner) -> (RPCClient, RPCConnectionPool) {
        let pool = RPCConnectionPool(host: "127.0.0.1", port: port)
        let transport = BackendTransport(pool: pool, name: "platos-memory", logger: Logger(label: "test"))
        let principal = V1.Principal(scope: V1.Scope(org: "o", project: "p", env: "dev"), agentId: "agt_a", role: .agent)
        return (RPCClient(transport: SignedTransport(inner: transport, signer: signer, principal: principal)), pool)
    }

    @Test func aStampRefusedByTheBackendIsInternalNotUnauthenticated() async throws {
        let (server, port) = try await Self.backend(try Self.signer())
        let (client, pool) = Self.client(port: port, signer: try Self.signer())
        await #expect {
            _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "m"))
        } throws: { error in
            guard let error = error as? RPCError else { return false }
            return error.code == .internal && error.message.contains("platos-memory, or a service it called, refused a principal stamp")
                && error.message.contains("invalid principal signature")
        }
        await #expect {
            for try await _ in client.stream(V1.TasksService.watch, V1.WatchTasksRequest(taskId: "t")) {}
        } throws: { error in
            (error as? RPCError)?.code == .internal
        }
        await pool.close()
        await server.shutdownGracefully()
    }

    @Test func callsWithAStampTheBackendAcceptsPassThrough() async throws {
        let signer = try Self.signer()
        let (server, port) = try await Self.backend(signer)
        let (client, pool) = Self.client(port: port, signer: signer)
        #expect(try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "m")).id == "m")
        var ids: [String] = []
        for try await task in client.stream(V1.TasksService.watch, V1.WatchTasksRequest(taskId: "t")) { ids.append(task.id) }
        #expect(ids == ["t"])
        await pool.close()
        await server.shutdownGracefully()
    }
}
