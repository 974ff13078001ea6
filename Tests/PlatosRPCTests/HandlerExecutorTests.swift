import NIOPosix
import PlatosProto
import PlatosRPC
import Testing

/// Handlers run on their connection's event loop by default (no thread hand-off per call), and
/// on the global executor when configured to, for handlers that might block.
@Suite struct HandlerExecutorTests {
    /// A router whose `memory.get` answers whether it ran on an event loop thread, before and
    /// after an await (a resumed handler must come back to the same place).
    static func router() -> RPCRouter {
        var router = RPCRouter()
        router.register(V1.MemoryService.get) { _, _ in
            let before = MultiThreadedEventLoopGroup.currentEventLoop != nil
            try await Task.sleep(for: .milliseconds(1))
            let after = MultiThreadedEventLoopGroup.currentEventLoop != nil
            return V1.MemoryItem(id: "\(before),\(after)")
        }
        return router
    }

    @Test(arguments: [true, false])
    func handlersRunWhereConfigured(onEventLoop: Bool) async throws {
        let (server, port) = try await startServer(Self.router()) { $0.handlersOnEventLoop = onEventLoop }
        let (client, pool) = client(port)
        let answer = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"))
        #expect(answer.id == "\(onEventLoop),\(onEventLoop)")
        await pool.close()
        await server.shutdownGracefully()
    }

    /// A handler's downstream call goes out on a connection of the handler's own loop.
    @Test func downstreamCallsUseAConnectionOnTheHandlersLoop() async throws {
        let (backend, backendPort) = try await startServer(Self.router())
        let downstream = RPCConnectionPool(
            host: "127.0.0.1", port: backendPort, configuration: { var c = RPCClientConfiguration(); c.connections = 4; return c }())
        var router = RPCRouter()
        router.register(V1.MemoryService.get) { _, _ in
            let connection = try await downstream.connection()
            return V1.MemoryItem(id: connection.eventLoop === MultiThreadedEventLoopGroup.currentEventLoop ? "same" : "other")
        }
        let (server, port) = try await startServer(router)
        let (client, pool) = client(port) { $0.connections = 4 }
        // Warm-up: the round robin connects every slot (each on its own loop).
        for _ in 0..<8 { _ = try await downstream.connection() }
        var answers: [String] = []
        for _ in 0..<20 {
            answers.append(try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x")).id)
        }
        #expect(answers == Array(repeating: "same", count: 20))
        await pool.close()
        await downstream.close()
        await server.shutdownGracefully()
        await backend.shutdownGracefully()
    }
}
