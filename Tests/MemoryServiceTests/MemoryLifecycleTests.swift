import Foundation
import PlatosProto
import PlatosRPC
import Testing

@testable import MemoryService

/// Writes, retries, versions, history, erasure, expiry and paging.
@Suite struct MemoryLifecycleTests {
    let harness: MemoryHarness
    let chat: MemoryClient
    let bgo: MemoryClient

    init() throws {
        harness = try MemoryHarness()
        chat = harness.client(agent: "wally-chat", cluster: "wally", user: "alice")
        bgo = harness.client(agent: "wally-bgo", cluster: "wally", user: "alice")
    }

    @Test func aRetriedWriteReturnsTheFirstItemAndStoresOne() async throws {
        let request = V1.WriteMemoryRequest(content: "likes jazz", tags: ["music"], idempotencyKey: "turn-42")
        let first = try await chat.rpc.call(V1.MemoryService.write, request)
        let retry = try await chat.rpc.call(V1.MemoryService.write, request)
        #expect(!first.replayed)
        #expect(retry.replayed)
        #expect(retry.item?.id == first.item?.id)
        #expect(try await chat.recall("jazz").count == 1)

        // The key is the agent's own: another agent may use the same key for its own write.
        let sibling = try await bgo.rpc.call(V1.MemoryService.write, request)
        #expect(!sibling.replayed)
        #expect(sibling.item?.id != first.item?.id)

        let reused = await rpcError {
            try await chat.rpc.call(
                V1.MemoryService.write, V1.WriteMemoryRequest(content: "likes opera", idempotencyKey: "turn-42"))
        }
        #expect(reused?.code == .failedPrecondition)
    }

