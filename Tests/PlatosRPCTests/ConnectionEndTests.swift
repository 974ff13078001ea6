import Foundation
import PlatosProto
import PlatosTestSupport
import Testing

@testable import PlatosRPC

/// How the server ends calls and connections: at a shutdown, at the end of its grace period,
/// for a peer that vanished, and after a protocol error.
@Suite struct ConnectionEndTests {
    private static func request(_ id: UInt64, _ method: String, _ payload: [UInt8] = []) -> [UInt8] {
        RawSocket.encode(V1.Frame(callId: id, kind: .request, method: method, payload: payload))
    }

    /// A request in the same read as a frame that ends the connection starts nothing: nothing
    /// would ever cancel it, and its handler would hold the closed connection for good.
    @Test func aRequestAfterAProtocolErrorInTheSameReadStartsNothing() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let socket = try RawSocket(port: port)
        socket.send(
            RawSocket.encode(V1.Frame(callId: 1, kind: .response))
                + Self.request(2, "memory.recall", try V1.RecallRequest(limit: 10_000).serializedBytes()))
        let (bytes, closed) = await socket.readToEOF()
        #expect(closed)
        #expect(RawSocket.frames(bytes).map(\.kind) == [.goaway])
        #expect(observations.count("recall.started") == 0)
        #expect(await server.connectionHandlersFreed(within: .seconds(5)))
        await server.shutdownGracefully()
    }

    @Test func callIdZeroIsAProtocolError() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let socket = try RawSocket(port: port)
        socket.send(Self.request(0, "health.check"))
        let (bytes, closed) = await socket.readToEOF()
        #expect(closed)
        let frames = RawSocket.frames(bytes)
        #expect(frames.map(\.kind) == [.goaway])
        #expect(frames.first?.status?.code == .invalidArgument)
        await server.shutdownGracefully()
    }

    /// The last answer of a drained connection is written whole before the close, even when
    /// the peer takes it slowly: a close drops the writes still pending.
    @Test func aDrainedConnectionClosesOnlyAfterItsLastAnswerIsWritten() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let socket = try RawSocket(port: port, receiveBuffer: 65536)
        // Four answers of 3 MiB: more than the kernel's socket buffers take at once.
        socket.send((1...4).flatMap { Self.request($0, "memory.list") })
        #expect(await observations.wait(for: "list.started", count: 4))
        let shutdown = Task { await server.shutdownGracefully() }
        let (bytes, closed) = await socket.readToEOF()
        #expect(closed)
        let answers = RawSocket.frames(bytes).filter { $0.kind == .response }
        #expect(Set(answers.map(\.callId)) == [1, 2, 3, 4])
        for answer in answers {
            #expect(answer.status?.code == .ok)
            let list = try V1.ListMemoriesResponse(serializedBytes: answer.payload)
            #expect(list.items.first?.content.utf8.count == 3 << 20)
        }
        await shutdown.value
    }

    /// Watches never end by themselves: a shutdown ends them with UNAVAILABLE (the client
    /// reopens elsewhere) instead of waiting out its grace period for them.
    @Test func aShutdownEndsStreamsWithUnavailableAndDoesNotWaitForThem() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations)) {
            $0.shutdownGracePeriod = .seconds(60)
        }
        let (client, pool) = client(port)
        let stream = client.stream(V1.TasksService.watch, V1.WatchTasksRequest())
        var iterator = stream.makeAsyncIterator()
        #expect(try await iterator.next() != nil)
        let started = ContinuousClock.now
        await server.shutdownGracefully()
        // Far below the 60 s grace period: only a shutdown that waited for the stream reaches it.
        #expect(ContinuousClock.now - started < .seconds(20))
        let ended = await #expect(throws: RPCError.self) {
            while try await iterator.next() != nil {}
        }
        #expect(ended?.code == .unavailable)
        #expect(await observations.wait(for: "tasks.watch.stopped"))
        await pool.close()
    }

    /// At the end of the grace period a call still running is answered UNAVAILABLE, not left
    /// to find its connection gone.
    @Test func aCallOutlivingTheGracePeriodIsAnsweredUnavailable() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations)) {
            $0.shutdownGracePeriod = .milliseconds(200)
        }
        let socket = try RawSocket(port: port)
        socket.send(Self.request(1, "memory.recall", try V1.RecallRequest(limit: 10_000).serializedBytes()))
        #expect(await observations.wait(for: "recall.started"))
        await server.shutdownGracefully()
        let (bytes, closed) = await socket.readToEOF()
        #expect(closed)
        let answer = try #require(RawSocket.frames(bytes).first { $0.callId == 1 })
        #expect(answer.kind == .response)
        #expect(answer.status?.code == .unavailable)
        #expect(answer.status?.message.contains("shut down") == true)
        #expect(await observations.wait(for: "recall.cancelled"))
    }

    /// While draining, health.check still answers, and says NOT_SERVING: that is how a balancer
    /// learns to stop sending here. Every other new call is refused.
    @Test func aDrainingServerAnswersHealthCheckNotServing() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let socket = try RawSocket(port: port)
        // Long enough that the connection is still draining, whatever the machine's load.
        socket.send(Self.request(1, "memory.recall", try V1.RecallRequest(limit: 5_000).serializedBytes()))
        #expect(await observations.wait(for: "recall.started"))
        let shutdown = Task { await server.shutdownGracefully() }
        _ = await socket.read(until: { $0.contains { $0.kind == .goaway } })
        socket.send(Self.request(2, "health.check") + Self.request(3, "memory.get"))
        let frames = RawSocket.frames(
            await socket.read(until: { frames in [2, 3].allSatisfy { id in frames.contains { $0.callId == id } } }).bytes)
        let health = try #require(frames.first { $0.callId == 2 })
        #expect(health.status?.code == .ok)
        #expect(try V1.HealthCheckResponse(serializedBytes: health.payload).status == .notServing)
        #expect(frames.first { $0.callId == 3 }?.status?.code == .unavailable)
        await shutdown.value
    }

    /// A stream refused before it starts ends the way streams end, with STREAM_END.
    @Test func aRefusedStreamEndsWithStreamEnd() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let socket = try RawSocket(port: port)
        let metadata = (0..<65).map { V1.MetadataEntry(key: "k\($0)", value: "v") }
        socket.send(RawSocket.encode(V1.Frame(callId: 1, kind: .request, method: "tasks.watch", metadata: metadata)))
        let frames = RawSocket.frames(await socket.read(until: { $0.count >= 1 }).bytes)
        #expect(frames.first?.kind == .streamEnd)
        #expect(frames.first?.status?.code == .invalidArgument)
        await server.shutdownGracefully()
    }

    /// A peer that vanishes without a FIN (its host lost power) while a call is in flight: the
    /// server asks for a PONG after an idle period, and closes after another without one.
    @Test func aPeerThatAnswersNoPingWhileACallIsInFlightIsDisconnected() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations)) {
            $0.idleTimeout = .milliseconds(200)
        }
        let socket = try RawSocket(port: port)
        socket.send(Self.request(1, "memory.recall", try V1.RecallRequest(limit: 10_000).serializedBytes()))
        let (bytes, closed) = await socket.readToEOF()
        #expect(closed)
        #expect(RawSocket.frames(bytes).map(\.kind) == [.ping])
        #expect(await observations.wait(for: "recall.cancelled"))
        await server.shutdownGracefully()
    }

    /// The client answers those PINGs, so a call longer than several idle periods completes, on
    /// the connection it started on (a retry on a new one would hide a wrong disconnect).
    @Test func aLiveClientKeepsALongCallAliveThroughIdlePeriods() async throws {
        // An idle period of a second: each PONG has that long to arrive, on a machine whose two
        // cores may be busy with other tests.
        let (server, port) = try await startServer(TestRouter.make(Observations())) {
            $0.idleTimeout = .seconds(1)
        }
        let (client, pool) = client(port)
        let connection = try await pool.connection()
        _ = try await client.call(V1.MemoryService.recall, V1.RecallRequest(limit: 3_500))
        #expect(connection.isUsable)
        #expect(try await pool.connection() === connection)
        await pool.close()
        await server.shutdownGracefully()
    }

    /// Peers that stopped reading do not make a shutdown wait a moment more per connection: every
    /// connection's grace period ends at the same time.
    @Test func connectionsStuckOnUnreadAnswersEndTogetherAtTheGracePeriod() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations)) {
            $0.shutdownGracePeriod = .milliseconds(300)
        }
        let sockets = try (1...5).map { _ in try RawSocket(port: port, receiveBuffer: 4096) }
        for socket in sockets { socket.send(Self.request(1, "memory.list")) }
        // The answers are being written (and stuck) before the shutdown starts.
        #expect(await observations.wait(for: "list.finished", count: 5))
        let started = ContinuousClock.now
        await server.shutdownGracefully()
        // 0.3 s of grace and at most 1 s to give up on the unread writes; one after another
        // the five would take over 5 s.
        #expect(ContinuousClock.now - started < .seconds(4))
        withExtendedLifetime(sockets) {}
    }
}
