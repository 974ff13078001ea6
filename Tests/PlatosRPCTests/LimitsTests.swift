import Foundation
import NIOConcurrencyHelpers
import PlatosProto
import PlatosRPC
import Testing

/// Abuse of a server must not disturb a well-behaved client on another connection.
@Suite(.serialized) struct LimitsTests {
    /// Runs a well-behaved client for as long as `abuse` takes and returns its error count.
    static func errorsSeenByAWellBehavedClient(port: Int, during abuse: () async throws -> Void) async throws -> (Int, Int) {
        let (client, pool) = client(port)
        let stop = NIOLockedValueBox(false)
        let counts = NIOLockedValueBox((ok: 0, errors: 0))
        let background = Task {
            while !stop.withLockedValue({ $0 }) {
                do {
                    let item = try await client.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: "good"))
                    counts.withLockedValue { item.id == "good" ? ($0.ok += 1) : ($0.errors += 1) }
                } catch {
                    counts.withLockedValue { $0.errors += 1 }
                }
            }
        }
        // The good client is demonstrably working before the abuse starts and after it ends.
        func okCalls(atLeast n: Int) async {
            let deadline = ContinuousClock.now + .seconds(10)
            while counts.withLockedValue({ $0.ok }) < n, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        await okCalls(atLeast: 5)
        try await abuse()
        await okCalls(atLeast: counts.withLockedValue { $0.ok } + 5)
        stop.withLockedValue { $0 = true }
        await background.value
        await pool.close()
        return counts.withLockedValue { ($0.ok, $0.errors) }
    }

    @Test func oversizedFrameGetsGoAwayAndCloseWhileOthersAreServed() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations())) { $0.maxFrameLength = 64 * 1024 }
        let (ok, errors) = try await Self.errorsSeenByAWellBehavedClient(port: port) {
            let socket = try RawSocket(port: port)
            socket.send([0x00, 0x10, 0x00, 0x01])  // 1 MiB + 1, and no body at all
            let (bytes, closed) = await socket.readToEOF()
            #expect(closed)
            let goaway = try #require(RawSocket.frames(bytes).first)
            #expect(goaway.kind == .goaway)
            #expect(goaway.status?.code == .resourceExhausted)
            #expect(goaway.status?.message.contains("exceeds the limit") == true)
        }
        #expect(errors == 0)
        #expect(ok >= 10)
        await server.shutdownGracefully()
    }

    @Test func zeroLengthAndGarbageFramesAreProtocolErrors() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        for bytes in [[0, 0, 0, 0], [0, 0, 0, 3, 0xFF, 0xFF, 0xFF]] as [[UInt8]] {
            let socket = try RawSocket(port: port)
            socket.send(bytes)
            let (reply, closed) = await socket.readToEOF()
            #expect(closed)
            #expect(RawSocket.frames(reply).first?.kind == .goaway)
        }
        await server.shutdownGracefully()
    }

    @Test func inFlightLimitRejectsOnlyTheExcess() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations())) { $0.maxConcurrentCallsPerConnection = 8 }
        let socket = try RawSocket(port: port)
        // 12 slow calls at once on one connection: 8 run, 4 are refused at once.
        var burst: [UInt8] = []
        for id in 1...12 {
            burst += RawSocket.encode(
                V1.Frame(callId: UInt64(id), kind: .request, method: "memory.recall",
                         payload: try V1.RecallRequest(limit: 300).serializedBytes()))
        }
        socket.send(burst)
        let frames = RawSocket.frames(await socket.read(until: { $0.count >= 12 }).bytes)
        #expect(frames.count == 12)
        let exhausted = frames.filter { $0.status?.code == .resourceExhausted }
        let ok = frames.filter { $0.status?.code == .ok }
        #expect(exhausted.count == 4)
        #expect(ok.count == 8)
        #expect(Set(exhausted.map(\.callId)) == Set(9...12))
        await server.shutdownGracefully()
    }

    @Test func halfAFrameThenSilenceIsDisconnectedAfterThePartialFrameTimeout() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations())) {
            $0.partialFrameTimeout = .milliseconds(300)
        }
        let (ok, errors) = try await Self.errorsSeenByAWellBehavedClient(port: port) {
            let socket = try RawSocket(port: port)
            let whole = RawSocket.encode(V1.Frame(callId: 1, kind: .request, method: "memory.get"))
            socket.send(Array(whole.prefix(whole.count / 2)))
            let started = ContinuousClock.now
            let (_, closed) = await socket.readToEOF()
            let waited = ContinuousClock.now - started
            #expect(closed)
            #expect(waited >= .milliseconds(250) && waited < .seconds(15), "closed after \(waited)")
        }
        #expect(errors == 0)
        #expect(ok >= 10)
        await server.shutdownGracefully()
    }

    @Test func connectionsBeyondTheLimitGetGoAway() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations())) { $0.maxConnections = 2 }
        let first = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        let second = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        // Make sure both are registered before the third arrives.
        for c in [first, second] {
            _ = try await c.unary(method: "health.check", payload: [], metadata: [:], deadline: nil)
        }
        let third = try RawSocket(port: port)
        let (bytes, closed) = await third.readToEOF()
        #expect(closed)
        #expect(RawSocket.frames(bytes).first?.status?.code == .resourceExhausted)
        await first.close()
        await second.close()
        await server.shutdownGracefully()
    }
}
