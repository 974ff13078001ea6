// `make bench-rpc`: unary ping with a 64-byte payload over loopback, server and client in
// separate processes (scripts/bench-rpc.sh starts them).
//
//   platos-bench-rpc server [--port N] [--max-seconds S]        Platos RPC server, `threads.get` answers
//                                                               a Thread whose id is the request's 64-byte id
//   platos-bench-rpc echo-server [--port N] [--max-seconds S]   bare SwiftNIO length-prefixed echo
//   platos-bench-rpc client --target platos|echo --port N --mode seq|inflight64 [--seconds S] [--warmup W]
//
// Servers bind 127.0.0.1 (port 0 = any free port) and print `listening port=N` once they accept;
// they exit by themselves after --max-seconds (default 900) so that nothing outlives a broken run.
// The client prints one human line and one `BENCH ...` line (see LoadRunner.swift).
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import PlatosProto
import PlatosRPC

// MARK: Platos RPC

/// The handler: any unary method serves, since the router registers by descriptor. `threads.get`
/// carries one string each way, which holds the 64-byte payload.
func platosServer(port: Int, maxSeconds: Double) async throws {
    var router = RPCRouter()
    router.register(V1.ThreadsService.get) { request, _ in V1.Thread(id: request.threadId) }
    var configuration = RPCServerConfiguration(host: "127.0.0.1", port: port, serverName: "platos-bench-rpc")
    configuration.maxConcurrentCallsPerConnection = 1024
    let server = RPCServer(configuration: configuration, router: router)
    let address = try await server.start()
    print("listening port=\(address.port!)")
    fflush(nil)  // the script polls the log for this line
    try await Task.sleep(for: .seconds(maxSeconds))
    await server.shutdownGracefully()
}

func platosClient(port: Int, mode: LoadMode, seconds: Double, warmup: Double) async throws {
    var configuration = RPCClientConfiguration()
    configuration.connections = 1
    let pool = RPCConnectionPool(host: "127.0.0.1", port: port, configuration: configuration)
    let client = RPCClient(transport: pool)
    let request = V1.GetThreadRequest(threadId: String(decoding: benchPayload, as: UTF8.self))
    // Connect before the clock starts.
    _ = try await client.call(V1.ThreadsService.get, request)
    // The callers run on the connection's event loop, as the echo client's pipelining does, so a
    // call costs no thread hand-offs in this process. `BENCH_CALLERS_ON=pool` puts them on the
    // global executor (every response then wakes a worker thread to resume its caller).
    let executor =
        getenv("BENCH_CALLERS_ON").map { String(cString: $0) } == "pool"
        ? nil : EventLoopTaskExecutor(eventLoop: try await pool.connection().eventLoop)
    let (sample, elapsed) = await runClosedLoop(
        inFlight: mode.inFlight, warmup: warmup, seconds: seconds, executor: executor
    ) {
        let thread = try await client.call(V1.ThreadsService.get, request)
        precondition(thread.id.utf8.count == benchPayload.count)
    }
    LoadReport(target: "platos", mode: mode.rawValue, inFlight: mode.inFlight, seconds: elapsed, sample: sample).print()
    await pool.close()
}

// MARK: Bare SwiftNIO length-prefixed echo (the transport's limit)

/// Splits the stream into 4-byte big-endian length-prefixed frames, prefix included.
struct LengthPrefixedFrames: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
            buffer.readableBytes >= 4 + Int(length)
        else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: 4 + Int(length))!))
        return .continue
    }
}

/// Writes every frame straight back; one flush per read burst. No protobuf, no dispatch.
final class EchoServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

func echoServer(port: Int, maxSeconds: Double) async throws {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.backlog, value: 256)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixedFrames()))
                try channel.pipeline.syncOperations.addHandler(EchoServerHandler())
            }
        }
        .bind(host: "127.0.0.1", port: port)
        .get()
    print("listening port=\(channel.localAddress!.port!)")
    fflush(nil)  // the script polls the log for this line
    try await Task.sleep(for: .seconds(maxSeconds))
    try await channel.close()
}