    @Test func aRetryAfterTheMemoryWasDeletedDoesNotResurrectIt() async throws {
        let item = try await chat.write("short-lived", key: "k-1")
        _ = try await chat.rpc.call(V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: item.id))
        let retry = await rpcError { try await chat.write("short-lived", key: "k-1") }
        #expect(retry?.code == .failedPrecondition)
        #expect(try await chat.recall("short lived").isEmpty)
    }

    /// A retry is answered with the first write's memory as it is now, so only while the writer
    /// still reaches it: not for another end user, not after leaving the owning cluster.
    @Test func aRetryRevealsTheFirstMemoryOnlyWhileTheWriterReachesIt() async throws {
        // Another end user with the same key and content: a different write, refused.
        _ = try await chat.write("likes jazz", key: "k-user")
        let asBob = harness.client(agent: "wally-chat", cluster: "wally", user: "bob")
        let otherUser = await rpcError { try await asBob.write("likes jazz", key: "k-user") }
        #expect(otherUser?.code == .failedPrecondition)

        // Moved out of the owning cluster: the retry must not show what Wally made of it since.
        let first = try await chat.write("flight at nine", key: "k-move")
        _ = try await bgo.rpc.call(
            V1.MemoryService.update,
            V1.UpdateMemoryRequest(memoryId: first.id, content: V1.StringValue(value: "flight at nine, seat 14C")))
        let moved = harness.client(agent: "wally-chat", cluster: "elsewhere", user: "alice")
        let afterMove = await rpcError { try await moved.write("flight at nine", key: "k-move") }
        #expect(afterMove?.code == .failedPrecondition)
        #expect(afterMove?.message.contains("14C") == false)
        // Deleted and out of reach get the same answer: which of the two is not told.
        let deleted = try await chat.write("gone soon", key: "k-gone")
        _ = try await chat.rpc.call(V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: deleted.id))
        let afterDelete = await rpcError { try await chat.write("gone soon", key: "k-gone") }
        #expect(afterDelete?.message.replacingOccurrences(of: "k-gone", with: "k-move") == afterMove?.message)

        // Joined a cluster since: its own memory is still its own, and the retry answers with it.
        let loner = harness.client(agent: "loner", user: "alice")
        let own = try await loner.write("likes tea", key: "k-join")
        let joined = harness.client(agent: "loner", cluster: "wally", user: "alice")
        let retry = try await joined.rpc.call(
            V1.MemoryService.write, V1.WriteMemoryRequest(content: "likes tea", idempotencyKey: "k-join"))
        #expect(retry.replayed)
        #expect(retry.item?.id == own.id)
    }

    /// A page token is sealed: it does not show the position (a row number of the whole
    /// database, which would tell how fast every tenant writes), and one altered does not open.
    @Test func aPageTokenIsSealed() async throws {
        for n in 0..<3 { try await chat.write("memory \(n)") }
        let page = try await chat.rpc.call(V1.MemoryService.list, V1.ListMemoriesRequest(page: V1.PageRequest(pageSize: 1)))
        let token = page.nextPageToken
        #expect(!token.isEmpty)
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        let bytes = try #require(Data(base64Encoded: base64))
        #expect(!String(decoding: bytes, as: UTF8.self).contains("m1:"))

        let next = try await chat.rpc.call(
            V1.MemoryService.list, V1.ListMemoriesRequest(page: V1.PageRequest(pageSize: 1, pageToken: token)))
        #expect(next.items.count == 1)
        #expect(next.items.first?.id != page.items.first?.id)

        var altered = Array(token)
        altered[altered.count / 2] = altered[altered.count / 2] == "A" ? "B" : "A"
        let refused = await rpcError {
            try await chat.rpc.call(
                V1.MemoryService.list, V1.ListMemoriesRequest(page: V1.PageRequest(pageSize: 1, pageToken: String(altered))))
        }
        #expect(refused?.code == .invalidArgument)
    }

    @Test func aHistoryTokenIsNotAListToken() async throws {
        let item = try await chat.write("one")
        _ = try await chat.rpc.call(
            V1.MemoryService.update, V1.UpdateMemoryRequest(memoryId: item.id, content: V1.StringValue(value: "two")))
        let page = try await chat.rpc.call(
            V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: item.id, page: V1.PageRequest(pageSize: 1)))
        #expect(!page.nextPageToken.isEmpty)
        let misuse = await rpcError {
            try await chat.rpc.call(
                V1.MemoryService.list, V1.ListMemoriesRequest(page: V1.PageRequest(pageToken: page.nextPageToken)))
        }
        #expect(misuse?.code == .invalidArgument)
    }

    @Test func concurrentRetriesOfOneWriteStoreOneMemory() async throws {
        let chat = self.chat
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<16 {
                group.addTask { try await chat.write("one write, many retries", key: "same-key").id }
            }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(ids.count == 1)
    }

    @Test func aStaleVersionIsAborted() async throws {
        let item = try await chat.write("v1 text")
        let v2 = try await bgo.rpc.call(
            V1.MemoryService.update,
            V1.UpdateMemoryRequest(memoryId: item.id, expectedVersion: 1, content: V1.StringValue(value: "v2 text")))
        #expect(v2.version == 2)
        let stale = await rpcError {
            try await chat.rpc.call(
                V1.MemoryService.update,
                V1.UpdateMemoryRequest(memoryId: item.id, expectedVersion: 1, content: V1.StringValue(value: "v3")))
        }
        #expect(stale?.code == .aborted)
        let staleDelete = await rpcError {
            try await chat.rpc.call(
                V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: item.id, expectedVersion: 1))
        }
        #expect(staleDelete?.code == .aborted)
        #expect(try await chat.get(item.id).content == "v2 text")
    }

    @Test func anUpdateReindexesContentAndMergesTagsAndMetadata() async throws {
        let item = try await chat.write("walks the dog", tags: ["pets"], metadata: ["source": "chat", "lang": "en"])
        let updated = try await chat.rpc.call(
            V1.MemoryService.update,
            V1.UpdateMemoryRequest(
                memoryId: item.id, content: V1.StringValue(value: "feeds the cat"), tags: ["home"],
                metadata: ["source": "bgo"], expiresAtUnixMs: V1.Int64Value(value: harness.clock.now + 60_000)))
        #expect(updated.tags == ["pets", "home"])
        #expect(updated.metadata == ["source": "bgo", "lang": "en"])
        #expect(try await chat.recall("dog").isEmpty)
        #expect(try await chat.recall("cat").map(\.id) == [item.id])
        #expect(try await chat.recall("", tags: ["home"]).map(\.id) == [item.id])

        let replaced = try await chat.rpc.call(
            V1.MemoryService.update,
            V1.UpdateMemoryRequest(
                memoryId: item.id, replaceTags: true, metadata: ["only": "this"], replaceMetadata: true))
        #expect(replaced.tags.isEmpty)
        #expect(replaced.metadata == ["only": "this"])
        #expect(try await chat.recall("", tags: ["home"]).isEmpty)
    }

    @Test func historyKeepsEveryAddUpdateAndDelete() async throws {
        let item = try await chat.write("first")
        harness.clock.advance(ms: 1000)
        _ = try await bgo.rpc.call(
            V1.MemoryService.update,
            V1.UpdateMemoryRequest(memoryId: item.id, expectedVersion: 1, content: V1.StringValue(value: "second")))
        harness.clock.advance(ms: 1000)
        _ = try await chat.rpc.call(
            V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: item.id, expectedVersion: 2))
        #expect(await rpcError { try await chat.get(item.id) }?.code == .notFound)

        let history = try await bgo.rpc.call(V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: item.id))
        #expect(history.entries.map(\.action) == [.add, .update, .delete])
        #expect(history.entries.map(\.oldContent) == ["", "first", "second"])
        #expect(history.entries.map(\.newContent) == ["first", "second", ""])
        #expect(history.entries.map(\.actorAgentId) == ["wally-chat", "wally-bgo", "wally-chat"])
        #expect(history.entries.map(\.version) == [1, 2, 2])
        #expect(history.entries.map(\.atUnixMs) == [0, 1000, 2000].map { $0 + harness.clock.now - 2000 })

        // Paged one entry at a time, the same three entries come back.
        var actions: [V1.HistoryAction] = []
        var token = ""
        repeat {
            let page = try await bgo.rpc.call(
                V1.MemoryService.history,
                V1.MemoryHistoryRequest(memoryId: item.id, page: V1.PageRequest(pageSize: 1, pageToken: token)))
            actions += page.entries.map(\.action)
            token = page.nextPageToken
        } while !token.isEmpty
        #expect(actions == [.add, .update, .delete])

        let stranger = harness.client(agent: "eve-chat", cluster: "eve", user: "alice")
        let hidden = await rpcError {
            try await stranger.rpc.call(V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: item.id))
        }
        #expect(hidden?.code == .notFound)
    }

    @Test func forgetUserErasesThatUserOnlyWithinTheCallersScope() async throws {
        let bob = harness.client(agent: "wally-chat", cluster: "wally", user: "bob")
        let strangerAlice = harness.client(agent: "eve-chat", cluster: "eve", user: "alice")
        let shared = try await chat.write("alice fact one")
        _ = try await chat.write("alice fact two", visibility: .private)
        _ = try await bgo.write("alice fact three")
        let bobs = try await bob.write("bob fact")
        let strangers = try await strangerAlice.write("alice fact elsewhere")

        let erased = try await chat.rpc.call(V1.MemoryService.forgetUser, V1.ForgetUserRequest(userId: "alice"))
        #expect(erased.deletedCount == 3)
        #expect(try await chat.recall("fact").isEmpty)
        #expect(try await bgo.recall("fact").isEmpty)
        let history = await rpcError {
            try await chat.rpc.call(V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: shared.id))
        }
        #expect(history?.code == .notFound)
        #expect(try await bob.recall("fact").map(\.id) == [bobs.id])
        #expect(try await strangerAlice.recall("fact").map(\.id) == [strangers.id])
    }

    /// Erasure takes the idempotency keys of the user's memories deleted earlier too: afterwards a
    /// retry of such a write is a new write, with nothing left to say the old one existed.
    @Test func forgetUserErasesTheKeysOfMemoriesDeletedEarlier() async throws {
        let deleted = try await chat.write("alice's old address", key: "k-addr")
        _ = try await chat.rpc.call(V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: deleted.id))
        let beforeErasure = await rpcError { try await chat.write("alice's old address", key: "k-addr") }
        #expect(beforeErasure?.code == .failedPrecondition)

        _ = try await chat.rpc.call(V1.MemoryService.forgetUser, V1.ForgetUserRequest(userId: "alice"))
        let again = try await chat.rpc.call(
            V1.MemoryService.write, V1.WriteMemoryRequest(content: "alice's old address", idempotencyKey: "k-addr"))
        #expect(!again.replayed)
        #expect(again.item?.id != deleted.id)
    }

    /// A large erase is done a chunk per write (the one writer is not held for all of it), and
    /// still takes everything: memories, every history entry and the keys of deleted memories.
    @Test func forgetUserErasesInChunksAndLeavesNothing() async throws {
        let bob = harness.client(agent: "wally-chat", cluster: "wally", user: "bob")
        var ids: [String] = []
        for i in 0..<7 {
            let item = try await chat.write("alice note \(i)", key: "k\(i)")
            ids.append(item.id)
            _ = try await chat.rpc.call(
                V1.MemoryService.update, V1.UpdateMemoryRequest(memoryId: item.id, content: V1.StringValue(value: "alice note \(i) updated")))
        }
        _ = try await chat.rpc.call(V1.MemoryService.delete, V1.DeleteMemoryRequest(memoryId: ids[0]))
        let bobs = try await bob.write("bob note")
        let project = MemoryHarness.project
        let erased = try await harness.store.forgetUser(
            "alice", in: .project(org: project.org, project: project.project, env: project.env), chunk: 2)
        #expect(erased == 6)
        for id in ids {
            let history = await rpcError { try await chat.rpc.call(V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: id)) }
            #expect(history?.code == .notFound)
        }
        // The key of the memory deleted before the erase went too: a retry is a new write.
        #expect(try await chat.rpc.call(V1.MemoryService.write, V1.WriteMemoryRequest(content: "alice note 0", idempotencyKey: "k0")).replayed == false)
        #expect(try await bob.recall("note").map(\.id) == [bobs.id])
    }

    @Test func anAdminForgetsAUserAcrossTheProject() async throws {
        let strangerAlice = harness.client(agent: "eve-chat", cluster: "eve", user: "alice")
        _ = try await chat.write("alice fact")
        _ = try await strangerAlice.write("alice fact elsewhere")
        let admin = harness.client(agent: "", user: "", role: .admin)
        let erased = try await admin.rpc.call(V1.MemoryService.forgetUser, V1.ForgetUserRequest(userId: "alice"))
        #expect(erased.deletedCount == 2)
        #expect(try await strangerAlice.recall("fact").isEmpty)
    }

    @Test func anExpiredMemoryIsNotRecalledButCanStillBeRead() async throws {
        let item = try await chat.write("temporary door code 4711", expiresAt: harness.clock.now + 60_000)
        let lasting = try await chat.write("permanent door code 1234")
        #expect(Set(try await chat.recall("door code").map(\.id)) == [item.id, lasting.id])
        harness.clock.advance(ms: 60_000)
        #expect(try await chat.recall("door code").map(\.id) == [lasting.id])
        #expect(try await chat.get(item.id).id == item.id)
    }

    @Test func listPagesThroughEverythingOnceNewestFirst() async throws {
        var written: [String] = []
        for i in 0..<7 { written.append(try await chat.write("note \(i)").id) }
        _ = try await harness.client(agent: "eve-chat", cluster: "eve", user: "alice").write("not mine")

        var seen: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let page = try await bgo.rpc.call(
                V1.MemoryService.list, V1.ListMemoriesRequest(page: V1.PageRequest(pageSize: 3, pageToken: token)))
            #expect(page.items.count <= 3)
            seen += page.items.map(\.id)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty
        #expect(seen == written.reversed())
        #expect(pages == 3)
    }

    @Test func listFiltersByTagAndAuthor() async throws {
        let tagged = try await chat.write("tagged", tags: ["work"])
        let byBgo = try await bgo.write("by bgo", tags: ["work", "late"])
        _ = try await chat.write("untagged")
        let work = try await chat.rpc.call(V1.MemoryService.list, V1.ListMemoriesRequest(tags: ["work"]))
        #expect(work.items.map(\.id) == [byBgo.id, tagged.id])
        let both = try await chat.rpc.call(V1.MemoryService.list, V1.ListMemoriesRequest(tags: ["work", "late"]))
        #expect(both.items.map(\.id) == [byBgo.id])
        let authored = try await chat.rpc.call(
            V1.MemoryService.list, V1.ListMemoriesRequest(authorAgentId: "wally-bgo"))
        #expect(authored.items.map(\.id) == [byBgo.id])
    }

    @Test func recallFiltersCombine() async throws {
        let early = try await chat.write("trip to Lisbon", tags: ["travel"])
        harness.clock.advance(ms: 10_000)
        let late = try await bgo.write("trip to Porto", tags: ["travel", "work"])
        let byTag = try await chat.recall("trip", tags: ["work"])
        #expect(byTag.map(\.id) == [late.id])
        let byAuthor = try await chat.rpc.call(
            V1.MemoryService.recall, V1.RecallRequest(query: "trip", authorAgentId: "wally-chat"))
        #expect(byAuthor.items.compactMap(\.item?.id) == [early.id])
        let bySince = try await chat.rpc.call(
            V1.MemoryService.recall, V1.RecallRequest(query: "trip", sinceUnixMs: late.createdAtUnixMs))
        #expect(bySince.items.compactMap(\.item?.id) == [late.id])
        let byUntil = try await chat.rpc.call(
            V1.MemoryService.recall, V1.RecallRequest(query: "trip", untilUnixMs: early.createdAtUnixMs))
        #expect(byUntil.items.compactMap(\.item?.id) == [early.id])
        #expect(try await chat.recall("trip", limit: 1).count == 1)
    }

    @Test func recallRanksByRelevanceThenRecency() async throws {
        let relevant = try await chat.write("kayak kayak kayak paddling trip")
        _ = try await chat.write("went shopping for groceries")
        harness.clock.advance(ms: 1000)
        let passing = try await chat.write("mentioned a kayak once among many other unrelated words today")
        let ranked = try await chat.recallScored("kayak")
        #expect(ranked.compactMap(\.item?.id) == [relevant.id, passing.id])
        #expect(ranked[0].score > ranked[1].score)
        #expect(ranked.allSatisfy { $0.score > 0 })

        harness.clock.advance(ms: 1000)
        let newest = try await chat.write("went shopping for shoes")
        let byRecency = try await chat.recall("shopping")
        #expect(byRecency.first?.id == newest.id)
    }
}
