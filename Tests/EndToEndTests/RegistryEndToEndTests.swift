import Foundation
import GRDB
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosTestSupport
import Testing

/// The real `platos-registry` executable, over TCP.
@Suite(.serialized) struct RegistryEndToEndTests {
    static let scope = V1.Scope(org: "acme", project: "wally", env: "prod")

    @Test func servesOverTCPAndKeepsEverythingAcrossARestart() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        var registry = try await ServiceProcess("registry", dataDir: dataDir)
        let signer = try TestSigner(dataDir: dataDir)
        var admin = signer.client(port: registry.port, principal: V1.Principal(scope: Self.scope, role: .admin))

        let chat = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "wally-chat", name: "Wally Chat"))
        let bgo = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "wally-bgo", name: "Wally BGO"))
        let wally = try await admin.call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "Wally", slug: "wally", agentIds: [chat.id, bgo.id]))
        let token = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: chat.id))

        // Straight to the port without the gateway's signature: nothing.
        let direct = RPCClient(transport: RPCConnectionPool(host: "127.0.0.1", port: registry.port))
        do {
            _ = try await direct.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: chat.id))
            Issue.record("an unsigned call was served")
        } catch let error as RPCError {
            #expect(error.code == .unauthenticated)
        }
        // health.check needs no principal, for orchestrators.
        #expect(try await direct.call(V1.HealthService.check, V1.HealthCheckRequest()).status == .serving)

        #expect(await registry.stop() == 0)

        // Same data directory, new process: everything is still there.
        registry = try await ServiceProcess("registry", dataDir: dataDir)
        admin = signer.client(port: registry.port, principal: V1.Principal(scope: Self.scope, role: .admin))
        let reread = try await admin.call(V1.ClustersService.get, V1.GetClusterRequest(clusterId: wally.id))
        #expect(Set(reread.agentIds) == [chat.id, bgo.id])
        let gateway = signer.client(port: registry.port, principal: ServicePrincipal.gateway)
        let resolved = try await gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: token.secret))
        #expect(resolved.principal?.agentId == chat.id)
        #expect(resolved.principal?.clusterId == wally.id)
        #expect(await registry.stop() == 0)
    }

    /// 64 admins creating agents and issuing tokens, SIGKILL in the middle, restart: every agent
    /// and token whose creation was acknowledged is there, and the file is intact.
    @Test func acknowledgedWritesSurviveKill9() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let first = try await ServiceProcess("registry", dataDir: dataDir)
        let signer = try TestSigner(dataDir: dataDir)
        let admin = signer.client(port: first.port, principal: V1.Principal(scope: Self.scope, role: .admin))

        let pairs = try await writeConcurrently(writers: 64) { writer, n -> (agent: String, secret: String)? in
            guard
                let agent = try? await admin.call(
                    V1.AgentsService.create, V1.CreateAgentRequest(slug: "w\(writer)-n\(n)", name: "W")),
                let token = try? await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id))
            else { return nil }
            return (agent.id, token.secret)
        } interrupt: { acknowledged in
            // Kill while writes are in flight, once enough were acknowledged.
            try await waitForProgress(acknowledged, enough: 1000, minimum: 100)
            await first.kill()
        }
        #expect(pairs.count >= 100)

        let second = try await ServiceProcess("registry", dataDir: dataDir)
        let reader = signer.client(port: second.port, principal: V1.Principal(scope: Self.scope, role: .admin))
        let gateway = signer.client(port: second.port, principal: ServicePrincipal.gateway)
        var missing = 0
        for (agent, secret) in pairs {
            if (try? await reader.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: agent))) == nil { missing += 1 }
            let resolved = try? await gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: secret))
            if resolved?.principal?.agentId != agent { missing += 1 }
        }
        #expect(missing == 0)
        #expect(await second.stop() == 0)
        let database = try DatabaseQueue(path: "\(dataDir)/registry.sqlite")
        let integrity = try await database.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == "ok")
    }

    @Test func theBootstrapCommandIssuesAWorkingAdminToken() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let (secret, status) = try ServiceProcess.issueAdminToken(dataDir: dataDir)
        #expect(status == 0)
        #expect(secret.hasPrefix("pt_tok_"))

        let registry = try await ServiceProcess("registry", dataDir: dataDir)
        let gateway = try TestSigner(dataDir: dataDir).client(port: registry.port, principal: ServicePrincipal.gateway)
        let resolved = try await gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: secret))
        #expect(resolved.principal?.role == .admin)
        #expect(resolved.principal?.scope == Self.scope)
        #expect(await registry.stop() == 0)
    }

    /// `platos-registry health` finds the service where the service itself would look: the port in
    /// the config file, overridden by the environment and then by a flag.
    @Test func theHealthCommandReadsTheSameConfiguration() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let registry = try await ServiceProcess("registry", dataDir: dataDir)
        let config = dataDir + "/platos.toml"
        try "[registry]\nport = \(registry.port)\n".write(toFile: config, atomically: true, encoding: .utf8)

        func health(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (Int32, String) {
            let run = Process()
            run.executableURL = ServiceProcess.binDirectory.appendingPathComponent("platos-registry")
            run.arguments = ["health"] + arguments
            var environment = ProcessInfo.processInfo.environment
            for key in environment.keys where key.hasPrefix("PLATOS_") { environment.removeValue(forKey: key) }
            run.environment = environment.merging(extra) { _, new in new }
            let out = Pipe()
            run.standardOutput = out
            try run.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            run.waitUntilExit()
            return (run.terminationStatus, text)
        }

        let fromFile = try health(["--config", config])
        #expect(fromFile.0 == 0, "\(fromFile.1)")
        #expect(fromFile.1.contains("127.0.0.1:\(registry.port): SERVING"))
        #expect(try health([], environment: ["PLATOS_CONFIG": config]).0 == 0)
        // A free port named by the environment wins over the file, and nobody answers there.
        let unused = try health(["--config", config], environment: ["PLATOS_REGISTRY_PORT": "1"])
        #expect(unused.0 == 1)
        #expect(unused.1.contains("127.0.0.1:1: NOT SERVING"))
        let flagWins = try health(["--config", config, "--port", "\(registry.port)"], environment: ["PLATOS_REGISTRY_PORT": "1"])
        #expect(flagWins.0 == 0)
        #expect(await registry.stop() == 0)
    }
}
