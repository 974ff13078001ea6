import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PlatosProto
@testable import PlatosRPC
import PlatosTestSupport
import Testing

@Suite struct UnaryCallTests {
    @Test func thousandConcurrentCallsOnOneConnectionEachGetTheirOwnAnswer() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let (client, pool) = client(port)
        let answers = try await withThrowingTaskGroup(of: (String, String).self) { group in
            for i in 0..<1000 {
                group.addTask {
                    let id = "call-\(i)-✓"
                    let item = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: id))
                    return (id, item.id)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.count == 1000)
        #expect(answers.allSatisfy { $0.0 == $0.1 })
        #expect(Set(answers.map(\.1)).count == 1000)
        // All of it went over one connection.
        let connection = try await pool.connection()
        #expect(connection.inFlight == 0)
        await pool.close()
        await server.shutdownGracefully()
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        await #expect(throws: RPCError(.unimplemented, "unknown method 'memory.nope'")) {
            _ = try await connection.unary(method: "memory.nope", payload: [], metadata: [:], deadline: nil)
        }
        await connection.close()
        await server.shutdownGracefully()
    }

    @Test func undecodablePayloadIsInvalidArgument() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        do {
            _ = try await connection.unary(method: "memory.get", payload: [0xFF, 0xFF, 0xFF], metadata: [:], deadline: nil)
            Issue.record("garbage was accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("platos.v1.GetMemoryRequest"))
        }
        // The connection is still fine.
        let ok = try await connection.unary(
            method: "memory.get", payload: try V1.GetMemoryRequest(memoryId: "a").serializedBytes(), metadata: [:],
            deadline: nil)
        #expect(try V1.MemoryItem(serializedBytes: ok).id == "a")
        await connection.close()
        await server.shutdownGracefully()
    }

    /// Metadata keys are case-insensitive: whatever case a peer sends, handlers read them lower-cased.
    @Test func metadataKeysReachHandlersLowerCased() async throws {
        var router = RPCRouter()
        router.register(V1.MemoryService.get) { request, context in
            V1.MemoryItem(id: "\(context.metadata["x-platos-user"] ?? "-")|\(context.metadata["x-ünï"] ?? "-")")
        }
        let (server, port) = try await startServer(router)
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        let answer = try await connection.unary(
            method: "memory.get", payload: try V1.GetMemoryRequest(memoryId: "a").serializedBytes(),
            metadata: Metadata([V1.MetadataEntry(key: "X-Platos-User", value: "u1"), V1.MetadataEntry(key: "X-ÜNÏ", value: "u2")]),
            deadline: nil)
        #expect(try V1.MemoryItem(serializedBytes: answer).id == "u1|u2")
        await connection.close()
        await server.shutdownGracefully()
    }

    @Test func healthCheckIsServedByEveryServer() async throws {
        let (server, port) = try await startServer(RPCRouter())
        let (client, pool) = client(port)
        let health = try await client.call(V1.HealthService.check, V1.HealthCheckRequest())
        #expect(health.status == .serving)
        #expect(health.server == "test")
        await pool.close()
        await server.shutdownGracefully()
    }

    @Test func handlerErrorsKeepTheirCodeAndOtherErrorsBecomeInternal() async throws {
        var router = RPCRouter()
        struct Secret: Error {}
        router.register(V1.MemoryService.get) { request, _ in
            if request.memoryId == "nf" { throw RPCError(.notFound, "memory nf not found") }
            throw Secret()
        }
        let (server, port) = try await startServer(router)
        let (client, pool) = client(port)
        await #expect(throws: RPCError(.notFound, "memory nf not found")) {
            _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "nf"))
        }
        await #expect(throws: RPCError(.internal, "internal error")) {
            _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"))
        }
        await pool.close()
        await server.shutdownGracefully()
    }
}

