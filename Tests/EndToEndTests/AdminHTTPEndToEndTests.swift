import Foundation
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosTestSupport
import Testing

/// `/metrics` and `/healthz` on the admin port of each of the four real executables.
@Suite(.serialized) struct AdminHTTPEndToEndTests {
    /// Every process's `/metrics`, parsed (which fails on any line that is not Prometheus text).
    static func scrape(_ process: ServiceProcess) async throws -> [PrometheusSample] {
        let response = try await HTTPTestClient.request("/metrics", port: process.adminPort)
        #expect(response.status == 200, "platos-\(process.name) /metrics")
        #expect(response.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return try PrometheusText.parse(response.body)
    }

    /// The sum of `name` over the series whose labels include `labels` (0 when there is none yet).
    static func total(_ samples: [PrometheusSample], _ name: String, _ labels: [String: String] = [:]) -> Double {
        PrometheusText.values(samples, name, labels).reduce(0, +)
    }

    @Test func everyProcessServesMetricsAndHealth() async throws {
        let stack = try await SeedStoryTests.startStack()
        let processes = [stack.registry, stack.memory, stack.threads, stack.gateway]

        var before: [String: [PrometheusSample]] = [:]
        for process in processes {
            #expect(process.adminPort > 0 && process.adminPort != process.port)
            let health = try await HTTPTestClient.request("/healthz", port: process.adminPort)
            #expect(health.status == 200, "platos-\(process.name) /healthz")
            #expect(health.body == "ok\n")
            #expect(try await HTTPTestClient.request("/nope", port: process.adminPort).status == 404)
            let samples = try await Self.scrape(process)
            let server = ["server": "platos-\(process.name)"]
            #expect(!PrometheusText.values(samples, "rpc_server_calls_in_flight", server).isEmpty, "\(process.name)")
            #expect(!PrometheusText.values(samples, "rpc_server_connections", server).isEmpty, "\(process.name)")
            if process.name != "gateway" {
                // Each backend's group-commit writer exports its batch sizes from the start.
                #expect(!PrometheusText.values(samples, "db_commit_batch_size_count", ["database": process.name]).isEmpty, "\(process.name)")
            }
            before[process.name] = samples
        }

        // Calls through the gateway: admin calls (registry), a memory write and recall, a thread
        // and a post (threads), and one call that fails with NOT_FOUND.
        let admin = SeedStoryTests.client(stack.gateway.port, token: stack.adminSecret)
        let chat = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "chat", name: "Chat"))
        let bgo = try await admin.call(V1.AgentsService.create, V1.CreateAgentRequest(slug: "bgo", name: "BGO"))
        _ = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "C", slug: "c", agentIds: [chat.id, bgo.id]))
        let token = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: chat.id)).secret
        let agent = SeedStoryTests.client(stack.gateway.port, token: token, user: "user-U")
        for i in 0..<3 {
            _ = try await agent.call(V1.MemoryService.write, V1.WriteMemoryRequest(content: "note \(i) about metrics"))
        }
        _ = try await agent.call(V1.MemoryService.recall, V1.RecallRequest(query: "metrics", limit: 5))
        let thread = try await agent.call(V1.ThreadsService.create, V1.CreateThreadRequest(title: "ops"))
        _ = try await agent.call(V1.MessagesService.post, V1.PostMessageRequest(threadId: thread.id, role: .agent, content: "hi"))
        #expect(await SeedStoryTests.code {
            _ = try await agent.call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: "no-such-thread"))
        } == .notFound)

        var after: [String: [PrometheusSample]] = [:]
        for process in processes { after[process.name] = try await Self.scrape(process) }
        func grew(_ process: String, _ name: String, _ labels: [String: String]) -> Bool {
            Self.total(after[process]!, name, labels) > Self.total(before[process]!, name, labels)
        }
        let ok = ["code": "OK"]

        // The gateway counted every method it routed; each backend counted what it served.
        for method in ["agents.create", "clusters.create", "tokens.issue", "memory.write", "memory.recall", "threads.create", "messages.post"] {
            #expect(grew("gateway", "rpc_server_calls_total", ok.merging(["method": method]) { $1 }), "gateway \(method)")
        }
        #expect(Self.total(after["gateway"]!, "rpc_server_calls_total", ["method": "memory.write", "code": "OK"]) == 3)
        #expect(grew("registry", "rpc_server_calls_total", ok.merging(["method": "agents.create"]) { $1 }))
        #expect(grew("memory", "rpc_server_calls_total", ok.merging(["method": "memory.write"]) { $1 }))
        #expect(grew("threads", "rpc_server_calls_total", ok.merging(["method": "messages.post"]) { $1 }))

        // Errors by code, on the gateway and on the backend that answered.
        #expect(grew("gateway", "rpc_server_errors_total", ["code": "NOT_FOUND"]))
        #expect(grew("threads", "rpc_server_errors_total", ["code": "NOT_FOUND"]))
        #expect(grew("gateway", "rpc_server_calls_total", ["method": "threads.get", "code": "NOT_FOUND"]))

        // Latency histograms: one observation per call, cumulative buckets ending in +Inf.
        let writes = ["server": "platos-memory", "method": "memory.write"]
        #expect(Self.total(after["memory"]!, "rpc_server_call_duration_seconds_count", writes) == 3)
        #expect(Self.total(after["memory"]!, "rpc_server_call_duration_seconds_bucket", writes.merging(["le": "+Inf"]) { $1 }) == 3)
        #expect(Self.total(after["memory"]!, "rpc_server_call_duration_seconds_sum", writes) > 0)

        // Group commits: the backends that wrote recorded their batch sizes.
        for database in ["registry", "memory", "threads"] {
            #expect(grew(database, "db_commit_batch_size_count", ["database": database]), "\(database)")
            #expect(grew(database, "db_commits_total", ["database": database]), "\(database)")
        }
        // The gateway holds connections to its backends; the backends see them.
        #expect(Self.total(after["memory"]!, "rpc_server_connections") >= 1)

        #expect(await stack.stop() == [0, 0, 0, 0])
    }

    /// `rpc_server_calls_in_flight` counts a call from its start to its end, once: it reads 1
    /// while a stream is open, and 0 after streams that ended by cancellation, by deadline and
    /// by their connection closing (in each case the server gives up on the call first and its
    /// handler returns later; counting both ends used to leave the gauge below zero).
    @Test func theInFlightGaugeFollowsCallsAndReturnsToZero() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let registry = try await ServiceProcess("registry", dataDir: dataDir)
        let signer = try TestSigner(dataDir: dataDir)
        let client = signer.client(port: registry.port, principal: ServicePrincipal.gateway)
        let server = ["server": "platos-registry"]
        let watches = ["server": "platos-registry", "method": "registry.watch"]
        /// Polls `/metrics` (up to 10 s) until `done` holds for a scrape; returns that scrape.
        func scrape(until done: ([PrometheusSample]) -> Bool) async throws -> [PrometheusSample] {
            let deadline = ContinuousClock.now + .seconds(10)
            var samples = try await Self.scrape(registry)
            while !done(samples), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
                samples = try await Self.scrape(registry)
            }
            return samples
        }
        /// Opens a watch on `client` and returns once its first event arrived.
        func openWatch(_ client: RPCClient) async -> Task<Void, any Error> {
            let caughtUp = AsyncStream<Void>.makeStream()
            let watcher = Task {
                for try await _ in client.stream(V1.RegistryService.watch, V1.WatchRegistryRequest()) {
                    caughtUp.continuation.yield()
                }
            }
            var iterator = caughtUp.stream.makeAsyncIterator()
            await iterator.next()
            return watcher
        }

        // 1. Cancelled by the client while open.
        let cancelled = await openWatch(client)
        let open = try await scrape { Self.total($0, "rpc_server_calls_in_flight", server) == 1 }
        #expect(Self.total(open, "rpc_server_calls_in_flight", server) == 1)
        cancelled.cancel()
        _ = await cancelled.result

        // 2. Ended by its deadline.
        var ended: RPCError.Code?
        do {
            for try await _ in client.stream(V1.RegistryService.watch, V1.WatchRegistryRequest(), timeout: .milliseconds(300)) {}
        } catch let error as RPCError {
            ended = error.code
        }
        #expect(ended == .deadlineExceeded)

        // 3. Its connection closed under it.
        let pool = RPCConnectionPool(host: "127.0.0.1", port: registry.port)
        let orphan = await openWatch(RPCClient(
            transport: SignedTransport(inner: pool, signer: signer.signer, principal: ServicePrincipal.gateway)))
        await pool.close()
        _ = await orphan.result

        // Once all three handlers have returned (each counted in calls_total), nothing is in flight.
        let after = try await scrape { Self.total($0, "rpc_server_calls_total", watches) == 3 }
        #expect(Self.total(after, "rpc_server_calls_total", watches) == 3)
        #expect(Self.total(after, "rpc_server_calls_in_flight", server) == 0)
        #expect(await registry.stop() == 0)
    }

    /// While SIGTERM drains a process, `/healthz` answers 503; the process still exits 0. What
    /// keeps it draining: a peer that sent calls and reads none of the answers, so its
    /// connection cannot close until the grace period (10 s) ends.
    @Test func healthzSays503WhileDraining() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let registry = try await ServiceProcess("registry", dataDir: dataDir)
        #expect(try await HTTPTestClient.request("/healthz", port: registry.adminPort).status == 200)
        let stuck = try RawSocket(port: registry.port, receiveBuffer: 4096, sendBuffer: 8192)
        // Calls to an unknown method of a 4,000-character name: each answer (UNIMPLEMENTED,
        // naming the method) is as large as its request, so few calls fill the buffers.
        let unknown = (1...100).flatMap { i in
            RawSocket.encode(V1.Frame(callId: UInt64(i), kind: .request, method: String(repeating: "x", count: 4_000)))
        }
        // Until the registry stops reading: its answers fill this socket and its own buffers.
        let sent = await stuck.sendUntilBlocked(count: 1_000) { _ in unknown }
        #expect(sent > 0)

        registry.process.terminate()
        var status = 200
        let deadline = ContinuousClock.now + .seconds(20)
        while status == 200, ContinuousClock.now < deadline {
            status = try await HTTPTestClient.request("/healthz", port: registry.adminPort).status
            if status == 200 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(status == 503)
        #expect(await registry.waitForExit() == 0)
        withExtendedLifetime(stuck) {}
    }

    @Test func configFileIsReadAndCheckedAtStart() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        let config = "\(dataDir)/platos.toml"
        // ServiceProcess passes --port 0 and --admin-port 0, which win over the file; the file's
        // settings still apply where no flag is given.
        try "log-level = \"warning\"\n[memory]\nsynchronous = full\n".write(toFile: config, atomically: true, encoding: .utf8)
        let memory = try await ServiceProcess("memory", dataDir: dataDir, extraArguments: ["--config", config])
        #expect(try await HTTPTestClient.request("/healthz", port: memory.adminPort).status == 200)
        #expect(await memory.stop() == 0)

        // A bad key stops the process before it serves, naming the file and line.
        try "port = 0\nadmin-prot = 0\n".write(toFile: config, atomically: true, encoding: .utf8)
        let failed = Process()
        failed.executableURL = ServiceProcess.binDirectory.appendingPathComponent("platos-memory")
        failed.arguments = ["--config", config, "--data-dir", dataDir]
        let stderr = Pipe()
        failed.standardError = stderr
        failed.standardOutput = FileHandle.nullDevice
        try failed.run()
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        failed.waitUntilExit()
        #expect(failed.terminationStatus == 2)
        #expect(message.contains("\(config):2: unknown key 'admin-prot'"), "\(message)")
    }
}
