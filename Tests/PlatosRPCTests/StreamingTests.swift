import PlatosProto
import PlatosRPC
import PlatosTestSupport
import Testing

@Suite struct StreamingTests {
    @Test func tenThousandMessagesArriveInOrder() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let (client, pool) = client(port)
        var expected: UInt64 = 1
        for try await event in client.stream(V1.RegistryService.watch, V1.WatchRegistryRequest(afterVersion: 10_000)) {
            #expect(event.version == expected)
            expected += 1
        }
        #expect(expected == 10_001)
        await pool.close()
        await server.shutdownGracefully()
    }

    /// Opens a watch of 100 events with `configuration`, reads nothing until the server has ended
    /// the call, then reads everything the client held: the events (and their bytes) and how the
    /// stream ended.
    static func readOnlyAfterTheCallEnded(_ configuration: RPCClientConfiguration) async throws
        -> (versions: [UInt64], bytes: Int, ended: RPCError?)
    {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port, configuration: configuration)
        let stream = connection.serverStreaming(
            method: V1.RegistryService.watch.descriptor.name,
            payload: try V1.WatchRegistryRequest(afterVersion: 100).serializedBytes(), metadata: [:], deadline: nil)
        let deadline = ContinuousClock.now + .seconds(10)
        while connection.inFlight > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        var versions: [UInt64] = []
        var bytes = 0
        var ended: RPCError?
        do {
            for try await message in stream {
                bytes += message.count
                versions.append(try V1.MembershipEvent(serializedBytes: message).version)
            }
        } catch let error as RPCError {
            ended = error
        }
        await connection.close()
        await server.shutdownGracefully()
        return (versions, bytes, ended)
    }

    /// A reader that falls too far behind gets the messages the client holds for it, in order and
    /// without a gap, then RESOURCE_EXHAUSTED: the client does not buffer without limit.
    @Test func aReaderThatFallsTooFarBehindGetsWhatWasHeldThenResourceExhausted() async throws {
        var configuration = RPCClientConfiguration()
        configuration.maxBufferedStreamMessages = 16
        // 100 messages arrive for a buffer of 16.
        let (versions, _, ended) = try await Self.readOnlyAfterTheCallEnded(configuration)
        #expect(versions == Array(1...16))
        #expect(ended?.code == .resourceExhausted)
    }

    /// The same bound in bytes: messages of up to 64 KiB each would make a count of 16,384 a
    /// gigabyte per stream. The reader gets a gap-free run of what fit, then RESOURCE_EXHAUSTED.
    @Test func aReaderThatFallsTooManyBytesBehindGetsWhatWasHeldThenResourceExhausted() async throws {
        var configuration = RPCClientConfiguration()
        // Each event here is 2 bytes: 100 of them are twice the limit.
        configuration.maxBufferedStreamBytes = 100
        let (versions, bytes, ended) = try await Self.readOnlyAfterTheCallEnded(configuration)
        #expect(!versions.isEmpty)
        #expect(versions == Array(1...UInt64(max(versions.count, 1))))
        #expect(bytes <= 100)
        #expect(versions.count < 100)
        #expect(ended?.code == .resourceExhausted)
        #expect(ended?.message.contains("100 bytes") == true)
    }

    /// A stream past its deadline ends as every stream ends, with STREAM_END (DEADLINE_EXCEEDED),
    /// not with the RESPONSE frame of a unary call.
    @Test func aStreamPastItsDeadlineEndsWithStreamEnd() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let socket = try RawSocket(port: port)
        // tasks.watch streams until cancelled: only the deadline ends it.
        socket.send(RawSocket.encode(V1.Frame(
            callId: 1, kind: .request, method: "tasks.watch", timeoutMs: 200,
            payload: try V1.WatchTasksRequest().serializedBytes())))
        let frames = RawSocket.frames(await socket.read(until: { $0.contains { $0.kind != .streamMessage } }).bytes)
        let end = try #require(frames.first { $0.kind != .streamMessage })
        #expect(end.kind == .streamEnd)
        #expect(end.status?.code == .deadlineExceeded)
        #expect(frames.contains { $0.kind == .streamMessage })
        await server.shutdownGracefully()
    }

    @Test func cancellingMidStreamStopsTheServerLoop() async throws {
        let observations = Observations()
        let (server, port) = try await startServer(TestRouter.make(observations))
        let (client, pool) = client(port)
        let consumer = Task {
            var seen = 0
            for try await _ in client.stream(V1.TasksService.watch, V1.WatchTasksRequest()) {
                seen += 1
                if seen == 20 { break }
            }
            return seen
        }
        #expect(try await consumer.value == 20)
        #expect(await observations.wait(for: "tasks.watch.stopped"))
        let sentBeforeStopping = Int(observations.values("tasks.watch.stopped").first ?? "") ?? .max
        // It stopped, having sent a little more than the 20 read (what was in flight), not on and
        // on until its stream was dropped.
        #expect(sentBeforeStopping < 1000)
        await pool.close()
        await server.shutdownGracefully()
    }

    @Test func aThrowingHandlerEndsTheStreamWithItsStatus() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let (client, pool) = client(port)
        var received = 0
        do {
            for try await _ in client.stream(V1.RegistryService.watch, V1.WatchRegistryRequest(afterVersion: 999)) {
                received += 1
            }
            Issue.record("the stream ended OK")
        } catch let error as RPCError {
            #expect(error == RPCError(.failedPrecondition, "the watch broke on purpose"))
        }
        #expect(received == 10)
        await pool.close()
        await server.shutdownGracefully()
    }

    /// A server refuses a call it cannot start (here: a method it does not serve) with a RESPONSE
    /// frame, before it knows the call is a stream; the stream must end with that status, not wait.
    @Test(.timeLimit(.minutes(1))) func aStreamRefusedBeforeItStartsEndsWithTheRefusal() async throws {
        let (server, port) = try await startServer(TestRouter.make(Observations()))
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        await #expect(throws: RPCError(.unimplemented, "unknown method 'registry.nope'")) {
            for try await _ in connection.serverStreaming(
                method: "registry.nope", payload: [], metadata: [:], deadline: .now + .seconds(30))
            {}
        }
        #expect(connection.inFlight == 0)
        await connection.close()
        await server.shutdownGracefully()
    }
}
