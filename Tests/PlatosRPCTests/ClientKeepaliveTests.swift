import NIOCore
import NIOEmbedded
import NIOPosix
import PlatosProto
import PlatosWire
import Testing

@testable import PlatosRPC

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
        // Idle for well over one interval plus one timeout (2.1 s): had the PINGs gone
        // unanswered, the connection would have been dropped by now. This sleep creates the
        // condition under test.
        try await Task.sleep(for: .milliseconds(3_500))
        #expect(connection.isUsable)
        #expect(try await pool.connection() === connection)
        #expect(try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "later")).id == "later")
        await pool.close()
        await server.shutdownGracefully()
    }

    /// A server that floods PINGs while it reads nothing would otherwise have the client queue
    /// a PONG for each, without bound, behind a socket that takes no more.
    @Test func pingsAreNotAnsweredWhileTheServerIsNotReading() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try RPCConnection.attached(to: channel, configuration: .init(), endpoint: "embedded")
        func ping(_ id: UInt64) throws {
            var bytes = channel.allocator.buffer(capacity: 32)
            try FrameEncoder.encode(V1.Frame(callId: id, kind: .ping), into: &bytes, maxFrameLength: 1 << 20)
            try channel.writeInbound(bytes)
        }
        func pongs() throws -> Int {
            channel.embeddedEventLoop.run()
            var count = 0
            while var bytes = try channel.readOutbound(as: ByteBuffer.self) {
                while let frame = try FrameDecoder.decodeFrame(from: &bytes, maxFrameLength: 1 << 20) {
                    #expect(frame.kind == .pong)
                    count += 1
                }
            }
            return count
        }

        try ping(1)
        #expect(try pongs() == 1)
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        for id in 2...1_000 { try ping(UInt64(id)) }
        #expect(try pongs() == 0)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        try ping(1_001)
        #expect(try pongs() == 1)
        _ = try? channel.finish()
    }
}
