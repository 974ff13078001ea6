import Foundation
import MemoryService
import NIOConcurrencyHelpers
import PlatosAuth
import PlatosProto
import PlatosRPC
import Testing
import PlatosTestSupport

/// A memory service on a fresh database in a temporary directory, called in-process with
/// principals stamped the way the gateway stamps them, and a clock the test moves by hand.
struct MemoryHarness: Sendable {
    static let secret = Array("memory-service-tests-internal-secret-0123456789".utf8)
    static let project = V1.Scope(org: "acme", project: "wally", env: "prod")

    let router: RPCRouter
    let signer: PrincipalSigner
    let clock: TestClock
    let store: SQLiteMemoryStore
    let directory = TemporaryDirectory()

    init() throws {
        store = try SQLiteMemoryStore.open(path: "\(directory.path)/memory.sqlite")
        clock = TestClock(1_700_000_000_000)
        signer = try PrincipalSigner(secret: Self.secret)
        let clock = self.clock
        router = MemoryHandlers(store: store, now: { clock.now }).router(signer: signer)
    }

    /// A client acting as `agent` (in `cluster`, "" for none) for end user `user`.
    func client(
        agent: String, cluster: String = "", user: String = "user-1", scope: V1.Scope = MemoryHarness.project,
        role: V1.Role = .agent
    ) -> MemoryClient {
        let principal = V1.Principal(scope: scope, agentId: agent, clusterId: cluster, userId: user, role: role)
        return MemoryClient(
            rpc: RPCClient(
                transport: StampingTransport(
                    inner: InProcessTransport(router: router), signer: signer, principal: principal)))
    }

    /// A client that reaches the service with no gateway stamp at all.
    func unsignedClient() -> MemoryClient {
        MemoryClient(rpc: RPCClient(transport: InProcessTransport(router: router)))
    }
}

/// Typed shortcuts for the calls tests make most.
struct MemoryClient: Sendable {
    let rpc: RPCClient

    @discardableResult
    func write(
        _ content: String, tags: [String] = [], metadata: [String: String] = [:], visibility: V1.Visibility = .shared,
        expiresAt: Int64 = 0, key: String = ""
    ) async throws -> V1.MemoryItem {
        let response = try await rpc.call(
            V1.MemoryService.write,
            V1.WriteMemoryRequest(
                content: content, tags: tags, metadata: metadata, visibility: visibility, expiresAtUnixMs: expiresAt,
                idempotencyKey: key))
        return try #require(response.item)
    }

    func recall(_ query: String, limit: UInt32 = 0, tags: [String] = []) async throws -> [V1.MemoryItem] {
        try await recallScored(query, limit: limit, tags: tags).compactMap(\.item)
    }

    func recallScored(_ query: String, limit: UInt32 = 0, tags: [String] = []) async throws -> [V1.RecalledMemory] {
        try await rpc.call(V1.MemoryService.recall, V1.RecallRequest(query: query, limit: limit, tags: tags)).items
    }

    func get(_ id: String) async throws -> V1.MemoryItem {
        try await rpc.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: id))
    }
}

/// A directory removed when the last harness holding it goes away.
final class TemporaryDirectory: Sendable {
    let path = TestDirectories.make("platos-memory-tests")

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Unix milliseconds under the test's control.
final class TestClock: Sendable {
    private let value: NIOLockedValueBox<Int64>
    init(_ start: Int64) { value = NIOLockedValueBox(start) }
    var now: Int64 { value.withLockedValue { $0 } }
    func advance(ms: Int64) { value.withLockedValue { $0 += ms } }
}

/// Adds the gateway's stamp to each call, as the gateway would.
struct StampingTransport: RPCTransport {
    let inner: any RPCTransport
    let signer: PrincipalSigner
    let principal: V1.Principal

    func stamped(_ metadata: Metadata, _ method: String) -> Metadata {
        var all = metadata
        for entry in (try? signer.stamp(principal, method: method)) ?? [] { all[entry.key] = entry.value }
        return all
    }

    func unary(method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?)
        async throws -> [UInt8]
    {
        try await inner.unary(
            method: method, payload: payload, metadata: stamped(metadata, method.name), deadline: deadline)
    }

    func serverStreaming(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        inner.serverStreaming(
            method: method, payload: payload, metadata: stamped(metadata, method.name), deadline: deadline)
    }
}

/// The RPC error `body` fails with, nil when it succeeds.
func rpcError<T>(_ body: () async throws -> T) async -> RPCError? {
    do {
        _ = try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(.unknown, "not an RPCError: \(error)")
    }
}
