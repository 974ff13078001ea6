// `make bench-threads` (scripts/bench-threads.sh): the threads service under load.
//
//   platos-bench-threads [--seconds S] [--warmup W] [--callers N] [--threads T] [--transport tcp|in-process]
//
// The service runs in this process on a fresh database in a temporary directory, with an
// in-memory cluster directory (no registry: spawn checks siblings against it). With `tcp` (the
// default) it is served by the real RPC server on 127.0.0.1 and every caller goes through the
// RPC client, the wire codec and the principal signature check, as behind the gateway; with
// `in-process` the sockets are skipped. Three phases, each after a warm-up:
//   posts   N callers post into T threads (random thread per post)       → acknowledged posts/s
//   list    N callers list 50 messages of a random thread                → p50/p99 latency
//   tasks   N spawner/worker pairs: spawn → claim → complete, in a loop  → round trips/s
// Ends with the three RESULT lines scripts/bench-threads.sh passes on.
import BenchmarkSupport
import Foundation
import Histogram
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosService
import ThreadsService

struct Options {
    var seconds = 5.0
    var warmup = 1.0
    var callers = 64
    var threads = 1_000
    var tcp = true

    init(_ arguments: [String]) throws {
        var it = arguments.makeIterator()
        while let flag = it.next() {
            guard let value = it.next() else { throw BenchmarkFailure("\(flag) needs a value") }
            switch flag {
            case "--seconds": seconds = Double(value) ?? seconds
            case "--warmup": warmup = Double(value) ?? warmup
            case "--callers": callers = Int(value) ?? callers
            case "--threads": threads = Int(value) ?? threads
            case "--transport": tcp = value != "in-process"
            default: throw BenchmarkFailure("unknown flag \(flag)")
            }
        }
    }
}

let scope = V1.Scope(org: "bench", project: "threads", env: "dev")
let cluster = "cluster_bench"

func agent(_ id: String) -> V1.Principal {
    V1.Principal(scope: scope, agentId: id, clusterId: cluster, userId: "user_bench", role: .agent)
}

/// Runs `body` on `callers` concurrent loops: `warmup` seconds unmeasured, then `seconds`
/// measured. Returns the calls completed and their latencies (ns) in the measured window.
func measure(
    callers: Int, warmup: Double, seconds: Double, _ body: @escaping @Sendable (Int) async throws -> Void
) async throws -> (calls: Int, errors: Int, latency: Histogram<UInt64>, cpuSeconds: Double) {
    let clock = ContinuousClock()
    let start = clock.now
    let measureFrom = start + .milliseconds(Int64(warmup * 1000))
    let end = measureFrom + .milliseconds(Int64(seconds * 1000))
    // The process's CPU time over the measured window: on a shared machine, CPU per call moves
    // much less between runs than calls/s does.
    let cpu = Task {
        try await clock.sleep(until: measureFrom)
        let from = processCPUSeconds()
        try await clock.sleep(until: end)
        return processCPUSeconds() - from
    }
    let (calls, errors, latency) = try await withThrowingTaskGroup(of: (Int, Int, Histogram<UInt64>).self) { group in
        for caller in 0..<callers {
            group.addTask {
                var histogram = Histogram<UInt64>(
                    lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000,
                    numberOfSignificantValueDigits: .three)
                var calls = 0
                var errors = 0
                while true {
                    let began = clock.now
                    guard began < end else { break }
                    do {
                        try await body(caller)
                    } catch {
                        if began >= measureFrom { errors += 1 }
                        continue
                    }
                    if began >= measureFrom {
                        calls += 1
                        let elapsed = (clock.now - began).components
                        histogram.record(UInt64(elapsed.seconds) * 1_000_000_000 + UInt64(elapsed.attoseconds / 1_000_000_000))
                    }
                }
                return (calls, errors, histogram)
            }
        }
        var calls = 0
        var errors = 0
        var merged = Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        for try await (c, e, h) in group {
            calls += c
            errors += e
            merged.add(h)
        }
        return (calls, errors, merged)
    }
    return (calls, errors, latency, try await cpu.value)
}

/// User + system CPU time of this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1_000_000 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU per call over the measured window, in µs.
func cpuPerCall(_ cpuSeconds: Double, _ calls: Int) -> String {
    String(format: "%.0f", cpuSeconds * 1_000_000 / Double(max(calls, 1)))
}

func ms(_ nanos: UInt64) -> String { String(format: "%.3f", Double(nanos) / 1_000_000) }

