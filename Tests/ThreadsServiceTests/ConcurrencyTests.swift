import PlatosProto
import PlatosRPC
import Testing
import ThreadsService

@Suite("threads: concurrency", .timeLimit(.minutes(1)))
struct ConcurrencyTests {
    typealias H = ThreadsHarness

    @Test func thirtyTwoConcurrentPostersGetGapFreeUniqueSeqs() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let posters = 32
        let postsEach = 20
        let seqs = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for p in 0..<posters {
                let agent = p.isMultiple(of: 2) ? H.chat : H.bgo
                group.addTask {
                    var mine: [UInt64] = []
                    for i in 0..<postsEach { mine.append(try await h.post(agent, thread.id, "p\(p) m\(i)").seq) }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let total = UInt64(posters * postsEach)
        #expect(seqs.sorted() == Array(1...total))
        let listed = try await h.client(H.chat).call(
            V1.MessagesService.list, V1.ListMessagesRequest(threadId: thread.id, limit: 1000))
        #expect(listed.messages.map(\.seq) == Array(1...total))
        let reread = try await h.client(H.chat).call(V1.ThreadsService.get, V1.GetThreadRequest(threadId: thread.id))
        #expect(reread.lastSeq == total)
    }

    @Test func aWatcherThatResumesFromItsLastSeqSeesEveryMessageExactlyOnce() async throws {
        let h = try H()
        let thread = try await h.createThread(H.chat)
        let total = 200
        for i in 0..<20 { try await h.post(H.chat, thread.id, "before \(i)") }  // replayed, not live
        let posting = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for p in 0..<4 {
                    group.addTask { for i in 0..<((total - 20) / 4) { try await h.post(H.bgo, thread.id, "p\(p) \(i)") } }
                }
                try await group.waitForAll()
            }
        }
        var seen: [UInt64] = []
        // The first watch drops out part-way, while posts are still arriving.
        for try await message in h.client(H.bgo).stream(V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: thread.id)) {
            seen.append(message.seq)
            if seen.count == 60 { break }
        }
        let resumeFrom = try #require(seen.last)
        for try await message in h.client(H.bgo).stream(
            V1.ThreadsService.watch, V1.WatchThreadRequest(threadId: thread.id, afterSeq: resumeFrom))
        {
            seen.append(message.seq)
            if seen.count == total { break }
        }
        try await posting.value
        #expect(seen == Array(1...UInt64(total)))
    }
}
