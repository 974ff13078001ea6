// platos-load: the load generator against the gateway (DESIGN §7). See `usage` in Options.swift.
import BenchmarkSupport
import Foundation
import PlatosAuth
import PlatosProto
import PlatosRPC
import ProtobufCSwift

/// How one caller identity reaches the owner of each method: through the gateway with its token,
/// or (direct mode) straight to the backend with the principal the token resolves to, signed.
struct Caller: Sendable {
    var gateway: RPCClient?
    var backends: [MethodOwner: RPCClient] = [:]

    func client(_ owner: MethodOwner) throws -> RPCClient {
        if let gateway { return gateway }
        guard let client = backends[owner] else {
            throw RPCError(.unimplemented, "\(owner) methods cannot be called in direct mode")
        }
        return client
    }
}

func clientConfiguration(_ options: Options) -> RPCClientConfiguration {
    var configuration = RPCClientConfiguration()
    configuration.connections = options.connections
    return configuration
}

func makeCallers(_ options: Options) async throws -> [Caller] {
    guard options.direct else {
        let pool = RPCConnectionPool(
            host: options.gateway.host, port: options.gateway.port, configuration: clientConfiguration(options))
        return options.identities.map { identity in
            var metadata: Metadata = [MetadataKey.authorization: "Bearer \(identity.token)"]
            if let user = identity.user { metadata[MetadataKey.user] = user }
            if let task = options.task { metadata[MetadataKey.task] = task }
            return Caller(gateway: RPCClient(transport: pool, defaultMetadata: metadata, defaultTimeout: options.timeout))
        }
    }
    let secret = try String(contentsOfFile: options.secretFile!, encoding: .utf8)
        .trimmingCharacters(in: .whitespacesAndNewlines)
    let signer = try PrincipalSigner(secret: Array(secret.utf8))
    func pool(_ endpoint: LoopbackEndpoint) -> RPCConnectionPool {
        RPCConnectionPool(host: endpoint.host, port: endpoint.port, configuration: clientConfiguration(options))
    }
    let pools: [MethodOwner: RPCConnectionPool] = [
        .registry: pool(options.registry!), .memory: pool(options.memory!), .threads: pool(options.threads!),
    ]
    // Resolve each token as the gateway does: `auth.resolve` with the gateway's own principal, then
    // the end user from the token, else from --user / the tokens file.
    let registry = RPCClient(
        transport: SignedTransport(inner: pools[.registry]!, signer: signer, principal: ServicePrincipal.gateway),
        defaultTimeout: options.timeout)
    var callers: [Caller] = []
    for (i, identity) in options.identities.enumerated() {
        let resolved = try await registry.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: identity.token))
        guard var principal = resolved.principal else {
            throw BenchmarkFailure("token \(i + 1) does not resolve: invalid, expired or revoked")
        }
        if principal.userId.isEmpty {
            principal.userId = identity.user ?? ""
        } else if let user = identity.user, user != principal.userId {
            throw BenchmarkFailure("token \(i + 1) is bound to another user than \(user)")
        }
        var caller = Caller()
        for (owner, pool) in pools {
            caller.backends[owner] = RPCClient(
                transport: SignedTransport(inner: pool, signer: signer, principal: principal),
                defaultTimeout: options.timeout)
        }
        callers.append(caller)
    }
    return callers
}

/// For the context scenarios: one thread per identity (or the one given), with a few messages.
func prepareThreads(_ options: Options, _ callers: [Caller]) async throws -> [String] {
    let named = options.identities.compactMap(\.thread)
    if named.count == options.identities.count { return named }
    if let thread = options.thread { return Array(repeating: thread, count: callers.count) }
    return try await withThrowingTaskGroup(of: (Int, String).self) { group in
        for (i, caller) in callers.enumerated() {
            group.addTask {
                let threads = try caller.client(.threads)
                let thread = try await threads.call(
                    V1.ThreadsService.create, V1.CreateThreadRequest(title: "platos-load \(i)"))
                var rng = SplitMix64(seed: UInt64(i) &+ 77)
                for n in 0..<options.seedMessages {
                    _ = try await threads.call(
                        V1.MessagesService.post,
                        V1.PostMessageRequest(
                            threadId: thread.id, role: n % 2 == 0 ? .user : .agent, content: Words.text(12, &rng)))
                }
                return (i, thread.id)
            }
        }
        var ids = Array(repeating: "", count: callers.count)
        for try await (i, id) in group { ids[i] = id }
        return ids
    }
}

func timed<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> UInt64 {
    let t0 = nowNanos()
    _ = try await body()
    return nowNanos() - t0
}

