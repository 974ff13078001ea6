import NIOCore
import NIOPosix
import PlatosProto
import PlatosRPC
import Testing

/// The client side of PING/PONG (the server side is in UnaryCallTests.swift): a client that
/// hears nothing from its server pings it; an answered ping keeps an idle connection open, an
/// unanswered one closes it and fails the calls waiting on it (after the bounded retries of an
/// idempotent method, each on a new connection).
@Suite struct ClientKeepaliveTests {
    /// Accepts connections and never writes a byte back.
    private final class Silent: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }

    @Test func aServerThatNeverAnswersIsDroppedAfterTheKeepaliveTimeout() async throws {
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Silent()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        let (client, pool) = client(silent.localAddress!.port!) {
            $0.keepaliveInterval = .milliseconds(200)
            $0.keepaliveTimeout = .milliseconds(200)
        }
        defer { Task { await pool.close() } }

        let started = ContinuousClock.now
        // No deadline: only the keepalive can end this call.
        await #expect(throws: RPCError.self) {
            do {
                _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"))
            } catch let error as RPCError {
                #expect(error.code == .unavailable)
                #expect(error.message.contains("PONG"), "\(error.message)")
                throw error
            }
        }
        // Interval + timeout is 0.4 s; the generous bound only catches a keepalive that never fires.
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func anIdleConnectionToALiveServerStaysOpen() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let (client, pool) = client(port) {
            $0.keepaliveInterval = .milliseconds(100)
            // Generous, so that a PONG delayed by a loaded CI machine does not read as a dead peer.
            $0.keepaliveTimeout = .seconds(2)
        }
        _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "first"))
        let connection = try await pool.connection()
        // Idle for several keepalive intervals: each ping must be answered for the connection to
        // survive.
        try await Task.sleep(for: .milliseconds(1_000))
        #expect(connection.isUsable)
        #expect(try await pool.connection() === connection)
        #expect(try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "later")).id == "later")
        await pool.close()
        await server.shutdownGracefully()
    }
}
