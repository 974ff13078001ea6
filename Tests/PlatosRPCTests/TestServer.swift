import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PlatosProto
@testable import PlatosRPC
import ProtobufCSwift

/// Records what handlers observed, so tests can assert on server-side behaviour.
final class Observations: Sendable {
    private let state = NIOLockedValueBox([String: [String]]())

    func record(_ key: String, _ value: String = "") {
        state.withLockedValue { $0[key, default: []].append(value) }
    }

    func values(_ key: String) -> [String] { state.withLockedValue { $0[key] ?? [] } }
    func count(_ key: String) -> Int { values(key).count }

    /// Polls until `key` has `n` records or the deadline passes.
    func wait(for key: String, count n: Int = 1, within limit: Duration = .seconds(15)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if count(key) >= n { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return count(key) >= n
    }
}

/// Handlers on real method descriptors (the runtime does not care what a method means):
/// - `memory.get`: echoes `memory_id` into `MemoryItem.id` after a random pause of up to 20 ms.
/// - `memory.recall`: sleeps for `limit` ms, recording cancellation; with query "downstream" it
///   calls `memory.history` on `downstreamPort` and returns the budget that call saw.
/// - `memory.history`: records the remaining budget of its caller's deadline.
/// - `registry.watch`: streams `after_version` events numbered 1...n; throws after them when
///   asked to (`after_version` = 999).
/// - `tasks.watch`: streams forever until cancelled, recording when it stops.
/// - `memory.list`: after 300 ms, answers one memory of 3 MiB (an answer that takes a while to
///   write).
enum TestRouter {
    /// Built once: making 3 MiB in a debug build takes the event loop a while.
    static let largeContent = String(repeating: "m", count: 3 << 20)

    static func make(_ observations: Observations, downstream: @escaping @Sendable () -> RPCClient? = { nil })
        -> RPCRouter
    {
        var router = RPCRouter()
        router.register(V1.MemoryService.get) { request, _ in
            observations.record("get.started")
            try await Task.sleep(for: .microseconds(Int.random(in: 0...20_000)))
            return V1.MemoryItem(id: request.memoryId)
        }
        router.register(V1.MemoryService.recall) { request, context in
            observations.record("recall.started")
            if request.query == "downstream", let client = downstream() {
                let history = try await client.call(V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: "x"))
                return V1.RecallResponse(items: [V1.RecalledMemory(item: V1.MemoryItem(content: history.nextPageToken))])
            }
            do {
                try await Task.sleep(for: .milliseconds(Int(request.limit)))
            } catch {
                observations.record("recall.cancelled")
                throw error
            }
            observations.record("recall.finished")
            return V1.RecallResponse()
        }
        router.register(V1.MemoryService.history) { _, context in
            let remaining = context.remaining.map { "\($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000)" } ?? "none"
            observations.record("history.remaining", remaining)
            return V1.MemoryHistoryResponse(nextPageToken: remaining)
        }
        router.register(V1.ThreadsService.get) { request, _ in
            // Ignores cancellation: stands for a handler inside work it cannot interrupt. Sleeps
            // `thread_id` milliseconds.
            let ms = Int(request.threadId) ?? 0
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) { done.resume() }
            }
            observations.record("threads.get.finished")
            return V1.Thread(id: request.threadId)
        }
        router.register(V1.RegistryService.watch) { request, _, writer in
            let n = request.afterVersion == 999 ? 10 : request.afterVersion
            for version in 1...max(1, n) {
                try await writer.send(V1.MembershipEvent(version: version))
            }
            if request.afterVersion == 999 { throw RPCError(.failedPrecondition, "the watch broke on purpose") }
        }
        router.register(V1.MemoryService.list) { _, _ in
            observations.record("list.started")
            try await Task.sleep(for: .milliseconds(300))
            observations.record("list.finished")
            return V1.ListMemoriesResponse(items: [V1.MemoryItem(content: largeContent)])
        }
        router.register(V1.TasksService.watch) { _, _, writer in
            var i = 0
            do {
                while true {
                    i += 1
                    try await writer.send(V1.Task(id: "\(i)"))
                    try await Task.sleep(for: .milliseconds(1))
                }
            } catch {
                observations.record("tasks.watch.stopped", "\(i)")
                throw error
            }
        }
        return router
    }
}

/// Starts a server on a free port for one test.
func startServer(
    _ router: RPCRouter, configure: (inout RPCServerConfiguration) -> Void = { _ in }
) async throws -> (RPCServer, Int) {
    var configuration = RPCServerConfiguration(serverName: "test")
    configure(&configuration)
    let server = RPCServer(configuration: configuration, router: router)
    let address = try await server.start()
    return (server, address.port!)
}

func client(_ port: Int, configure: (inout RPCClientConfiguration) -> Void = { _ in }) -> (RPCClient, RPCConnectionPool) {
    var configuration = RPCClientConfiguration()
    configure(&configuration)
    let pool = RPCConnectionPool(host: "127.0.0.1", port: port, configuration: configuration)
    return (RPCClient(transport: pool), pool)
}

extension RPCServer {
    /// Polls until no connection handler is left in memory (every closed connection freed), or
    /// `limit` passes; whether that happened.
    func connectionHandlersFreed(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while liveConnectionHandlers > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return liveConnectionHandlers == 0
    }
}