/// Keeps `inFlight` frames outstanding on one connection, entirely on the event loop: each
/// echoed frame is timed and immediately replaced by a new one (closed loop, like the RPC clients).
final class EchoClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let inFlight: Int
    private let measureFrom: UInt64
    private let measureUntil: UInt64
    private let done: EventLoopPromise<LoadSample>
    private let frame: ByteBuffer
    private var sent = CircularBuffer<UInt64>(initialCapacity: 128)
    private var sample = LoadSample()

    init(inFlight: Int, measureFrom: UInt64, measureUntil: UInt64, done: EventLoopPromise<LoadSample>) {
        self.inFlight = inFlight
        self.measureFrom = measureFrom
        self.measureUntil = measureUntil
        self.done = done
        var frame = ByteBuffer()
        frame.writeInteger(UInt32(benchPayload.count))
        frame.writeBytes(benchPayload)
        self.frame = frame
    }

    func channelActive(context: ChannelHandlerContext) {
        for _ in 0..<inFlight { send(context) }
        context.flush()
    }

    private func send(_ context: ChannelHandlerContext) {
        sent.append(nowNanos())
        context.write(wrapOutboundOut(frame), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        let t0 = sent.removeFirst()
        let t1 = nowNanos()
        precondition(reply.readableBytes == frame.readableBytes)
        if t0 >= measureFrom, t0 < measureUntil {
            sample.calls += 1
            _ = sample.histogram.record(t1 - t0)
        }
        if t1 < measureUntil {
            send(context)
        } else if sent.isEmpty {
            done.succeed(sample)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(ChannelError.ioOnClosedChannel)
    }
}

func echoClient(port: Int, mode: LoadMode, seconds: Double, warmup: Double) async throws {
    let group = MultiThreadedEventLoopGroup.singleton
    let loop = group.next()
    let done = loop.makePromise(of: LoadSample.self)
    let start = nowNanos()
    let measureFrom = start + UInt64(warmup * 1e9)
    let measureUntil = measureFrom + UInt64(seconds * 1e9)
    let channel = try await ClientBootstrap(group: loop)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixedFrames()))
                try channel.pipeline.syncOperations.addHandler(
                    EchoClientHandler(
                        inFlight: mode.inFlight, measureFrom: measureFrom, measureUntil: measureUntil, done: done))
            }
        }
        .connect(host: "127.0.0.1", port: port)
        .get()
    let sample = try await done.futureResult.get()
    LoadReport(target: "echo", mode: mode.rawValue, inFlight: mode.inFlight, seconds: seconds, sample: sample).print()
    try await channel.close()
}

// MARK: Command line

let arguments = Arguments(CommandLine.arguments)
let port = arguments.int("port", 0)
let maxSeconds = arguments.double("max-seconds", 900)
switch arguments.command {
case "server":
    try await platosServer(port: port, maxSeconds: maxSeconds)
case "echo-server":
    try await echoServer(port: port, maxSeconds: maxSeconds)
case "client":
    guard let mode = LoadMode(rawValue: arguments.string("mode", "seq")) else { fatalError("--mode seq|inflight64") }
    let seconds = arguments.double("seconds", 5)
    let warmup = arguments.double("warmup", 1)
    switch arguments.string("target", "platos") {
    case "platos": try await platosClient(port: port, mode: mode, seconds: seconds, warmup: warmup)
    case "echo": try await echoClient(port: port, mode: mode, seconds: seconds, warmup: warmup)
    default: fatalError("--target platos|echo")
    }
default:
    print(
        """
        usage: platos-bench-rpc server [--port N] [--max-seconds S]
               platos-bench-rpc echo-server [--port N] [--max-seconds S]
               platos-bench-rpc client --target platos|echo --port N --mode seq|inflight64 [--seconds S] [--warmup W]
        """)
}
