// platos-bench-gateway (`make bench-gateway`, issue 8): what the gateway costs. Starts the four
// real executables (release, 127.0.0.1, port 0, a temporary data directory), seeds a scope with
// 64 agents in 32 clusters, a token each, memories and a thread per agent, then measures in the
// same run, with `platos-load` as the load generator:
//
//   1. memory.recall, 64 callers, closed loop: direct to the memory port (principal stamped and
//      signed as the gateway stamps it) vs through the gateway → throughput ratio;
//   2. the same, both paced at the same rate (a fraction of the gateway's throughput) → the p50
//      the gateway adds at equal load (a closed loop at saturation only measures the throughput
//      gap again: p50 ≈ callers / throughput);
//   2b. the same with a single caller, closed loop → the p50 one hop adds with no queueing;
//   3. context.load through the gateway vs its two calls (memory.recall, messages.list with the
//      thread) issued in parallel straight to the backends, both paced at the same rate →
//      context.load's p99 over the slower of recall and messages.list.
//
// Each comparison is `--pairs` rounds of its two sides back to back, the order alternating; the
// headline figures are medians of the per-round differences or ratios, because this 2-core
// machine is shared and a burst of someone's build can land on any one phase.
//
// Options: --callers 64 --seconds 3 --warmup 1 --pairs 5 --clusters 32 --memories 200 (per cluster)
//          --load 0.5 (fraction of closed-loop throughput for the paced phases) --connections 4
//          --stack-only (start and seed the stack, print platos-load command lines, wait for Ctrl-C)
//          --dir D (the data directory goes in D/data) --pid-file F (every child's pid is appended)
import BenchmarkSupport
import Foundation
import PlatosProto
import PlatosRPC

struct Options {
    var callers = 64
    var seconds = 3.0
    var warmup = 1.0
    var clusters = 32
    var memories = 200
    var load = 0.5
    var connections = 4
    var pairs = 5
    /// Where the temporary data directory goes (removed at the end).
    var dir = FileManager.default.temporaryDirectory.appendingPathComponent("platos-bench-gateway-\(getpid())").path
    /// A file to append every child's pid to, for a wrapper script's clean-up.
    var pidFile: String?
    /// Start and seed the stack, print how to aim platos-load at it, and wait for a signal.
    var stackOnly = false

    init(_ arguments: [String]) throws {
        var it = arguments.makeIterator()
        while let flag = it.next() {
            if flag == "--stack-only" {
                stackOnly = true
                continue
            }
            if flag == "--dir" || flag == "--pid-file" {
                guard let path = it.next() else { throw UsageError("\(flag) needs a path") }
                if flag == "--dir" { dir = path } else { pidFile = path }
                continue
            }
            guard let text = it.next(), let value = Double(text), value >= 0 else {
                throw UsageError("\(flag) needs a number ≥ 0")
            }
            switch flag {
            case "--callers": callers = max(1, Int(value))
            case "--seconds": seconds = max(0.1, value)
            case "--warmup": warmup = value
            case "--clusters": clusters = max(1, Int(value))
            case "--memories": memories = Int(value)
            case "--load": load = min(max(value, 0.01), 1)
            case "--connections": connections = max(1, Int(value))
            case "--pairs": pairs = max(1, Int(value))
            default: throw UsageError("unknown option \(flag)")
            }
        }
    }
}

func loadAverage() -> String {
    ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3)
        .joined(separator: " ")
}

// MARK: the stack

struct Stack {
    let dataDir: String
    let registry: ChildProcess
    let memory: ChildProcess
    let threads: ChildProcess
    let gateway: ChildProcess
    let ports: [String: Int]

