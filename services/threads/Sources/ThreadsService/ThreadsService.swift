import Foundation
import Logging
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosService

/// Settings of the threads service that tests and benchmarks change.
public struct ThreadsServiceConfiguration: Sendable {
    public var lease = TaskLeasePolicy()
    /// How often the lease reaper looks for lapsed leases.
    public var reapInterval: Duration = .seconds(1)
    /// The time, in Unix milliseconds. Tests replace it to let a lease run out without waiting.
    public var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    /// The longest `wait_ms` a claim accepts (threads.proto promises 30 s). Tests raise it so that
    /// a long poll outlasts their time limit: then only a wake-up can answer it in time.
    var maxClaimWaitMs: UInt32 = RequestLimits.maxWaitMs

    public init() {}
}

/// `platos-threads`: shared threads, attributed messages and spawn_bgo tasks (DESIGN.md §5.3).
///
/// Every method requires the gateway's signed principal. Handlers turn requests into
/// ``ThreadsStore`` calls under the caller's ``ThreadAccess`` and wake in-process watchers and
/// long-polling workers after each commit.
public final class ThreadsService: Sendable {
    let store: any ThreadsStore
    let directory: any ClusterDirectory
    let signer: PrincipalSigner
    let configuration: ThreadsServiceConfiguration
    let logger: Logger

    /// Keyed by thread id: a message was posted, or the thread was deleted.
    let messageSignal = ChangeSignal<String>()
    /// Keyed by thread id: a task of the thread changed state.
    let taskSignal = ChangeSignal<String>()
    /// Keyed by ``queueKey(cluster:agent:)``: a task may have become claimable for that agent.
    let queueSignal = ChangeSignal<String>()

    public init(
        store: any ThreadsStore, directory: any ClusterDirectory, signer: PrincipalSigner,
        configuration: ThreadsServiceConfiguration = .init(), logger: Logger = Logger(label: "platos.threads")
    ) {
        self.store = store
        self.directory = directory
        self.signer = signer
        self.configuration = configuration
        self.logger = logger
    }

    /// Every threads, messages and tasks method, behind signature verification.
    public var router: RPCRouter {
        var routes = AuthenticatedRouter(signer: signer)
        registerThreads(&routes)
        registerMessages(&routes)
        registerTasks(&routes)
        return routes.router
    }

    /// The caller's reach. Every method needs an agent: threads and tasks belong to agents and
    /// their clusters, and an admin principal tied to no agent owns neither.
    func access(_ caller: Caller) throws -> ThreadAccess {
        guard !caller.agentId.isEmpty else { throw ThreadsErrors.notAnAgent }
        return ThreadAccess(
            scope: caller.scope, agentId: caller.agentId, clusterId: caller.clusterId, userId: caller.userId)
    }

    var now: Int64 { configuration.now() }

    static func queueKey(cluster: String, agent: String) -> String { "\(cluster)/\(agent)" }

    /// Wakes whoever follows these tasks: their thread's task watchers, and, for a task back in
    /// the queue, the agent's long-polling claims.
    func announce(_ tasks: [V1.Task]) {
        for task in tasks {
            taskSignal.signal(task.threadId)
            if task.state == .queued {
                queueSignal.signal(Self.queueKey(cluster: task.clusterId, agent: task.targetAgentId))
            }
        }
    }
}
