import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PlatosProto
import PlatosWire
import Testing

@testable import PlatosRPC

/// A call refused before anything of it ran (`RPCError.notStarted`, what a draining server
/// answers) is sent again by the pool even when its method is not idempotent; any other
/// UNAVAILABLE of such a method is not, because its work may have been done.
@Suite struct NotStartedRetryTests {
    /// Answers the first `refusals` requests it reads with `refusal`, later ones with an empty OK.
    private final class Scripted: ChannelInboundHandler, Sendable {
        typealias InboundIn = V1.Frame
        let requests: NIOLockedValueBox<Int>
        let refusals: Int
        let refusal: RPCError

        init(requests: NIOLockedValueBox<Int>, refusals: Int, refusal: RPCError) {
            self.requests = requests
            self.refusals = refusals
            self.refusal = refusal
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            guard frame.kind == .request else { return }
            let seen = requests.withLockedValue { $0 += 1; return $0 }
            let status = seen <= refusals ? refusal : RPCError(.ok, "")
            context.writeAndFlush(NIOAny(FrameBytes.status(.response, callId: frame.callId, status)), promise: nil)
        }
    }

    private static func serve(refusals: Int, refusal: RPCError, requests: NIOLockedValueBox<Int>) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try sync.addHandler(Scripted(requests: requests, refusals: refusals, refusal: refusal))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    private static func write(port: Int) async throws -> (V1.WriteMemoryResponse, RPCConnectionPool) {
        let pool = RPCConnectionPool(host: "127.0.0.1", port: port)
        let client = RPCClient(transport: pool)
        #expect(!V1.MemoryService.write.descriptor.idempotent)
        do {
            return (try await client.call(V1.MemoryService.write, V1.WriteMemoryRequest(content: "x"), timeout: .seconds(20)), pool)
        } catch {
            await pool.close()
            throw error
        }
    }

    @Test func aWriteRefusedBeforeItStartedIsSentAgain() async throws {
        let requests = NIOLockedValueBox(0)
        let server = try await Self.serve(
            refusals: 1, refusal: .notStarted("server is shutting down; retry on another connection"), requests: requests)
        let (_, pool) = try await Self.write(port: server.localAddress!.port!)
        #expect(requests.withLockedValue { $0 } == 2)
        await pool.close()
        try await server.close()
    }

    @Test func aWriteThatFailedWithAnyOtherUnavailableIsNotSentAgain() async throws {
        let requests = NIOLockedValueBox(0)
        let server = try await Self.serve(
            refusals: 1, refusal: RPCError(.unavailable, "the backend went away mid-call"), requests: requests)
        await #expect {
            _ = try await Self.write(port: server.localAddress!.port!)
        } throws: { error in
            (error as? RPCError)?.code == .unavailable && (error as? RPCError)?.wasNotStarted == false
        }
        #expect(requests.withLockedValue { $0 } == 1)
        try await server.close()
    }

    /// The retries stay bounded: a server that refuses every time is asked `maxRetries + 1` times.
    @Test func refusalsAreRetriedABoundedNumberOfTimes() async throws {
        let requests = NIOLockedValueBox(0)
        let server = try await Self.serve(refusals: .max, refusal: .notStarted("draining"), requests: requests)
        await #expect {
            _ = try await Self.write(port: server.localAddress!.port!)
        } throws: { error in
            (error as? RPCError)?.wasNotStarted == true
        }
        #expect(requests.withLockedValue { $0 } == RPCClientConfiguration().maxRetries + 1)
        try await server.close()
    }

    /// A handler that passes on a downstream call's not-started refusal did start (and may have
    /// written something first): its caller gets a plain UNAVAILABLE, and a write is not sent twice.
    @Test func aHandlerPassingOnANotStartedRefusalIsNotRetried() async throws {
        let runs = NIOLockedValueBox(0)
        var router = RPCRouter()
        router.register(V1.MemoryService.write) { _, _ -> V1.WriteMemoryResponse in
            runs.withLockedValue { $0 += 1 }
            throw RPCError.notStarted("a backend behind this one was draining")
        }
        let (server, port) = try await startServer(router)
        await #expect {
            _ = try await Self.write(port: port)
        } throws: { error in
            (error as? RPCError)?.code == .unavailable && (error as? RPCError)?.wasNotStarted == false
        }
        #expect(runs.withLockedValue { $0 } == 1)
        await server.shutdownGracefully()
    }
}