    static func start(dataDir: String) async throws -> (Stack, adminSecret: String) {
        let bootstrap = try ChildProcess(
            "issue-admin-token", executable: "platos-registry",
            arguments: ["issue-admin-token", "--org", "bench", "--project", "gateway", "--env", "prod", "--data-dir", dataDir])
        guard await bootstrap.waitForExit(timeout: .seconds(60)) == 0,
            let secret = bootstrap.output.first(where: { !$0.isEmpty })?.trimmingCharacters(in: .whitespaces)
        else { throw BenchmarkFailure("platos-registry issue-admin-token failed: \(bootstrap.output)") }

        var ports: [String: Int] = [:]
        func service(_ name: String, _ extra: [String] = []) async throws -> ChildProcess {
            let (child, port) = try await ChildProcess.startService(name, dataDir: dataDir, arguments: extra)
            ports[name] = port
            return child
        }
        let registry = try await service("registry")
        let memory = try await service("memory")
        let threads = try await service("threads", ["--registry", "127.0.0.1:\(ports["registry"]!)"])
        // The per-token rate limit is raised out of the way (it is still consulted on every
        // call): the one-caller phase sends every call with one token, faster than the default
        // 1,000 calls/s a token may make.
        let gateway = try await service(
            "gateway",
            [
                "--registry", "127.0.0.1:\(ports["registry"]!)", "--memory", "127.0.0.1:\(ports["memory"]!)",
                "--threads", "127.0.0.1:\(ports["threads"]!)", "--rate-limit-per-second", "1000000",
                "--rate-limit-burst", "1000000",
            ])
        let stack = Stack(
            dataDir: dataDir, registry: registry, memory: memory, threads: threads, gateway: gateway, ports: ports)
        return (stack, secret)
    }

    /// Gateway first, so no call is cut off at a backend; each is asked to drain (SIGTERM).
    func stop() async -> [Int32] {
        var codes: [Int32] = []
        for child in [gateway, threads, memory, registry] { codes.append(await child.stop()) }
        return codes
    }
}

// MARK: seeding, all through the gateway

/// `clusters` clusters of two agents, a token per agent, `memories` memories per cluster for its
/// end user `user-<c>` written by the cluster's first agent, and a thread per agent. Returns the
/// tokens file lines (`<token> <user> <thread>`).
func seed(_ options: Options, gatewayPort: Int, adminSecret: String) async throws -> [String] {
    let pool = RPCConnectionPool(host: "127.0.0.1", port: gatewayPort)
    let admin = RPCClient(
        transport: pool, defaultMetadata: [MetadataKey.authorization: "Bearer \(adminSecret)"], defaultTimeout: .seconds(30))
    let agentCount = options.clusters * 2
    let agents = try await withThrowingTaskGroup(of: (Int, String).self) { group in
        for i in 0..<agentCount {
            group.addTask {
                let agent = try await admin.call(
                    V1.AgentsService.create, V1.CreateAgentRequest(slug: "agent-\(i)", name: "Agent \(i)"))
                return (i, agent.id)
            }
        }
        var ids = Array(repeating: "", count: agentCount)
        for try await (i, id) in group { ids[i] = id }
        return ids
    }
    let tokens = try await withThrowingTaskGroup(of: (Int, String).self) { group in
        for c in 0..<options.clusters {
            group.addTask {
                _ = try await admin.call(
                    V1.ClustersService.create,
                    V1.CreateClusterRequest(name: "Cluster \(c)", slug: "cluster-\(c)", agentIds: [agents[2 * c], agents[2 * c + 1]]))
                return (-1, "")
            }
        }
        for i in 0..<agentCount {
            group.addTask {
                let issued = try await admin.call(
                    V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agents[i], description: "bench"))
                return (i, issued.secret)
            }
        }
        var secrets = Array(repeating: "", count: agentCount)
        for try await (i, secret) in group where i >= 0 { secrets[i] = secret }
        return secrets
    }
    let started = nowNanos()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for c in 0..<options.clusters {
            group.addTask {
                let writer = RPCClient(
                    transport: pool,
                    defaultMetadata: [MetadataKey.authorization: "Bearer \(tokens[2 * c])", MetadataKey.user: "user-\(c)"],
                    defaultTimeout: .seconds(30))
                var rng = SplitMix64(seed: UInt64(c) &+ 1000)
                for _ in 0..<options.memories {
                    _ = try await writer.call(
                        V1.MemoryService.write,
                        V1.WriteMemoryRequest(content: Words.text(8 + Int(rng.next() % 9), &rng), tags: [Words.word(&rng)]))
                }
            }
        }
        try await group.waitForAll()
    }
    let seconds = Double(nowNanos() - started) / 1e9
    // A thread per agent, with as many messages as context.load lists.
    let threads = try await withThrowingTaskGroup(of: (Int, String).self) { group in
        for i in 0..<agentCount {
            group.addTask {
                let agent = RPCClient(
                    transport: pool,
                    defaultMetadata: [MetadataKey.authorization: "Bearer \(tokens[i])", MetadataKey.user: "user-\(i / 2)"],
                    defaultTimeout: .seconds(30))
                let thread = try await agent.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "Thread \(i)"))
                var rng = SplitMix64(seed: UInt64(i) &+ 5000)
                for n in 0..<20 {
                    _ = try await agent.call(
                        V1.MessagesService.post,
                        V1.PostMessageRequest(threadId: thread.id, role: n % 2 == 0 ? .user : .agent, content: Words.text(12, &rng)))
                }
                return (i, thread.id)
            }
        }
        var ids = Array(repeating: "", count: agentCount)
        for try await (i, id) in group { ids[i] = id }
        return ids
    }
    say(
        "seeded \(agentCount) agents in \(options.clusters) clusters, \(agentCount) tokens, "
            + "\(options.clusters * options.memories) memories (\(fixed(Double(options.clusters * options.memories) / seconds, 0)) writes/s through the gateway), "
            + "\(agentCount) threads of 20 messages")
    await pool.close()
    // Caller i acts as agent i for its cluster's user, on its own thread.
    return (0..<agentCount).map { "\(tokens[$0]) user-\($0 / 2) \(threads[$0])" }
}

