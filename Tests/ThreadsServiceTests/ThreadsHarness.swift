import Foundation
import NIOConcurrencyHelpers
import PlatosAuth
import PlatosProto
import PlatosRPC
import Testing
import ThreadsService
import PlatosTestSupport

/// An agent as a test calls with it: the principal the gateway would sign for it.
struct TestAgent {
    var id: String
    var cluster: String = ""
    var slug: String
    var user: String = ""

    func principal(_ scope: V1.Scope) -> V1.Principal {
        V1.Principal(scope: scope, agentId: id, clusterId: cluster, userId: user, role: .agent)
    }

    func acting(for user: String) -> TestAgent {
        var copy = self
        copy.user = user
        return copy
    }
}

/// A time that only moves when a test moves it, so a lease can run out without waiting.
final class ManualClock: Sendable {
    private let millis = NIOLockedValueBox<Int64>(1_700_000_000_000)
    var now: Int64 { millis.withLockedValue { $0 } }
    func advance(ms: Int64) { millis.withLockedValue { $0 += ms } }
}

/// The threads service on a fresh database in a temporary directory, called in-process with
/// principals signed as the gateway signs them. Two clusters, c1 (chat and bgo) and c2
/// (stranger), and two agents in none (loner, drifter).
struct ThreadsHarness {
    static let scope = V1.Scope(org: "acme", project: "wally", env: "dev")
    static let chat = TestAgent(id: "agent_chat", cluster: "cluster_one", slug: "wally-chat", user: "user_1")
    static let bgo = TestAgent(id: "agent_bgo", cluster: "cluster_one", slug: "wally-bgo")
    static let stranger = TestAgent(id: "agent_stranger", cluster: "cluster_two", slug: "stranger", user: "user_1")
    static let strangerSibling = TestAgent(id: "agent_stranger_2", cluster: "cluster_two", slug: "stranger-2")
    static let loner = TestAgent(id: "agent_loner", slug: "loner", user: "user_1")
    static let drifter = TestAgent(id: "agent_drifter", slug: "drifter")

    let service: ThreadsService
    let store: SQLiteThreadsStore
    let router: RPCRouter
    let signer: PrincipalSigner
    let clock = ManualClock()
    let directory = InMemoryClusterDirectory()
    let databasePath: String

    /// `configure` changes the service's settings last (clock and lease policy are set before it).
    init(lease: TaskLeasePolicy = TaskLeasePolicy(), configure: (inout ThreadsServiceConfiguration) -> Void = { _ in })
        throws
    {
        databasePath = TestDirectories.make("threads-test") + "/threads.sqlite"
        store = try SQLiteThreadsStore.open(path: databasePath)
        signer = try PrincipalSigner(secret: Array("a test secret of at least thirty-two bytes".utf8))
        for agent in [Self.chat, Self.bgo, Self.stranger, Self.strangerSibling, Self.loner, Self.drifter] {
            directory.set(DirectoryAgent(agentId: agent.id, clusterId: agent.cluster), slug: agent.slug, in: Self.scope)
        }
        var configuration = ThreadsServiceConfiguration()
        configuration.lease = lease
        let clock = self.clock
        configuration.now = { clock.now }
        configure(&configuration)
        service = ThreadsService(store: store, directory: directory, signer: signer, configuration: configuration)
        router = service.router
    }

    /// A client that calls as `agent`, through the same bytes and signature check as over TCP.
    func client(_ agent: TestAgent) -> RPCClient {
        RPCClient(
            transport: SignedPrincipalTransport(
                inner: InProcessTransport(router: router), signer: signer, principal: agent.principal(Self.scope)))
    }

    /// A client that reaches the service without the gateway's stamp.
    func unsignedClient() -> RPCClient {
        RPCClient(transport: InProcessTransport(router: router))
    }

    func createThread(_ agent: TestAgent, title: String = "a thread") async throws -> V1.Thread {
        try await client(agent).call(V1.ThreadsService.create, V1.CreateThreadRequest(title: title))
    }

    @discardableResult
    func post(_ agent: TestAgent, _ threadId: String, _ content: String) async throws -> V1.Message {
        try await client(agent).call(
            V1.MessagesService.post, V1.PostMessageRequest(threadId: threadId, role: .agent, content: content))
    }
}

/// The RPC error `body` throws, failing the test when it throws none or another kind of error.
func rpcError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected an RPCError, the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        Issue.record("expected an RPCError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