/// Any unary method, its request given as JSON: the response is decoded as a real client would.
func methodOperation(_ options: Options, _ callers: [Caller]) throws -> LoadOperation {
    let name = options.method!
    guard let descriptor = V1.methodsByName[name] else { throw UsageError("unknown method '\(name)'") }
    guard descriptor.kind == .unary else { throw UsageError("\(name) is a streaming method; only unary methods are supported") }
    guard descriptor.access != .internal else { throw UsageError("\(name) is internal: the gateway does not route it") }
    func open<Request: ProtoMessage>(_ requestType: Request.Type) throws -> LoadOperation {
        let request: Request
        do {
            request = try Request(jsonString: options.request!)
        } catch {
            throw UsageError("--request is not a valid \(Request.protoDescriptor.fullName): \(error)")
        }
        func open<Response: ProtoMessage>(_ responseType: Response.Type) -> LoadOperation {
            let method = RPCMethod<Request, Response>(
                name: descriptor.name, kind: descriptor.kind, owner: descriptor.owner, access: descriptor.access,
                idempotent: descriptor.idempotent)
            return { caller, _, _ in
                _ = try await callers[caller % callers.count].client(descriptor.owner).call(method, request)
            }
        }
        return open(descriptor.responseType)
    }
    return try open(descriptor.requestType)
}

func scenarioOperation(_ scenario: Scenario, _ callers: [Caller], threads: [String]) -> (legs: [String], LoadOperation) {
    switch scenario {
    case .recall:
        return (
            [],
            { caller, rng, _ in
                _ = try await callers[caller % callers.count].client(.memory)
                    .call(V1.MemoryService.recall, V1.RecallRequest(query: Words.query(&rng), limit: 10))
            }
        )
    case .contextLoad:
        return (
            [],
            { caller, rng, _ in
                let response = try await callers[caller % callers.count].client(.gateway).call(
                    V1.ContextService.load,
                    V1.LoadContextRequest(
                        threadId: threads[caller % threads.count], query: Words.query(&rng), recallLimit: 10,
                        messageLimit: 20))
                // A failed side does not fail the call; it is still a failed turn.
                for status in [response.memoriesStatus, response.messagesStatus] {
                    if let status, status.code != .ok { throw RPCError(status: status) }
                }
            }
        )
    case .contextLegs:
        return (
            ["memory.recall", "messages.list"],
            { caller, rng, legs in
                let who = callers[caller % callers.count]
                let (memory, threadsClient) = (try who.client(.memory), try who.client(.threads))
                let thread = threads[caller % threads.count]
                let query = Words.query(&rng)
                async let recall = timed {
                    try await memory.call(V1.MemoryService.recall, V1.RecallRequest(query: query, limit: 10))
                }
                async let list = timed {
                    try await threadsClient.call(
                        V1.MessagesService.list,
                        V1.ListMessagesRequest(threadId: thread, limit: 20, newest: true, includeThread: true))
                }
                let (a, b) = try await (recall, list)
                legs.record(leg: 0, nanos: a)
                legs.record(leg: 1, nanos: b)
            }
        )
    }
}

do {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    let callers = try await makeCallers(options)
    let name: String
    let legNames: [String]
    let operation: LoadOperation
    if let scenario = options.scenario {
        let threads = scenario == .recall ? [] : try await prepareThreads(options, callers)
        (legNames, operation) = scenarioOperation(scenario, callers, threads: threads)
        name = scenario == .contextLegs ? "context-legs" : scenario.rawValue
    } else {
        operation = try methodOperation(options, callers)
        (name, legNames) = (options.method!, [])
    }

    // One call per identity first: a wrong token or request fails here, with its reason.
    try await withThrowingTaskGroup(of: Void.self) { group in
        for i in callers.indices {
            group.addTask {
                var rng = SplitMix64(seed: UInt64(i))
                var legs = LegTimes(count: legNames.count)
                do {
                    try await operation(i, &rng, &legs)
                } catch {
                    throw BenchmarkFailure("the first call as identity \(i + 1) failed: \(error)")
                }
            }
        }
        try await group.waitForAll()
    }

    let target = options.direct ? "direct to the backends (signed as the gateway)" : "gateway \(options.gateway)"
    say(
        "platos-load: \(name), \(target), \(options.callers) callers, \(callers.count) identities, "
            + "\(options.connections) connections, "
            + (options.rate.map { "paced at \(fixed($0, 0)) calls/s" } ?? "closed loop")
            + ", \(fixed(options.warmup, 1)) s warm-up + \(fixed(options.seconds, 1)) s")
    let report = await runLoad(
        plan: LoadPlan(callers: options.callers, warmup: options.warmup, seconds: options.seconds, rate: options.rate),
        name: name, legNames: legNames, operation: operation)
    for line in report.humanLines() { say("  " + line) }
    if report.lateStarts > 0 {
        say("  \(report.lateStarts) calls started > 1 ms after their slot (the callers could not keep up with --rate)")
    }
    if report.operation.errorsByCode["RESOURCE_EXHAUSTED"] != nil, !options.direct {
        say("  RESOURCE_EXHAUSTED: the gateway rate-limits each token (1,000 calls/s by default); use --tokens-file with more tokens")
    }
    if options.machine {
        for line in report.machineLines(label: options.label ?? name) { say(line) }
    }
    exit(0)
} catch let error as UsageError {
    FileHandle.standardError.write(Data("platos-load: \(error)\n\n\(usage)\n".utf8))
    exit(2)
} catch {
    FileHandle.standardError.write(Data("platos-load: \(error)\n".utf8))
    exit(1)
}
