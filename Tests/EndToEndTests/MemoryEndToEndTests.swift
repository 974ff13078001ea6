import Foundation
import GRDB
import PlatosProto
import PlatosRPC
import PlatosTestSupport
import Testing

/// The real `platos-memory` executable over TCP.
@Suite struct MemoryEndToEndTests {
    private static func principal(agent: String, cluster: String, user: String) -> V1.Principal {
        V1.Principal(
            scope: V1.Scope(org: "acme", project: "wally", env: "prod"), agentId: agent, clusterId: cluster,
            userId: user, role: .agent)
    }

    @Test func servesSignedCallsAndRefusesUnsignedOnes() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let service = try await ServiceProcess("memory", dataDir: dataDir)
        let signer = try TestSigner(dataDir: dataDir)
        let chat = signer.client(
            port: service.port, principal: Self.principal(agent: "chat", cluster: "wally", user: "alice"))
        let bgo = signer.client(
            port: service.port, principal: Self.principal(agent: "bgo", cluster: "wally", user: "alice"))

        let written = try await chat.call(
            V1.MemoryService.write, V1.WriteMemoryRequest(content: "alice takes her tea with lemon"))
        let item = try #require(written.item)
        let recalled = try await bgo.call(V1.MemoryService.recall, V1.RecallRequest(query: "tea lemon"))
        #expect(recalled.items.compactMap(\.item?.id) == [item.id])
        #expect(
            try await bgo.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: item.id)).content == item.content)

        let direct = RPCClient(transport: RPCConnectionPool(host: "127.0.0.1", port: service.port))
        var code: RPCError.Code?
        do {
            _ = try await direct.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: item.id))
        } catch let error as RPCError {
            code = error.code
        }
        #expect(code == .unauthenticated)
        #expect(await service.stop() == 0)
    }

    /// Memories and history entries within every write limit can together pass the 4 MiB frame
    /// limit: list, history and recall end their answer early by size instead of failing, and
    /// the page tokens read on to the end.
    @Test func answersOfLargeMemoriesEndBySizeAndReadOn() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let service = try await ServiceProcess("memory", dataDir: dataDir)
        let chat = try TestSigner(dataDir: dataDir).client(
            port: service.port, principal: Self.principal(agent: "chat", cluster: "wally", user: "alice"))
        // 64 KiB each: the content limit.
        func content(_ label: String) -> String {
            let head = "\(label) lemon "
            return head + String(repeating: "tea ", count: (64 * 1024 - head.utf8.count) / 4)
        }
        var ids: [String] = []
        for i in 0..<70 {
            ids.append(try await chat.call(V1.MemoryService.write, V1.WriteMemoryRequest(content: content("m\(i)"))).item!.id)
        }
        for version in 1...33 {
            _ = try await chat.call(
                V1.MemoryService.update, V1.UpdateMemoryRequest(memoryId: ids[0], content: V1.StringValue(value: content("v\(version)"))))
        }

        var listed: [String] = []
        var pages = 0
        var token = ""
        repeat {
            let page = try await chat.call(
                V1.MemoryService.list, V1.ListMemoriesRequest(page: V1.PageRequest(pageToken: token)))
            listed += page.items.map(\.id)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty
        #expect(Set(listed) == Set(ids) && listed.count == 70)
        #expect(pages >= 3, "70 memories of 64 KiB came in \(pages) pages")

        var history: [V1.MemoryHistoryEntry] = []
        token = ""
        repeat {
            let page = try await chat.call(
                V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: ids[0], page: V1.PageRequest(pageToken: token)))
            history += page.entries
            token = page.nextPageToken
        } while !token.isEmpty
        #expect(history.count == 34)

        let recalled = try await chat.call(V1.MemoryService.recall, V1.RecallRequest(query: "lemon", limit: 100))
        #expect(!recalled.items.isEmpty && recalled.items.count < 70)
        #expect(await service.stop() == 0)
    }

    /// 64 writers, SIGKILL in the middle of their writes, restart: every write that was
    /// acknowledged is there, and the file (and its full-text index) is intact.
    @Test func acknowledgedWritesSurviveKill9() async throws {
        let dataDir = ServiceProcess.temporaryDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let first = try await ServiceProcess("memory", dataDir: dataDir)
        let signer = try TestSigner(dataDir: dataDir)
        let principal = Self.principal(agent: "chat", cluster: "wally", user: "alice")
        let client = signer.client(port: first.port, principal: principal)

        let ids = try await writeConcurrently(writers: 64) { writer, n in
            let request = V1.WriteMemoryRequest(content: "writer \(writer) note \(n) about durability")
            return try? await client.call(V1.MemoryService.write, request).item?.id
        } interrupt: { acknowledged in
            // Kill while writes are in flight, once enough were acknowledged.
            try await waitForProgress(acknowledged, enough: 2000, minimum: 200)
            await first.kill()
        }
        // Enough writes that the check below means something.
        #expect(ids.count >= 200)

        let second = try await ServiceProcess("memory", dataDir: dataDir)
        let reader = signer.client(port: second.port, principal: principal)
        let missing = try await withThrowingTaskGroup(of: Int.self) { group in
            for slice in 0..<16 {
                group.addTask {
                    var missing = 0
                    for id in stride(from: slice, to: ids.count, by: 16).map({ ids[$0] }) {
                        do {
                            _ = try await reader.call(V1.MemoryService.get, V1.GetMemoryRequest(memoryId: id))
                        } catch let error as RPCError where error.code == .notFound {
                            missing += 1
                        }
                    }
                    return missing
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(missing == 0)
        #expect(await second.stop() == 0)

        let database = try DatabaseQueue(path: "\(dataDir)/memory.sqlite")
        try await database.write { db in
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
            // FTS5's own check: the index matches the text it was built from.
            try db.execute(sql: "INSERT INTO memory_fts(memory_fts) VALUES ('integrity-check')")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM memories") ?? 0 >= ids.count)
        }
    }
}
