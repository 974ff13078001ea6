import PlatosProto
import Testing

@testable import RegistryService

/// A watcher that falls behind is ended after a gap-free run of events, so that resuming from
/// its last one replays exactly what it missed.
@Suite struct MembershipFeedTests {
    @Test func aLaggingWatcherHoldsTheOldestEventsAndIsEnded() async {
        let feed = MembershipFeed(bufferSize: 4)
        let lagging = feed.subscribe()
        feed.publish((1...6).map { V1.MembershipEvent(version: $0, agentId: "agt_\($0)") })
        feed.publish([V1.MembershipEvent(version: 7, agentId: "agt_7")])
        var versions: [UInt64] = []
        for await event in lagging { versions.append(event.version) }
        #expect(versions == [1, 2, 3, 4])
    }

    @Test func aWatcherThatKeepsUpSeesEveryEvent() async {
        let feed = MembershipFeed(bufferSize: 4)
        var iterator = feed.subscribe().makeAsyncIterator()
        var versions: [UInt64] = []
        for version in UInt64(1)...10 {
            feed.publish([V1.MembershipEvent(version: version, agentId: "agt")])
            if let event = await iterator.next() { versions.append(event.version) }
        }
        #expect(versions == Array(1...10))
    }
}
