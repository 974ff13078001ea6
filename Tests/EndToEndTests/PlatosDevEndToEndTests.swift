import Foundation
import PlatosRPC
import ProtobufCSwift
import Testing

/// `platos dev` as a person runs it, and the README's walkthrough as a person types it: the built
/// `platos` executable, its four children on free ports, and `platos call` commands whose JSON
/// is checked.
@Suite(.serialized) struct PlatosDevEndToEndTests {
    /// A running `platos dev`, read line by line.
    final class DevProcess: @unchecked Sendable {
        // @unchecked: `process` is used through its thread-safe API; `lines` is Sendable.
        let process = Process()
        let dataDir: String
        private let lines = OutputLines()
        private(set) var gateway = ""

        /// `platos dev` on a new data directory, or again on `dataDir`, with `extraArguments`.
        init(dataDir: String = ServiceProcess.temporaryDataDirectory(), extraArguments: [String] = []) async throws {
            self.dataDir = dataDir
            process.executableURL = ServiceProcess.binDirectory.appendingPathComponent("platos")
            process.arguments = ["dev", "--free-ports", "--data-dir", dataDir] + extraArguments
            var environment = ProcessInfo.processInfo.environment
            environment["PLATOS_LOG_LEVEL"] = "warning"
            process.environment = environment
            lines.capture(process)
            try process.run()
            let ready = try await waitForLine(timeout: .seconds(90)) { $0.hasPrefix("READY platos-dev gateway=") }
            gateway = String(ready.dropFirst("READY platos-dev gateway=".count))
        }

        var output: [String] { lines.all }

        /// Waits, with a deadline, for a line of output matching `predicate`.
        @discardableResult
        func waitForLine(timeout: Duration, _ predicate: (String) -> Bool) async throws -> String {
            try await lines.waitFor("such line from platos dev", from: process, timeout: timeout, predicate)
        }