@Suite struct DeadlineAndCancellationTests {
    @Test func deadlineShorterThanTheWorkIsDeadlineExceededAndTheHandlerIsCancelled() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let (client, pool) = client(port)
        // Connect first: on a loaded machine the connect alone could eat a short deadline, and the
        // call would then (rightly) fail before it reached the server.
        _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "warm-up"))
        let started = ContinuousClock.now
        do {
            // 30 s of work, 500 ms of patience.
            _ = try await client.call(V1.MemoryService.recall, V1.RecallRequest(limit: 30_000), timeout: .milliseconds(500))
            Issue.record("the call outlived its deadline")
        } catch let error as RPCError {
            #expect(error.code == .deadlineExceeded)
        }
        // Answered at the deadline, not when the work would have ended (bounds generous for a
        // loaded 2-core CI machine; this checks behaviour, not speed).
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(15), "answered after \(elapsed)")
        #expect(await observations.wait(for: "recall.cancelled", within: .seconds(15)))
        #expect(observations.count("recall.finished") == 0)
        await pool.close()
        await server.shutdownGracefully()
    }

    @Test func aDownstreamCallReceivesTheReducedBudget() async throws {
        let observations = Observations()
        let downstream = NIOLockedValueBox<RPCClient?>(nil)
        let (server, port) = try await startServer(TestRouter.make(observations) { downstream.withLockedValue { $0 } })
        let (client, pool) = client(port)
        downstream.withLockedValue { $0 = client }
        let response = try await client.call(
            V1.MemoryService.recall, V1.RecallRequest(query: "downstream"), timeout: .seconds(60))
        // The downstream call had no timeout of its own: it inherited what was left of 60 s.
        let seen = try #require(Int(response.items.first?.item?.content ?? ""))
        #expect(seen > 0 && seen < 60_000, "downstream saw \(seen) ms")
        await pool.close()
        await server.shutdownGracefully()
    }

    @Test func clientCancellationStopsTheServerHandler() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let (client, pool) = client(port)
        let call = Task { try await client.call(V1.MemoryService.recall, V1.RecallRequest(limit: 30_000)) }
        #expect(await observations.wait(for: "recall.started", within: .seconds(15)))
        call.cancel()
        await #expect(throws: RPCError.self) { _ = try await call.value }
        #expect(await observations.wait(for: "recall.cancelled", within: .seconds(15)))
        #expect(observations.count("recall.finished") == 0)
        await pool.close()
        await server.shutdownGracefully()
    }

    /// A task cancelled before it calls does not send the request at all: a write the caller
    /// gave up on must not still be made while the caller is told CANCELLED.
    @Test func aCallFromACancelledTaskIsNeverSent() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let (client, pool) = client(port)
        _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "warm"))  // connected
        let cancelled = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "never"))
        }
        do {
            _ = try await cancelled.value
            Issue.record("a cancelled task's call succeeded")
        } catch let error as RPCError {
            #expect(error.code == .cancelled)
        }
        // Requests on one connection are read in order: had it been sent, this one would follow it.
        _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "after"))
        #expect(observations.count("get.started") == 2)
        await pool.close()
        await server.shutdownGracefully()
    }

    /// Cancelled while waiting to retry an UNAVAILABLE, a call still fails with an RPCError.
    @Test func cancellingARetryingCallGivesCancelled() async throws {
        // Accepts and closes every connection at once, counting them: every attempt is
        // UNAVAILABLE, and the count tells when the first one has failed.
        let accepted = NIOLockedValueBox(0)
        let closing = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.close()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let (client, pool) = client(closing.localAddress!.port!) {
            $0.maxRetries = 50
            // Long enough that the call is surely waiting for its retry when cancelled.
            $0.initialBackoff = .seconds(30)
            $0.maxBackoff = .seconds(30)
        }
        let call = Task { try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"), timeout: .seconds(120)) }
        let deadline = ContinuousClock.now + .seconds(20)
        while pool.callsWaitingToRetry == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        // The first attempt failed and the call is sleeping out its backoff: cancelled there.
        #expect(accepted.withLockedValue { $0 } == 1)
        #expect(pool.callsWaitingToRetry == 1)
        call.cancel()
        do {
            _ = try await call.value
            Issue.record("a call to nothing succeeded")
        } catch let error as RPCError {
            #expect(error.code == .cancelled, "\(error)")
        } catch {
            Issue.record("the transport threw \(type(of: error)), not RPCError")
        }
        await pool.close()
        try await closing.close()
    }
}

@Suite struct KeepaliveTests {
    @Test func pingIsAnsweredWithPong() async throws {
        let (server, port) = try await startServer(RPCRouter())
        let socket = try RawSocket(port: port)
        socket.send(RawSocket.encode(V1.Frame(callId: 0, kind: .ping)))
        let frames = RawSocket.frames(await socket.read(until: { !$0.isEmpty }).bytes)
        #expect(frames.first?.kind == .pong)
        await server.shutdownGracefully()
    }

    @Test func anIdleConnectionIsClosedAfterTheIdleTimeout() async throws {
        let (server, port) = try await startServer(RPCRouter()) { $0.idleTimeout = .milliseconds(200) }
        let socket = try RawSocket(port: port)
        let started = ContinuousClock.now
        let (bytes, closed) = await socket.readToEOF()
        #expect(closed)
        #expect(RawSocket.frames(bytes).first?.kind == .goaway)
        #expect(ContinuousClock.now - started >= .milliseconds(150))
        await server.shutdownGracefully()
    }
}
