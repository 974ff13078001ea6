// grpc-swift-2 reference for `make bench-rpc`: a unary echo of a 64-byte payload over
// grpc-swift-2's HTTP/2 (NIO Posix) transport, plaintext, on 127.0.0.1.
//
//   grpc-reference-bench server [--port N]          (0 = any free port; prints "listening port=N")
//   grpc-reference-bench client --port N --mode seq|inflight64 [--seconds S] [--warmup W]
//
// Messages are raw `[UInt8]` through a pass-through serializer: no protobuf on this side, which
// favours gRPC slightly (the Platos side packs its frames and messages with protobuf-c).
#if canImport(Glibc)
import Glibc
#endif
import GRPCCore
import GRPCNIOTransportHTTP2

struct RawSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
}

struct RawDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

let echoMethod = MethodDescriptor(fullyQualifiedService: "platos.bench.Echo", method: "Ping", type: .unary)

struct EchoService: RegistrableRPCService {
    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: echoMethod, deserializer: RawDeserializer(), serializer: RawSerializer()
        ) { request, _ in
            // What generated unary code does: take the single request message, answer one message.
            var messages = request.messages.makeAsyncIterator()
            guard let message = try await messages.next() else {
                throw RPCError(code: .invalidArgument, message: "no request message")
            }
            return StreamingServerResponse(single: ServerResponse(message: message))
        }
    }
}

func serve(port: Int) async throws {
    let server = GRPCServer(
        transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext),
        services: [EchoService()])
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await server.serve() }
        guard let address = try await server.listeningAddress?.ipv4 else {
            fatalError("the server did not bind")
        }
        print("listening port=\(address.port)")
        fflush(nil)  // the script polls the log for this line
    }
}

func client(port: Int, mode: LoadMode, seconds: Double, warmup: Double) async throws {
    let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
    let client = GRPCClient(transport: transport)
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await client.runConnections() }
        let payload = benchPayload
        let (sample, elapsed) = await runClosedLoop(inFlight: mode.inFlight, warmup: warmup, seconds: seconds) {
            let reply = try await client.unary(
                request: ClientRequest(message: payload), descriptor: echoMethod, serializer: RawSerializer(),
                deserializer: RawDeserializer(), options: .defaults
            ) { response in try response.message }
            precondition(reply.count == payload.count)
        }
        LoadReport(target: "grpc", mode: mode.rawValue, inFlight: mode.inFlight, seconds: elapsed, sample: sample).print()
        client.beginGracefulShutdown()
    }
}

let arguments = Arguments(CommandLine.arguments)
switch arguments.command {
case "server":
    try await serve(port: arguments.int("port", 0))
case "client":
    guard let mode = LoadMode(rawValue: arguments.string("mode", "seq")) else { fatalError("--mode seq|inflight64") }
    try await client(
        port: arguments.int("port", 0), mode: mode, seconds: arguments.double("seconds", 5),
        warmup: arguments.double("warmup", 1))
default:
    print("usage: grpc-reference-bench server [--port N] | client --port N --mode seq|inflight64 [--seconds S] [--warmup W]")
}