        /// `platos <arguments>` against this stack: (exit status, stdout, stderr).
        func platos(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
            let run = Process()
            run.executableURL = ServiceProcess.binDirectory.appendingPathComponent("platos")
            run.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            environment["PLATOS_GATEWAY"] = gateway
            environment["PLATOS_DATA_DIR"] = dataDir
            environment.removeValue(forKey: "PLATOS_TOKEN")
            run.environment = environment
            let out = Pipe(), err = Pipe()
            run.standardOutput = out
            run.standardError = err
            try run.run()
            // stderr holds at most a few lines, far below a pipe's buffer, so reading stdout to its
            // end first cannot block the child.
            let outData = out.fileHandleForReading.readDataToEndOfFile()
            let errData = err.fileHandleForReading.readDataToEndOfFile()
            run.waitUntilExit()
            return (
                run.terminationStatus, String(decoding: outData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                String(decoding: errData, as: UTF8.self)
            )
        }

        /// A command that must succeed; its stdout as JSON.
        func json(_ arguments: [String]) throws -> JSONValue {
            let result = try platos(arguments)
            guard result.status == 0 else {
                throw RPCError(.unknown, "platos \(arguments.joined(separator: " ")) exited \(result.status): \(result.err)")
            }
            return try JSONValue(parsing: result.out)
        }

        /// A command that must succeed; its stdout as text (`--field` output).
        func text(_ arguments: [String]) throws -> String {
            let result = try platos(arguments)
            guard result.status == 0 else {
                throw RPCError(.unknown, "platos \(arguments.joined(separator: " ")) exited \(result.status): \(result.err)")
            }
            return result.out
        }

        /// SIGINT, as Ctrl-C; returns the exit status.
        func interrupt(timeout: Duration = .seconds(60)) async -> Int32 {
            kill(process.processIdentifier, SIGINT)
            let deadline = ContinuousClock.now + timeout
            while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            return process.terminationStatus
        }

        /// The pid `platos dev` reported for a child.
        func pid(of service: String) -> Int32? {
            output.last { $0.contains("platos-\(service) ") && $0.contains("(pid ") }
                .flatMap { $0.split(separator: "(pid ").last?.dropLast() }
                .flatMap { Int32($0) }
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    static func string(_ value: JSONValue?) -> String? {
        if case .string(let s)? = value { return s }
        return nil
    }

    /// The README's five-minute walkthrough, command for command.
    @Test func theWalkthroughAgainstPlatosDev() async throws {
        let dev = try await DevProcess()
        #expect(dev.output.contains { $0.contains("admin token") })

        let chat = try dev.json(["agents", "create", "--slug", "wally-chat", "--name", "Wally chat"])
        let bgo = try dev.json(["agents", "create", "--slug", "wally-bgo", "--name", "Wally background"])
        _ = try dev.json(["agents", "create", "--slug", "other", "--name", "Other agent"])
        #expect(Self.string(chat["slug"]) == "wally-chat")
        let chatId = try #require(Self.string(chat["id"]))
        let bgoId = try #require(Self.string(bgo["id"]))

        let cluster = try dev.json(["clusters", "create", "--name", "Wally", "--slug", "wally", "--agent", "wally-chat", "--agent", "wally-bgo"])
        guard case .array(let members)? = cluster["agentIds"] else { Issue.record("no agentIds in \(cluster)"); return }
        #expect(Set(members.compactMap { Self.string($0) }) == [chatId, bgoId])

        let chatToken = try dev.text(["tokens", "issue", "--agent", "wally-chat", "--field", "secret"])
        let bgoToken = try dev.text(["tokens", "issue", "--agent", "wally-bgo", "--field", "secret"])
        let otherToken = try dev.text(["tokens", "issue", "--agent", "other", "--field", "secret"])
        #expect(chatToken.hasPrefix("pt_") && bgoToken.hasPrefix("pt_") && otherToken.hasPrefix("pt_"))

        // Memory written by chat for u-42 is recalled by bgo, and not by other.
        _ = try dev.json(["call", "memory.write", #"{"content": "u-42 likes oolong tea"}"#, "--token", chatToken, "--user", "u-42"])
        let recalled = try dev.json(["call", "memory.recall", #"{"query": "tea"}"#, "--token", bgoToken, "--user", "u-42"])
        guard case .array(let items)? = recalled["items"] else { Issue.record("bgo recalled nothing: \(recalled)"); return }
        #expect(items.contains { Self.string($0["item"]?["content"]) == "u-42 likes oolong tea" })
        #expect(try dev.json(["call", "memory.recall", #"{"query": "tea"}"#, "--token", otherToken, "--user", "u-42"])["items"] == nil)

        // A thread chat creates is bgo's too; messages carry their author.
        let thread = try dev.text(["call", "threads.create", #"{"title": "Tea order"}"#, "--token", chatToken, "--user", "u-42", "--field", "id"])
        #expect(thread.hasPrefix("thr_"))
        _ = try dev.json([
            "call", "messages.post", #"{"threadId": "\#(thread)", "role": "MESSAGE_ROLE_AGENT", "content": "Ordering tea"}"#,
            "--token", chatToken, "--user", "u-42",
        ])

        // spawn_bgo: chat hands the work to bgo, which completes it for u-42.
        let spawned = try dev.text([
            "call", "tasks.spawn", #"{"targetAgent": "wally-bgo", "threadId": "\#(thread)", "prompt": "Find a tea shop"}"#,
            "--token", chatToken, "--user", "u-42", "--field", "id",
        ])
        let claim = try dev.text(["call", "tasks.claim", #"{"waitMs": 5000}"#, "--token", bgoToken, "--field", "task.id", "--field", "task.leaseId"])
        let (task, lease) = (String(claim.split(separator: "\t").first ?? ""), String(claim.split(separator: "\t").last ?? ""))
        #expect(task == spawned)
        #expect(try dev.text([
            "call", "tasks.complete", #"{"taskId": "\#(task)", "leaseId": "\#(lease)", "result": "Leaf & Co, two streets away"}"#,
            "--token", bgoToken, "--task", task, "--field", "state",
        ]) == "TASK_STATE_SUCCEEDED")
        let messages = try dev.json(["call", "messages.list", #"{"threadId": "\#(thread)"}"#, "--token", chatToken, "--user", "u-42"])
        guard case .array(let list)? = messages["messages"] else { Issue.record("no messages: \(messages)"); return }
        #expect(list.map { Self.string($0["authorAgentId"]) } == [chatId, bgoId])
        #expect(Self.string(list.last?["content"])?.contains("Leaf & Co") == true)
        #expect(Self.string(list.last?["userId"]) == "u-42")

        // Outside the cluster: NOT_FOUND (exit 5) and PERMISSION_DENIED (exit 7), said on stderr.
        let peek = try dev.platos(["call", "threads.get", #"{"threadId": "\#(thread)"}"#, "--token", otherToken, "--user", "u-42"])
        #expect(peek.status == 5)
        #expect(peek.err.contains("NOT_FOUND"))
        let steal = try dev.platos([
            "call", "tasks.spawn", #"{"targetAgent": "wally-bgo", "threadId": "\#(thread)", "prompt": "x"}"#,
            "--token", otherToken, "--user", "u-42",
        ])
        #expect(steal.status == 7)

        // A typo is answered with the closest method; bad JSON with INVALID_ARGUMENT.
        let typo = try dev.platos(["call", "memory.recal", "{}"])
        #expect(typo.status == 12)
        #expect(typo.err.contains("Did you mean memory.recall"))
        #expect(try dev.platos(["call", "agents.get", "{not json"]).status == 3)

        // Ctrl-C: all four children drain and exit 0, and so does platos dev.
        #expect(await dev.interrupt() == 0)
        for service in ["registry", "memory", "threads", "gateway"] {
            #expect(dev.output.contains("  platos-\(service) exited 0"), "\(dev.output)")
        }
    }

    /// `platos dev` killed outright, with no chance to stop its children: each child sees that its
    /// parent is gone and drains and exits by itself, freeing its port and database.
    @Test func childrenStopWhenPlatosDevIsKilled() async throws {
        let dev = try await DevProcess()
        var children: [Int32] = []
        for service in ["registry", "memory", "threads", "gateway"] {
            children.append(try #require(dev.pid(of: service), "no pid reported for platos-\(service)"))
        }
        kill(dev.process.processIdentifier, SIGKILL)
        dev.process.waitUntilExit()

        let deadline = ContinuousClock.now + .seconds(30)
        while children.contains(where: Self.isRunning), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let survivors = children.filter(Self.isRunning)
        #expect(survivors.isEmpty, "children still running after platos dev was killed: \(survivors)")
        for pid in survivors { kill(pid, SIGKILL) }
    }

    /// Whether `pid` is a live process. An exited child that nobody has reaped yet (a zombie of
    /// whichever process adopted it) has stopped.
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let endOfName = stat.lastIndex(of: ")"),
            let state = stat[endOfName...].dropFirst(2).first
        else { return false }
        return state != "Z" && state != "X"
    }

    /// A second run on the same data directory for another scope gets an admin token of that
    /// scope: the first run's token would not reach it.
    @Test func aRunForAnotherScopeGetsThatScopesAdminToken() async throws {
        let first = try await DevProcess()
        _ = try first.json(["agents", "create", "--slug", "in-demo", "--name", "In demo"])
        #expect(await first.interrupt() == 0)

        let second = try await DevProcess(dataDir: first.dataDir, extraArguments: ["--org", "acme"])
        let created = try second.json(["agents", "create", "--slug", "in-acme", "--name", "In acme"])
        #expect(Self.string(created["slug"]) == "in-acme")
        // Its token sees acme's agents, not demo's.
        let listed = try second.json(["agents", "list"])
        guard case .array(let agents)? = listed["agents"] else { Issue.record("no agents listed: \(listed)"); return }
        #expect(agents.compactMap { Self.string($0["slug"]) } == ["in-acme"])
        #expect(await second.interrupt() == 0)
    }

    /// A child that dies is reported and restarted on the same port; the gateway reaches it again.
    @Test func aCrashedChildIsRestarted() async throws {
        let dev = try await DevProcess()
        let memoryPid = try #require(dev.pid(of: "memory"))
        let agent = try dev.json(["agents", "create", "--slug", "solo", "--name", "Solo"])
        let token = try dev.text(["tokens", "issue", "--agent", "solo", "--field", "secret"])
        _ = try dev.json(["call", "memory.write", #"{"content": "kept across a crash"}"#, "--token", token, "--user", "u-1"])

        kill(memoryPid, SIGKILL)
        try await dev.waitForLine(timeout: .seconds(30)) { $0.contains("platos-memory exited unexpectedly (killed by signal 9)") }
        try await dev.waitForLine(timeout: .seconds(30)) { $0.contains("platos-memory is back") }
        #expect(dev.pid(of: "memory") != memoryPid)

        let recalled = try dev.json(["call", "memory.recall", #"{"query": "crash"}"#, "--token", token, "--user", "u-1"])
        guard case .array(let items)? = recalled["items"] else { Issue.record("nothing recalled after the restart: \(recalled)"); return }
        #expect(Self.string(items.first?["item"]?["content"]) == "kept across a crash")
        #expect(Self.string(items.first?["item"]?["authorAgentId"]) == Self.string(agent["id"]))
        #expect(await dev.interrupt() == 0)
    }
}
