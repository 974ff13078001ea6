import Foundation
import PlatosProto
import PlatosRPC
import Testing

/// A registry restored from an older copy of its database, under a running gateway: the gateway
/// watches from a version the registry no longer has. The registry says so (OUT_OF_RANGE), the
/// gateway watches again from the restored version, and a revocation made after the restore still
/// reaches it at once. Before, the registry kept the watcher's version and dropped every event up
/// to it, so the revoked token stayed usable from the gateway's cache.
@Suite(.serialized) struct RegistryRestoreTests {
    @Test func aRevocationAfterARestoreStillReachesTheGateway() async throws {
        let stack = try await SeedStoryTests.startStack()
        let port = stack.gateway.port
        let admin = SeedStoryTests.client(port, token: stack.adminSecret)
        var agents: [V1.Agent] = []
        for slug in ["a", "b", "c", "d"] {
            agents.append(try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: slug, name: slug)))
        }
        let token = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agents[0].id))
        _ = try await admin.call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "One", slug: "one", agentIds: [agents[0].id, agents[1].id]))

        // The backup: the registry's files as they are now (version 2), copied while it is down.
        let registryPort = stack.registry.port
        let dataDir = stack.registry.dataDir
        let backupDir = ServiceProcess.temporaryDataDirectory()
        await stack.registry.kill()
        try Self.copyDatabase(from: dataDir, to: backupDir)
        var registry = try await ServiceProcess("registry", dataDir: dataDir, extraArguments: ["--port", "\(registryPort)"])

        // Two more changes (versions 3 and 4), made on the registry itself so that the gateway
        // learns of them only through its watch: it has once d's principal (no cluster) is
        // replaced by one in cluster Two.
        let dToken = try await Self.eventually {
            try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agents[3].id)).secret
        }
        let asD = SeedStoryTests.client(port, token: dToken)
        #expect(try await asD.call(V1.ClustersService.list, V1.ListClustersRequest()).clusters.isEmpty)
        let direct = try TestSigner(dataDir: dataDir).client(
            port: registryPort, principal: V1.Principal(scope: V1.Scope(org: "acme", project: "wally", env: "prod"), role: .admin))
        _ = try await direct.call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "Two", slug: "two", agentIds: [agents[2].id, agents[3].id]))
        let seen = ContinuousClock.now + .seconds(10)
        var clusters: [V1.Cluster] = []
        while clusters.isEmpty, ContinuousClock.now < seen {
            clusters = try await asD.call(V1.ClustersService.list, V1.ListClustersRequest()).clusters
            if clusters.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(clusters.map(\.slug) == ["two"])

        // The restore: back to version 2, same port, the gateway still running.
        await registry.kill()
        try Self.copyDatabase(from: backupDir, to: dataDir)
        registry = try await ServiceProcess("registry", dataDir: dataDir, extraArguments: ["--port", "\(registryPort)"])

        // The agent's token works through the gateway again (and is cached there).
        let agent = SeedStoryTests.client(port, token: token.secret)
        _ = try await Self.eventually { try await agent.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: agents[0].id)) }
        _ = try await agent.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: agents[0].id))

        // Revoked after the restore, on the registry itself (an admin call through the gateway
        // would drop the gateway's whole cache by itself): version 3, below the 4 the gateway had
        // watched up to.
        _ = try await Self.eventually {
            try await direct.call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: try #require(token.token).id))
        }
        // Well inside the gateway's 30 s cache lifetime: only the watch can have dropped it.
        let deadline = ContinuousClock.now + .seconds(5)
        var code: RPCError.Code?
        while code != .unauthenticated, ContinuousClock.now < deadline {
            code = await SeedStoryTests.code {
                _ = try await agent.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: agents[0].id))
            }
            if code != .unauthenticated { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(code == .unauthenticated)

        _ = await registry.stop()
        for process in [stack.gateway, stack.threads, stack.memory] { _ = await process.stop() }
    }

    /// The registry's database files (the database and its WAL), from one data directory to another.
    static func copyDatabase(from source: String, to destination: String) throws {
        let files = FileManager.default
        try files.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for suffix in ["", "-wal", "-shm"] {
            let from = "\(source)/registry.sqlite\(suffix)", to = "\(destination)/registry.sqlite\(suffix)"
            if files.fileExists(atPath: to) { try files.removeItem(atPath: to) }
            if files.fileExists(atPath: from) { try files.copyItem(atPath: from, toPath: to) }
        }
    }

    /// `body`'s result once it succeeds, retrying for up to 20 s while the gateway reconnects to
    /// the registry (its calls fail with UNAVAILABLE meanwhile).
    static func eventually<T>(_ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            do {
                return try await body()
            } catch let error as RPCError where error.code == .unavailable && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}