// MARK: measuring with platos-load

/// One `LOAD` line's figures.
struct Figures {
    var rps: Double
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var errors: Int
    var late: Int

    init(_ fields: [String: String]) {
        func d(_ key: String) -> Double { Double(fields[key] ?? "") ?? .nan }
        rps = d("rps")
        p50 = d("p50_us")
        p90 = d("p90_us")
        p99 = d("p99_us")
        p999 = d("p999_us")
        errors = Int(fields["errors"] ?? "") ?? -1
        late = Int(fields["late"] ?? "") ?? 0
    }
}

struct Runner {
    let options: Options
    let stack: Stack
    let tokensFile: String

    var gatewayArguments: [String] { ["--gateway", "127.0.0.1:\(stack.ports["gateway"]!)"] }
    var directArguments: [String] {
        [
            "--direct", "--registry", "127.0.0.1:\(stack.ports["registry"]!)", "--memory",
            "127.0.0.1:\(stack.ports["memory"]!)", "--threads", "127.0.0.1:\(stack.ports["threads"]!)",
            "--secret-file", "\(stack.dataDir)/internal.secret",
        ]
    }

    /// Runs platos-load once; its figures by series name.
    func load(_ label: String, _ arguments: [String], rate: Double? = nil, callers: Int? = nil) async throws
        -> [String: Figures]
    {
        var all =
            arguments + [
                "--tokens-file", tokensFile, "--callers", "\(callers ?? options.callers)", "--seconds", "\(options.seconds)",
                "--warmup", "\(options.warmup)", "--connections", "\(options.connections)", "--machine", "--label", label,
            ]
        if let rate { all += ["--rate", fixed(rate, 1)] }
        say("== \(label) (load average \(loadAverage()))")
        let child = try ChildProcess("platos-load", executable: "platos-load", arguments: all)
        let status = await child.waitForExit(timeout: .seconds(Int64(options.warmup + options.seconds) + 180))
        var figures: [String: Figures] = [:]
        for line in child.output {
            if let fields = parseLoadLine(line[...]), let series = fields["series"] {
                figures[series] = Figures(fields)
            } else if !line.isEmpty {
                say("  | \(line)")
            }
        }
        guard status == 0, !figures.isEmpty else { throw BenchmarkFailure("platos-load (\(label)) exited \(status)") }
        if let errors = figures.values.map(\.errors).max(), errors > 0 {
            throw BenchmarkFailure("platos-load (\(label)): \(errors) calls failed")
        }
        return figures
    }
}

