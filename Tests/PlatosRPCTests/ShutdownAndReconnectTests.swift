import Foundation
import Logging
import NIOCore
import NIOPosix
import PlatosProto
import PlatosRPC
import PlatosTestSupport
import ServiceLifecycle
import Synchronization
import Testing

@Suite(.serialized) struct ShutdownAndReconnectTests {
    @Test func gracefulShutdownFinishesCallsInFlightAndRefusesNewOnes() async throws {
        let observations = Observations()
        let server = RPCServer(configuration: RPCServerConfiguration(serverName: "test"), router: TestRouter.make(observations))
        let port = try await server.start().port!
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        let running = Task { try await group.run() }

        let (client, pool) = client(port)
        let calls = (0..<100).map { _ in
            Task { try await client.call(V1.MemoryService.recall, V1.RecallRequest(limit: 500)) }
        }
        // A second connection, idle, that will try a new call after the GOAWAY.
        let late = try RawSocket(port: port)
        #expect(await observations.wait(for: "recall.started", count: 100))
        await group.triggerGracefulShutdown()

        // The idle connection is told to go away.
        let buffer = await late.read(until: { $0.contains { $0.kind == .goaway } }).bytes
        let goaway = try #require(RawSocket.frames(buffer).first { $0.kind == .goaway })
        #expect(goaway.status?.code == .unavailable)

        // Every call that was in flight finishes OK.
        var ok = 0
        for call in calls {
            if (try? await call.value) != nil { ok += 1 }
        }
        #expect(ok == 100)
        #expect(observations.count("recall.finished") == 100)

        // A fresh call is refused with UNAVAILABLE (GOAWAY seen, or nothing listening any more).
        do {
            _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "late"))
            Issue.record("a call was served after shutdown")
        } catch let error as RPCError {
            #expect(error.code == .unavailable)
        }
        // The service group finished cleanly: the process would exit 0.
        try await running.value
        await pool.close()
    }

    @Test func aDrainingConnectionRefusesNewCallsWithUnavailable() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let socket = try RawSocket(port: port)
        socket.send(RawSocket.encode(V1.Frame(
            callId: 1, kind: .request, method: "memory.recall", payload: try V1.RecallRequest(limit: 400).serializedBytes())))
        #expect(await observations.wait(for: "recall.started"))
        let shutdown = Task { await server.shutdownGracefully() }
        // Wait for the GOAWAY, then send a new call on the same connection.
        let buffer = await socket.read(until: { $0.contains { $0.kind == .goaway } }).bytes
        socket.send(RawSocket.encode(V1.Frame(callId: 2, kind: .request, method: "memory.get")))
        let (rest, closed) = await socket.readToEOF()
        let frames = RawSocket.frames(buffer + rest)
        #expect(frames.first { $0.callId == 2 }?.status?.code == .unavailable)
        // Marked as never started: a client may send it again, idempotent or not.
        #expect(frames.first { $0.callId == 2 }.flatMap { $0.status.map(RPCError.init(status:)) }?.wasNotStarted == true)
        #expect(frames.first { $0.callId == 1 }?.status?.code == .ok)
        #expect(closed)
        await shutdown.value
    }

    @Test func aServerKilledMidCallGivesUnavailablePromptlyAndTheClientReconnects() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let (client, pool) = client(port) { $0.initialBackoff = .milliseconds(20); $0.maxBackoff = .milliseconds(100) }
        let call = Task { try await client.call(V1.MemoryService.recall, V1.RecallRequest(limit: 10_000)) }
        #expect(await observations.wait(for: "recall.started"))
        let killed = ContinuousClock.now
        await server.closeImmediately()
        do {
            _ = try await call.value
            Issue.record("the call succeeded on a dead server")
        } catch let error as RPCError {
            #expect(error.code == .unavailable)
        }
        #expect(ContinuousClock.now - killed < .seconds(10))

        // The server comes back on the same port; the same client finds it again by itself.
        let revived = RPCServer(
            configuration: RPCServerConfiguration(port: port, serverName: "test"), router: TestRouter.make(observations))
        try await revived.start()
        let deadline = ContinuousClock.now + .seconds(5)
        var answer: V1.MemoryItem?
        while answer == nil, ContinuousClock.now < deadline {
            answer = try? await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "back"))
            if answer == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(answer?.id == "back")
        await pool.close()
        await revived.shutdownGracefully()
    }

    @Test func aDownEndpointFailsFastWithUnavailable() async throws {
        // Nothing listens on this port: bind one, then close it.
        let (server, port) = try await startServer(RPCRouter())
        await server.closeImmediately()
        let (client, pool) = client(port)
        for _ in 0..<3 {
            let started = ContinuousClock.now
            do {
                _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(), timeout: .seconds(60))
                Issue.record("a call to nothing succeeded")
            } catch let error as RPCError {
                #expect(error.code == .unavailable)
                #expect(error.message.contains("127.0.0.1:\(port)"))
            }
            #expect(ContinuousClock.now - started < .seconds(20))
        }
        await pool.close()
    }

    /// A server at its connection limit accepts, answers GOAWAY and closes, possibly before the
    /// client has set the connection up: the call fails with UNAVAILABLE at once, rather than
    /// wait out its deadline on a connection that looks usable but is gone.
    @Test func aConnectionClosedAsItOpensFailsItsCallAtOnce() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations())) { $0.maxConnections = 1 }
        let holder = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        _ = try await holder.unary(method: "health.check", payload: [], metadata: [:], deadline: nil)
        var configuration = RPCClientConfiguration()
        configuration.maxRetries = 0
        let pool = RPCConnectionPool(host: "127.0.0.1", port: port, configuration: configuration)
        let client = RPCClient(transport: pool)
        for _ in 0..<5 {
            let started = ContinuousClock.now
            do {
                _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"), timeout: .seconds(20))
                Issue.record("a call past the connection limit succeeded")
            } catch let error as RPCError {
                #expect(error.code == .unavailable || error.code == .resourceExhausted, "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(10), "the call waited for its deadline")
        }
        await pool.close()
        await holder.close()
        await server.shutdownGracefully()
    }

    /// A server that accepts and at once closes (at its connection limit, or draining) is backed
    /// off from like one that refuses the connect: calls fail fast, and the pool does not open a
    /// new connection for each of them.
    @Test func aServerThatClosesEveryConnectionAtOnceIsBackedOffFrom() async throws {
        let accepted = Atomic<Int>(0)
        let closing = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                accepted.add(1, ordering: .relaxed)
                return channel.close()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        var configuration = RPCClientConfiguration()
        configuration.maxRetries = 0
        configuration.connections = 1
        let pool = RPCConnectionPool(host: "127.0.0.1", port: closing.localAddress!.port!, configuration: configuration)
        let client = RPCClient(transport: pool)
        let started = ContinuousClock.now
        for _ in 0..<20 {
            await #expect(throws: RPCError.self) {
                _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "x"), timeout: .seconds(5))
            }
        }
        let elapsed = ContinuousClock.now - started
        // Without backoff that is one connection per call. With it, one per backoff step: the
        // steps double from 50 ms, so however slow the machine, far fewer than 20.
        let steps = Int(elapsed / .milliseconds(50)) + 1
        #expect(accepted.load(ordering: .relaxed) <= min(10, 2 + steps), "\(accepted.load(ordering: .relaxed)) connections in \(elapsed)")
        await pool.close()
        try await closing.close()
    }

    /// A connect that hangs (the listener's backlog is full, so its SYNs are dropped) does not
    /// hold a call past the call's own deadline.
    @Test func aCallWaitingForAHangingConnectEndsAtItsDeadline() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        _ = listen(listener, 0)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        // Never accepted: a backlog of 0 holds one connection, and this is it.
        let filler = try RawSocket(port: port)
        var configuration = RPCClientConfiguration()
        configuration.connectTimeout = .seconds(30)
        let pool = RPCConnectionPool(host: "127.0.0.1", port: port, configuration: configuration)
        let client = RPCClient(transport: pool)
        // DEADLINE_EXCEEDED: a call that waited for the connect would have failed UNAVAILABLE when
        // its 30 s timeout ran out.
        await #expect {
            _ = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(), timeout: .milliseconds(300))
        } throws: { error in
            (error as? RPCError)?.code == .deadlineExceeded
        }
        withExtendedLifetime(filler) {}
        await pool.close()
    }
}

@Suite struct InProcessTransportTests {
    @Test func callsHandlersDirectlyWithDeadlinesAndStreams() async throws {
        let observations = Observations()
        let client = RPCClient(transport: InProcessTransport(router: TestRouter.make(observations)))
        #expect(try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "a")).id == "a")
        await #expect(throws: RPCError.self) {
            _ = try await client.call(V1.MemoryService.recall, V1.RecallRequest(limit: 30_000), timeout: .milliseconds(50))
        }
        #expect(await observations.wait(for: "recall.cancelled"))
        var versions: [UInt64] = []
        for try await event in client.stream(V1.RegistryService.watch, V1.WatchRegistryRequest(afterVersion: 5)) {
            versions.append(event.version)
        }
        #expect(versions == [1, 2, 3, 4, 5])
        await #expect(throws: RPCError(.unimplemented, "unknown method 'health.check'")) {
            _ = try await client.call(V1.HealthService.check, V1.HealthCheckRequest())
        }
    }
}
