// platos-bench-registry: `auth.resolve` calls/s and latency with 64 concurrent callers, against
// the real `platos-registry` executable (release) over loopback. `make bench-registry`.
//
// The callers stand for the gateway, the only caller of auth.resolve, whose handlers run on its
// event loops and call through loop-affine connection pools: so each caller here is a task on
// one of this process's loops (`EventLoopTaskExecutor`), and the pool gives it a connection on
// the same loop. `BENCH_CALLERS_ON=pool` runs them on the global executor instead.
import BenchmarkSupport
import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOPosix
import PlatosAuth
import PlatosProto
import PlatosRPC

let seconds = Double(ProcessInfo.processInfo.environment["BENCH_SECONDS"] ?? "") ?? 5
let callers = 64
let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("platos-bench-registry-\(UUID().uuidString)").path
let (registry, port) = try await ChildProcess.startService("registry", dataDir: dataDir)

let secret = try String(contentsOfFile: "\(dataDir)/internal.secret", encoding: .utf8)
let signer = try PrincipalSigner(secret: Array(secret.trimmingCharacters(in: .whitespacesAndNewlines).utf8))
func client(_ principal: V1.Principal, connections: Int = 1) -> RPCClient {
    var configuration = RPCClientConfiguration()
    configuration.connections = connections
    let pool = RPCConnectionPool(host: "127.0.0.1", port: port, configuration: configuration)
    return RPCClient(transport: SignedTransport(inner: pool, signer: signer, principal: principal))
}

// 64 agents in 32 clusters, one token each.
let scope = V1.Scope(org: "bench", project: "registry", env: "prod")
func seed() async throws -> (agents: [String], secrets: [String]) {
    let admin = client(V1.Principal(scope: scope, role: .admin))
    var agents: [String] = []
    var secrets: [String] = []
    for i in 0..<callers {
        agents.append(try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "agent-\(i)", name: "Agent \(i)")).id)
    }
    for i in stride(from: 0, to: callers, by: 2) {
        _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "C\(i)", slug: "c\(i)", agentIds: [agents[i], agents[i + 1]]))
    }
    for agent in agents {
        secrets.append(try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent)).secret)
    }
    return (agents, secrets)
}
let (agents, secrets) = try await seed()

let gateway = client(ServicePrincipal.gateway, connections: 2)
let callersOnLoops = ProcessInfo.processInfo.environment["BENCH_CALLERS_ON"] != "pool"
let loopExecutors = MultiThreadedEventLoopGroup.singleton.makeIterator().map { EventLoopTaskExecutor(eventLoop: $0) }
let histogram = NIOLockedValueBox(Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three))
let stop = NIOLockedValueBox(false)
func runLoad(for duration: Double, record: Bool) async throws -> Int {
    stop.withLockedValue { $0 = false }
    return try await withThrowingTaskGroup(of: Int.self) { group in
        for i in 0..<callers {
            group.addTask(executorPreference: callersOnLoops ? loopExecutors[i % loopExecutors.count] : nil) {
                var local = Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three)
                var n = 0
                let request = V1.ResolveTokenRequest(secret: secrets[i])
                while !stop.withLockedValue({ $0 }) {
                    let started = ContinuousClock.now
                    let response = try await gateway.call(V1.AuthService.resolve, request)
                    precondition(response.principal?.agentId == agents[i])
                    let elapsed = ContinuousClock.now - started
                    _ = local.record(UInt64(elapsed.components.attoseconds / 1_000_000_000 + elapsed.components.seconds * 1_000_000_000) / 1000)
                    n += 1
                }
                if record { histogram.withLockedValue { $0.add(local) } }
                return n
            }
        }
        try await Task.sleep(for: .milliseconds(Int(duration * 1000)))
        stop.withLockedValue { $0 = true }
        return try await group.reduce(0, +)
    }
}

_ = try await runLoad(for: 1, record: false)  // warm-up
let total = try await runLoad(for: seconds, record: true)
let perSecond = Double(total) / seconds
let (p50, p99) = histogram.withLockedValue { (Double($0.valueAtPercentile(50)) / 1000, Double($0.valueAtPercentile(99)) / 1000) }
print(
    String(
        format: "auth.resolve, %d callers (%@), %.0f s: %.0f calls/s  p50 %.3f ms  p99 %.3f ms", callers,
        callersOnLoops ? "on the event loops" : "on the global executor", seconds, perSecond, p50, p99))
print(String(format: "RESULT auth_resolve_per_s %.0f", perSecond))
print(String(format: "RESULT auth_resolve_p99_ms %.3f", p99))
await registry.stop()
try? FileManager.default.removeItem(atPath: dataDir)