func run() async throws {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    MallocTuning.keepFreedMemory()  // as platos-threads does at start-up
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("platos-bench-threads-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let store = try SQLiteThreadsStore.open(path: dir.appendingPathComponent("threads.sqlite").path)
    let signer = try PrincipalSigner(secret: Array(UUID().uuidString.utf8) + Array(UUID().uuidString.utf8))
    let directory = InMemoryClusterDirectory()
    let pairs = options.callers
    for i in 0..<pairs {
        directory.set(DirectoryAgent(agentId: "worker_\(i)", clusterId: cluster), in: scope)
    }
    directory.set(DirectoryAgent(agentId: "spawner", clusterId: cluster), in: scope)
    let service = ThreadsService(store: store, directory: directory, signer: signer)

    let inner: any RPCTransport
    var server: RPCServer?
    if options.tcp {
        var configuration = RPCServerConfiguration(host: "127.0.0.1", port: 0, serverName: "platos-bench-threads")
        configuration.maxConcurrentCallsPerConnection = 1024
        let started = RPCServer(configuration: configuration, router: service.router)
        let address = try await started.start()
        server = started
        var client = RPCClientConfiguration()
        client.connections = 4
        inner = RPCConnectionPool(host: "127.0.0.1", port: address.port ?? 0, configuration: client)
    } else {
        inner = InProcessTransport(router: service.router)
    }
    func client(_ principal: V1.Principal) -> RPCClient {
        RPCClient(transport: SignedPrincipalTransport(inner: inner, signer: signer, principal: principal))
    }
    let poster = client(agent("spawner"))
    print("== \(options.callers) callers, \(options.threads) threads, \(options.tcp ? "tcp 127.0.0.1" : "in-process"), "
        + "\(options.seconds) s measured after \(options.warmup) s warm-up, \(ProcessInfo.processInfo.activeProcessorCount) cores")

    var threadIds: [String] = []
    for i in 0..<options.threads {
        threadIds.append(try await poster.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "bench \(i)")).id)
    }
    let threads = threadIds

    // Posts.
    let content = String(repeating: "x", count: 200)
    let posts = try await measure(callers: options.callers, warmup: options.warmup, seconds: options.seconds) { _ in
        let threadId = threads[Int.random(in: 0..<threads.count)]
        _ = try await poster.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: threadId, role: .agent, content: content))
    }
    let postsPerSecond = Double(posts.calls) / options.seconds
    print("posts: \(posts.calls) in \(options.seconds) s = \(Int(postsPerSecond))/s, p50 \(ms(posts.latency.valueAtPercentile(50))) ms, "
        + "p99 \(ms(posts.latency.valueAtPercentile(99))) ms, errors \(posts.errors), "
        + "cpu \(cpuPerCall(posts.cpuSeconds, posts.calls)) µs/post")

    // Lists.
    let lists = try await measure(callers: options.callers, warmup: options.warmup, seconds: options.seconds) { _ in
        let threadId = threads[Int.random(in: 0..<threads.count)]
        _ = try await poster.call(V1.MessagesService.list, V1.ListMessagesRequest(threadId: threadId, limit: 50))
    }
    let listP99 = lists.latency.valueAtPercentile(99)
    print("list (limit 50): \(Int(Double(lists.calls) / options.seconds))/s, p50 \(ms(lists.latency.valueAtPercentile(50))) ms, "
        + "p99 \(ms(listP99)) ms, errors \(lists.errors), cpu \(cpuPerCall(lists.cpuSeconds, lists.calls)) µs/list")

    // Tasks: pair i spawns for worker_i, which claims and completes it.
    let workers = (0..<pairs).map { client(agent("worker_\($0)")) }
    let tasks = try await measure(callers: pairs, warmup: options.warmup, seconds: options.seconds) { i in
        let threadId = threads[i % threads.count]
        _ = try await poster.call(
            V1.TasksService.spawn, V1.SpawnTaskRequest(targetAgent: "worker_\(i)", prompt: "work", threadId: threadId))
        guard let task = try await workers[i].call(V1.TasksService.claim, V1.ClaimTaskRequest(waitMs: 1_000)).task else {
            throw BenchmarkFailure("claim found nothing")
        }
        _ = try await workers[i].call(
            V1.TasksService.complete, V1.CompleteTaskRequest(taskId: task.id, leaseId: task.leaseId, result: "done"))
    }
    let roundTrips = Double(tasks.calls) / options.seconds
    print("tasks: \(Int(roundTrips)) spawn→claim→complete/s, p50 \(ms(tasks.latency.valueAtPercentile(50))) ms, "
        + "p99 \(ms(tasks.latency.valueAtPercentile(99))) ms, errors \(tasks.errors), "
        + "cpu \(cpuPerCall(tasks.cpuSeconds, tasks.calls)) µs/round trip")

    await server?.shutdownGracefully()
    print("RESULT posts_per_s \(Int(postsPerSecond))")
    print("RESULT list_p99_ms \(ms(listP99))")
    print("RESULT task_roundtrips_per_s \(Int(roundTrips))")
}

do {
    try await run()
} catch {
    FileHandle.standardError.write(Data("platos-bench-threads: \(error)\n".utf8))
    exit(1)
}
