import PlatosAuth
import PlatosProto
import PlatosRPC
import Testing

/// Every status the service answers with, and messages that name the field at fault.
@Suite struct MemoryErrorTests {
    let harness: MemoryHarness
    let client: MemoryClient

    init() throws {
        harness = try MemoryHarness()
        client = harness.client(agent: "wally-chat", cluster: "wally")
    }

    @Test func unsignedCallsAreUnauthenticated() async throws {
        let unsigned = harness.unsignedClient()
        #expect(await rpcError { try await unsigned.write("x") }?.code == .unauthenticated)
        #expect(await rpcError { try await unsigned.recall("x") }?.code == .unauthenticated)
        #expect(await rpcError { try await unsigned.get("mem_x") }?.code == .unauthenticated)
    }

    @Test func aPrincipalSignedWithAnotherSecretIsUnauthenticated() async throws {
        let forger = try PrincipalSigner(secret: Array("a-different-secret-of-at-least-32-bytes!".utf8))
        let principal = V1.Principal(
            scope: MemoryHarness.project, agentId: "wally-chat", clusterId: "wally", userId: "u", role: .agent)
        let forged = MemoryClient(
            rpc: RPCClient(
                transport: StampingTransport(
                    inner: InProcessTransport(router: harness.router), signer: forger, principal: principal)))
        #expect(await rpcError { try await forged.recall("x") }?.code == .unauthenticated)
    }

    @Test func anAdminPrincipalWithoutAnAgentIsDenied() async throws {
        let admin = harness.client(agent: "", role: .admin)
        let error = await rpcError { try await admin.write("x") }
        #expect(error?.code == .permissionDenied)
    }

    @Test func writeAndRecallNeedAUser() async throws {
        let noUser = harness.client(agent: "wally-chat", cluster: "wally", user: "")
        let write = await rpcError { try await noUser.write("x") }
        #expect(write?.code == .invalidArgument)
        #expect(write?.message.contains("user_id") == true)
        #expect(await rpcError { try await noUser.recall("x") }?.code == .invalidArgument)
    }

    @Test(arguments: [
        (V1.WriteMemoryRequest(content: ""), "content is required"),
        (V1.WriteMemoryRequest(content: String(repeating: "a", count: 64 * 1024 + 1)), "content is 65537 bytes"),
        (V1.WriteMemoryRequest(content: "x", tags: (0..<33).map { "t\($0)" }), "tags has 33 entries"),
        (V1.WriteMemoryRequest(content: "x", tags: ["ok", ""]), "tags[1] is empty"),
        (
            V1.WriteMemoryRequest(content: "x", metadata: ["k": String(repeating: "v", count: 16 * 1024)]),
            "metadata is 16385 bytes"
        ),
        (V1.WriteMemoryRequest(content: "x", visibility: .unrecognized(9)), "visibility 9"),
        (V1.WriteMemoryRequest(content: "x", expiresAtUnixMs: -1), "expires_at_unix_ms"),
        (
            V1.WriteMemoryRequest(content: "x", idempotencyKey: String(repeating: "k", count: 257)),
            "idempotency_key is 257 bytes"
        ),
    ])
    func invalidWritesNameTheirField(_ request: V1.WriteMemoryRequest, _ message: String) async throws {
        let error = await rpcError { try await client.rpc.call(V1.MemoryService.write, request) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
    }

    @Test func limitsAreInclusive() async throws {
        let item = try await client.write(
            String(repeating: "a", count: 64 * 1024), tags: (0..<32).map { "t\($0)" },
            metadata: ["k": String(repeating: "v", count: 16 * 1024 - 1)])
        #expect(item.content.utf8.count == 64 * 1024)
        #expect(item.tags.count == 32)
        _ = try await client.recall(String(repeating: "q", count: 1024))
    }

    @Test func invalidRecallsNameTheirField() async throws {
        let tooManyTags = await rpcError {
            try await client.rpc.call(
                V1.MemoryService.recall, V1.RecallRequest(query: "x", tags: (0..<33).map { "t\($0)" }))
        }
        #expect(tooManyTags?.code == .invalidArgument)
        #expect(tooManyTags?.message.contains("tags") == true)
        let backwards = await rpcError {
            try await client.rpc.call(
                V1.MemoryService.recall, V1.RecallRequest(query: "x", sinceUnixMs: 10, untilUnixMs: 5))
        }
        #expect(backwards?.code == .invalidArgument)
        #expect(backwards?.message.contains("since_unix_ms") == true)
    }

    @Test func aMissingIdIsInvalidAndAnUnknownIdIsNotFound() async throws {
        let missing = await rpcError { try await client.get("") }
        #expect(missing?.code == .invalidArgument)
        #expect(missing?.message.contains("memory_id") == true)
        let unknown = await rpcError { try await client.get("mem_nope") }
        #expect(unknown?.code == .notFound)
    }

    @Test func outOfScopeReadsTheSameAsNonexistent() async throws {
        let item = try await client.write("mine")
        let stranger = harness.client(agent: "eve-chat", cluster: "eve")
        let outOfScope = await rpcError { try await stranger.get(item.id) }
        let nonexistent = await rpcError { try await stranger.get("mem_00000000000000000000000000000000") }
        #expect(outOfScope?.code == .notFound)
        #expect(outOfScope?.message == "memory '\(item.id)' not found")
        #expect(nonexistent?.message == "memory 'mem_00000000000000000000000000000000' not found")
        for call in [
            { _ = try await stranger.rpc.call(V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: item.id)) },
            { _ = try await stranger.rpc.call(V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: item.id)) },
            {
                _ = try await stranger.rpc.call(
                    V1.MemoryService.update,
                    V1.UpdateMemoryRequest(memoryId: item.id, content: V1.StringValue(value: "stolen")))
            },
        ] as [@Sendable () async throws -> Void] {
            #expect(await rpcError(call)?.code == .notFound)
        }
        #expect(try await client.get(item.id).content == "mine")
    }

    @Test func anUpdateWithNothingToChangeIsInvalid() async throws {
        let item = try await client.write("x")
        let error = await rpcError {
            try await client.rpc.call(V1.MemoryService.update, V1.UpdateMemoryRequest(memoryId: item.id))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("nothing to update") == true)
    }

    @Test func anUpdateThatWouldExceedTheTagLimitIsInvalid() async throws {
        let item = try await client.write("x", tags: (0..<30).map { "a\($0)" })
        let error = await rpcError {
            try await client.rpc.call(
                V1.MemoryService.update, V1.UpdateMemoryRequest(memoryId: item.id, tags: (0..<3).map { "b\($0)" }))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("tags would have 33 entries") == true)
    }

    @Test func aForeignPageTokenIsInvalid() async throws {
        let error = await rpcError {
            try await client.rpc.call(
                V1.MemoryService.list, V1.ListMemoriesRequest(page: V1.PageRequest(pageSize: 1, pageToken: "garbage!")))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("page.page_token") == true)
    }

    @Test func forgettingAnotherUserIsDenied() async throws {
        let error = await rpcError {
            try await client.rpc.call(V1.MemoryService.forgetUser, V1.ForgetUserRequest(userId: "someone-else"))
        }
        #expect(error?.code == .permissionDenied)
    }
}