func median(_ xs: [Double]) -> Double {
    let sorted = xs.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// One way of calling: a label, platos-load's arguments, and optionally a rate and caller count.
struct Side {
    var label: String
    var arguments: [String]
    var rate: Double? = nil
    var callers: Int? = nil
}

extension Runner {
    /// `pairs` rounds of `a` and `b` back to back, the order alternating (a b, b a, a b, ...), so
    /// that a burst of load from elsewhere on the machine lands on both sides of some pair and a
    /// slow drift cancels out. Each side's figures per round, by series.
    func paired(_ a: Side, _ b: Side) async throws -> (a: [[String: Figures]], b: [[String: Figures]]) {
        var ra: [[String: Figures]] = []
        var rb: [[String: Figures]] = []
        for round in 1...options.pairs {
            for side in round % 2 == 1 ? [a, b] : [b, a] {
                let figures = try await load(
                    "\(side.label)-\(round)", side.arguments, rate: side.rate, callers: side.callers)
                if side.label == a.label { ra.append(figures) } else { rb.append(figures) }
            }
        }
        return (ra, rb)
    }
}

func run(_ options: Options) async throws {
    say(
        "platos-bench-gateway: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage()), "
            + "\(options.callers) callers, \(options.pairs) paired rounds of \(fixed(options.warmup, 1)) s warm-up + "
            + "\(fixed(options.seconds, 1)) s per side")
    let dataDir = "\(options.dir)/data"
    try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
    ChildProcess.atExit { try? FileManager.default.removeItem(atPath: dataDir) }
    if let pidFile = options.pidFile { ChildProcess.recordPids(in: pidFile) }

    let (stack, adminSecret) = try await Stack.start(dataDir: dataDir)
    say("stack: \(stack.ports.sorted { $0.key < $1.key }.map { "\($0.key) 127.0.0.1:\($0.value)" }.joined(separator: ", "))")
    let lines = try await seed(options, gatewayPort: stack.ports["gateway"]!, adminSecret: adminSecret)
    let tokensFile = "\(dataDir)/tokens"
    guard
        FileManager.default.createFile(
            atPath: tokensFile, contents: Data((lines.joined(separator: "\n") + "\n").utf8),
            attributes: [.posixPermissions: 0o600])
    else { throw BenchmarkFailure("cannot write \(tokensFile)") }
    let runner = Runner(options: options, stack: stack, tokensFile: tokensFile)
    if options.stackOnly {
        say("platos-load \(runner.gatewayArguments.joined(separator: " ")) --tokens-file \(tokensFile) --scenario recall")
        say("platos-load \(runner.directArguments.joined(separator: " ")) --tokens-file \(tokensFile) --scenario recall")
        say("READY (Ctrl-C stops the stack)")
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
    let recall = ["--scenario", "recall"]
    func series(_ rounds: [[String: Figures]], _ name: String) -> [Figures] { rounds.map { $0[name]! } }

    // 1. Throughput, 64 callers, closed loop.
    let closed = try await runner.paired(
        Side(label: "recall-direct", arguments: runner.directArguments + recall),
        Side(label: "recall-gateway", arguments: runner.gatewayArguments + recall))
    let (direct, gateway) = (series(closed.a, "recall"), series(closed.b, "recall"))
    let ratios = zip(gateway, direct).map { $0.rps / $1.rps }

    // 2. Latency at the same offered load: a fraction of the gateway's closed-loop throughput.
    let rate = options.load * median(gateway.map(\.rps))
    let paced = try await runner.paired(
        Side(label: "recall-direct-paced", arguments: runner.directArguments + recall, rate: rate),
        Side(label: "recall-gateway-paced", arguments: runner.gatewayArguments + recall, rate: rate))
    let (directPaced, gatewayPaced) = (series(paced.a, "recall"), series(paced.b, "recall"))
    let added = zip(gatewayPaced, directPaced).map { $0.p50 - $1.p50 }

    // 2b. One caller, closed loop: what one hop adds with no queueing anywhere.
    let single = try await runner.paired(
        Side(label: "recall-direct-1-caller", arguments: runner.directArguments + recall, callers: 1),
        Side(label: "recall-gateway-1-caller", arguments: runner.gatewayArguments + recall, callers: 1))
    let (directSingle, gatewaySingle) = (series(single.a, "recall"), series(single.b, "recall"))
    let addedSingle = zip(gatewaySingle, directSingle).map { $0.p50 - $1.p50 }

    // 3. context.load through the gateway vs its two calls made straight to the backends in
    //    parallel, both paced at a fraction of context.load's closed-loop throughput.
    let contextArguments = runner.gatewayArguments + ["--scenario", "context-load"]
    let contextClosed = try await runner.load("context-load-closed", contextArguments)["context-load"]!
    let contextRate = options.load * contextClosed.rps
    let context = try await runner.paired(
        Side(label: "context-legs-direct-paced", arguments: runner.directArguments + ["--scenario", "context-legs"], rate: contextRate),
        Side(label: "context-load-paced", arguments: contextArguments, rate: contextRate))
    let legs = context.a
    let contextLoad = series(context.b, "context-load")
    let overSlower = zip(contextLoad, legs).map { c, l in
        (c.p99 - max(l["memory.recall"]!.p99, l["messages.list"]!.p99)) / 1000
    }

    let codes = await stack.stop()
    ChildProcess.runCleanups()

    func row(_ name: String, _ runs: [Figures]) -> String {
        let cells = [runs.map(\.rps), runs.map(\.p50), runs.map(\.p90), runs.map(\.p99), runs.map(\.p999)].map(median)
        return "| \(name) | " + cells.map { fixed($0, 0) }.joined(separator: " | ") + " |"
    }
    func list(_ xs: [Double], _ digits: Int) -> String { xs.map { fixed($0, digits) }.joined(separator: ", ") }
    say("")
    say("Summary: medians over \(options.pairs) rounds, latencies in µs; load average now \(loadAverage()); exit codes \(codes)")
    say("| phase | calls/s | p50 | p90 | p99 | p99.9 |")
    say("|---|---:|---:|---:|---:|---:|")
    say(row("recall direct, \(options.callers) callers, closed loop", direct))
    say(row("recall gateway, \(options.callers) callers, closed loop", gateway))
    say(row("recall direct, paced at \(fixed(rate, 0))/s", directPaced))
    say(row("recall gateway, paced at \(fixed(rate, 0))/s", gatewayPaced))
    say(row("recall direct, 1 caller", directSingle))
    say(row("recall gateway, 1 caller", gatewaySingle))
    say(row("context.load gateway, closed loop (1 round)", [contextClosed]))
    say(row("context.load gateway, paced at \(fixed(contextRate, 0))/s", contextLoad))
    for name in ["memory.recall", "messages.list", "context-legs"] {
        let what = name == "context-legs" ? "slower of the two" : name
        say(row("\(what) direct, legs in parallel, paced at \(fixed(contextRate, 0))/s", series(legs, name)))
    }
    say("per round: gateway/direct \(list(ratios, 3)); added p50 µs \(list(added, 0)); 1 caller \(list(addedSingle, 0)); "
        + "context.load p99 over the slower call ms \(list(overSlower, 3))")
    say("RESULT gateway_vs_direct \(fixed(median(ratios), 3))")
    say("RESULT gateway_added_p50_us \(fixed(median(added), 0))")
    say("RESULT context_load_p99_over_slower_ms \(fixed(median(overSlower), 3))")
    say("RESULT gateway_added_p50_us_1_caller \(fixed(median(addedSingle), 0))")
    say("RESULT gateway_recall_per_s \(fixed(median(gateway.map(\.rps)), 0))")
    say("RESULT direct_recall_per_s \(fixed(median(direct.map(\.rps)), 0))")
}

ChildProcess.stopChildrenOnSignals()
do {
    try await run(try Options(Array(CommandLine.arguments.dropFirst())))
    exit(0)
} catch {
    FileHandle.standardError.write(Data("platos-bench-gateway: \(error)\n".utf8))
    await ChildProcess.stopAll()
    ChildProcess.runCleanups()
    exit(1)
}
