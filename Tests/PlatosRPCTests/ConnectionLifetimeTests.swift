import PlatosProto
import PlatosTestSupport
import Testing

@testable import PlatosRPC

/// A closed connection must be freed, not only closed: a server runs for months and sees
/// millions of connections come and go.
@Suite struct ConnectionLifetimeTests {
    @Test func closedConnectionsFreeTheirHandlersHoweverTheyEnded() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        // Closed by the client after a call.
        for _ in 0..<10 {
            let (client, pool) = client(port)
            _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"))
            await pool.close()
        }
        // Closed by the client while a handler is still running: the handler is cancelled and
        // holds the connection's outbox until it returns.
        for i in 1...5 {
            let (client, pool) = client(port)
            let call = Task { try await client.call(V1.MemoryService.recall, V1.RecallRequest(limit: 10_000)) }
            #expect(await observations.wait(for: "recall.started", count: i))
            await pool.close()
            // A closed pool stays closed: the idempotent call is not retried on a new connection.
            await #expect(throws: RPCError.self) { try await call.value }
        }
        #expect(await observations.wait(for: "recall.cancelled", count: 5))
        #expect(observations.count("recall.started") == 5)
        // Closed by the server: a frame it refuses (GOAWAY, then close).
        for _ in 0..<5 {
            let socket = try RawSocket(port: port)
            socket.send([0, 0, 0, 0])
            _ = await socket.readToEOF()
        }

        #expect(await server.connectionHandlersFreed(within: .seconds(10)))
        await server.shutdownGracefully()
    }

    @Test func aClosedPoolRefusesCalls() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let (client, pool) = client(port)
        _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"))
        await pool.close()
        let error = await #expect(throws: RPCError.self) {
            try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"))
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("closed") == true)
        await server.shutdownGracefully()
    }
}
