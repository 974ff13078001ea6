import Foundation
import PlatosProto
import PlatosRPC
import PlatosTestSupport
import Testing

/// The gateway's per-token rate limit, on the real stack.
@Suite(.serialized) struct RateLimitEndToEndTests {
    /// Past its burst a token gets RESOURCE_EXHAUSTED with a retry hint; another token does not.
    /// A refused call costs the backends nothing: not even the task lookup `x-platos-task` asks for.
    @Test func aTokenOverItsRateIsRefusedBeforeAnyBackendWork() async throws {
        let stack = try await SeedStoryTests.startStack(gatewayArguments: [
            "--rate-limit-per-second", "1", "--rate-limit-burst", "2",
        ])
        let admin = SeedStoryTests.client(stack.gateway.port, token: stack.adminSecret)
        // The admin token is held to the same rate: its calls wait as the hint says.
        let agent = try await Self.patiently {
            try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "a", name: "A"))
        }
        var tokens: [String] = []
        for _ in 0..<2 {
            tokens.append(try await Self.patiently {
                try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id)).secret
            })
        }
        func taskLookups() async throws -> Double {
            let samples = try await AdminHTTPEndToEndTests.scrape(stack.threads)
            return AdminHTTPEndToEndTests.total(samples, "rpc_server_calls_total", ["method": "tasks.get"])
        }
        let lookupsBefore = try await taskLookups()

        let worker = SeedStoryTests.client(stack.gateway.port, token: tokens[0], user: "u1", task: "tsk_nope")
        var codes: [RPCError.Code] = []
        var retryHints: [Int] = []
        for _ in 0..<20 {
            do {
                _ = try await worker.call(V1.ThreadsService.list, V1.ListThreadsRequest())
                codes.append(.ok)
            } catch let error as RPCError {
                codes.append(error.code)
                if let hint = error.details[MetadataKey.retryAfterMs] { retryHints.append(Int(hint) ?? -1) }
            }
        }
        // The burst of 2 passes authentication and reaches the task lookup (which finds no such
        // task); then calls are refused (a slow machine may see the bucket refill once or twice),
        // each with a hint of at most a second (1 call/s), and only admitted calls looked the task up.
        let admitted = codes.filter { $0 != .resourceExhausted }.count
        #expect(codes.prefix(2) == [.notFound, .notFound], "\(codes)")
        #expect(admitted < codes.count, "\(codes)")
        #expect(retryHints.count == codes.count - admitted && retryHints.allSatisfy { (1...1000).contains($0) }, "\(retryHints)")
        #expect(try await taskLookups() - lookupsBefore == Double(admitted))

        // Another token of the same agent has its own bucket.
        let other = SeedStoryTests.client(stack.gateway.port, token: tokens[1], user: "u1")
        _ = try await other.call(V1.ThreadsService.list, V1.ListThreadsRequest())

        for process in [stack.gateway, stack.threads, stack.memory, stack.registry] { _ = await process.stop() }
    }

    /// `body`, again after each RESOURCE_EXHAUSTED, once its `retry-after-ms` has passed.
    static func patiently<T>(_ body: () async throws -> T) async throws -> T {
        while true {
            do {
                return try await body()
            } catch let error as RPCError where error.code == .resourceExhausted {
                let wait = error.details[MetadataKey.retryAfterMs].flatMap { Int($0) } ?? 1000
                try await Task.sleep(for: .milliseconds(wait))
            }
        }
    }
}
