import Foundation
import NIOConcurrencyHelpers
import PlatosProto
@testable import PlatosRPC
import PlatosTestSupport
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

    /// A cancelled call whose handler is still running keeps its slot until the handler returns:
    /// otherwise a client could start and cancel calls forever and keep any number of handlers
    /// busy. Its id stays taken as long.
    @Test func cancelledCallsCountAgainstTheLimitUntilTheirHandlersReturn() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations)) { $0.maxConcurrentCallsPerConnection = 4 }
        let socket = try RawSocket(port: port)
        var burst: [UInt8] = []
        for id in 1...4 {
            burst += RawSocket.encode(V1.Frame(
                callId: UInt64(id), kind: .request, method: "threads.get",
                payload: try V1.GetThreadRequest(threadId: "1500").serializedBytes()))
            burst += RawSocket.encode(V1.Frame(callId: UInt64(id), kind: .cancel))
        }
        // Then a fifth call, while the four handlers still run.
        burst += RawSocket.encode(V1.Frame(callId: 5, kind: .request, method: "health.check"))
        socket.send(burst)
        var replies = RawSocket.frames(await socket.read(until: { $0.count >= 1 }).bytes)
        #expect(replies.map(\.callId) == [5])
        #expect(replies.first?.status?.code == .resourceExhausted)

        // Once the handlers have returned, the slots are free again.
        #expect(await observations.wait(for: "threads.get.finished", count: 4))
        let deadline = ContinuousClock.now + .seconds(10)
        var id: UInt64 = 6
        var answer: V1.Frame?
        repeat {
            socket.send(RawSocket.encode(V1.Frame(callId: id, kind: .request, method: "health.check")))
            replies = RawSocket.frames(await socket.read(until: { $0.count >= 1 }).bytes)
            answer = replies.first
            id += 1
        } while answer?.status?.code == .resourceExhausted && ContinuousClock.now < deadline
        #expect(answer?.status?.code == .ok)
        await server.shutdownGracefully()
    }

    @Test func metadataOverItsLimitsIsRefusedAndTheConnectionServesOn() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let socket = try RawSocket(port: port)
        func call(_ id: UInt64, _ metadata: [V1.MetadataEntry]) async -> V1.Frame? {
            socket.send(RawSocket.encode(V1.Frame(callId: id, kind: .request, method: "health.check", metadata: metadata)))
            return RawSocket.frames(await socket.read(until: { $0.count >= 1 }).bytes).first
        }
        let entries = (0..<65).map { V1.MetadataEntry(key: "k\($0)", value: "v") }
        let tooMany = await call(1, entries)
        #expect(tooMany?.status?.code == .invalidArgument)
        #expect(tooMany?.status?.message.contains("65 entries") == true)
        let tooBig = await call(2, [V1.MetadataEntry(key: "big", value: String(repeating: "x", count: 17 * 1024))])
        #expect(tooBig?.status?.code == .invalidArgument)
        #expect(tooBig?.status?.message.contains("the limit is 16384") == true)
        #expect(await call(3, Array(entries.prefix(64)))?.status?.code == .ok)
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

    /// The partial-frame clock is per frame: a connection whose reads keep ending mid-frame, each
    /// frame completing well within the timeout, stays open for many timeouts' worth of time.
    @Test func framesThatKeepArrivingInPiecesAreNotMistakenForAStall() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations())) {
            $0.partialFrameTimeout = .seconds(1)
        }
        let socket = try RawSocket(port: port)
        let frames = (1...24).map { id in
            RawSocket.encode(V1.Frame(
                callId: UInt64(id), kind: .request, method: "memory.get",
                payload: try! V1.GetMemoryRequest(memoryId: "m\(id)").serializedBytes()))
        }
        // Each send ends half-way through a frame and completes the previous one, so the
        // server's buffer is never empty between sends: 24 × 100 ms is more than two timeouts,
        // and a send may come late by most of a timeout without breaking the test.
        socket.send(Array(frames[0].prefix(frames[0].count / 2)))
        for id in 1..<frames.count {
            try await Task.sleep(for: .milliseconds(100))
            socket.send(Array(frames[id - 1].dropFirst(frames[id - 1].count / 2)) + Array(frames[id].prefix(frames[id].count / 2)))
        }
        try await Task.sleep(for: .milliseconds(100))
        socket.send(Array(frames[23].dropFirst(frames[23].count / 2)))
        let replies = RawSocket.frames(await socket.read(until: { $0.count >= 24 }).bytes)
        #expect(replies.count == 24)
        #expect(replies.allSatisfy { $0.kind == .response && $0.status?.code == .ok })
        #expect(Set(replies.map(\.callId)) == Set(1...24))
        await server.shutdownGracefully()
    }

    /// A peer that pipelines requests with large answers and never reads them: the server stops
    /// reading once it cannot write (so the excess requests wait in the peer's socket instead of
    /// piling answers up in the server's memory), and the stalled connection is still let go.
    @Test func aPeerThatNeverReadsIsThrottledAndStillDisconnected() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations)) {
            $0.writeStallTimeout = .milliseconds(500)
            // Neither of the other timeouts may be what closes it: its calls are in flight (so it
            // is never idle), and the frame it may have left half-sent would only be cut late.
            $0.idleTimeout = .seconds(60)
            $0.partialFrameTimeout = .seconds(60)
        }
        let socket = try RawSocket(port: port, receiveBuffer: 4096, sendBuffer: 8192)
        // memory.get answers with the id it was asked for: 256 KiB in, 256 KiB back.
        let payload = try V1.GetMemoryRequest(memoryId: String(repeating: "x", count: 256 << 10)).serializedBytes()
        let requests = 200
        let sent = await socket.sendUntilBlocked(count: requests) { i in
            RawSocket.encode(V1.Frame(callId: UInt64(i + 1), kind: .request, method: "memory.get", payload: payload))
        }
        // Without back-pressure the server reads and answers all 200 (50 MiB of answers).
        let handled = observations.count("get.started")
        #expect(handled < requests / 2, "the server kept reading: \(handled) requests read, \(sent) bytes sent")
        // Nothing is read here: answers cannot be sent, so the calls never end, and the
        // connection must be closed all the same, by the write-stall timeout.
        #expect(await server.connectionHandlersFreed(within: .seconds(10)), "the server still holds the connection")
        withExtendedLifetime(socket) {}
        await server.shutdownGracefully()
    }

    /// protobuf-c strings are C strings: a status whose message or details hold a NUL must still
    /// go out, with its code, rather than stop the process.
    @Test func aStatusWithNULsStillEncodes() throws {
        let error = RPCError(.invalidArgument, "bad\u{0}name", details: ["key\u{0}": "value\u{0}"])
        let frame = try #require(RawSocket.frames(Array(FrameBytes.status(.response, callId: 7, error).readableBytesView)).first)
        #expect(frame.callId == 7)
        #expect(frame.status?.code == .invalidArgument)
        #expect(frame.status?.message == "bad name")
    }

    /// A caller's timeout of centuries is as good as forever; it must not trap in the conversion.
    @Test func durationsBeyondInt64NanosecondsSaturate() {
        #expect(Duration.seconds(Int64.max).nanoseconds == .max)
        #expect(Duration.seconds(Int64.min).nanoseconds == .min)
        #expect(Duration.milliseconds(1500).nanoseconds == 1_500_000_000)
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
