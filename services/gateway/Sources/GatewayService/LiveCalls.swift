import Foundation
import NIOConcurrencyHelpers
import PlatosProto
import PlatosRPC

/// The gateway's long-lived calls (server streams and long polls), by caller, so that a change to
/// a caller's identity ends them. A call is admitted once, when it starts: a `threads.watch`
/// opened while an agent was in cluster A would otherwise keep delivering A's messages after
/// the agent moved to B, and a `tasks.claim` waiting 30 s could still take one of A's tasks.
///
/// Ended calls fail with `UNAVAILABLE`: the caller reopens them and is admitted afresh, which
/// either succeeds (the change did not touch what it reads) or gets the answer its new identity
/// gets (`NOT_FOUND` for a thread of its old cluster).
///
/// A call made with a token that expires ends when the token does, with `UNAUTHENTICATED`: no
/// event announces an expiry, and a watch opened a minute before it would otherwise outlive its
/// credential for good.
///
/// Each agent may hold `maxPerAgent` of them at once; one more is refused with
/// `RESOURCE_EXHAUSTED`. Every live call holds a call on a gateway-to-backend connection, and
/// those are bounded per connection and shared by every tenant.
final class LiveCalls: Sendable {
    private struct Entry {
        let agentId: String
        let tokenId: String
        /// The caller's cluster when the call was admitted, empty for none.
        let clusterId: String
        /// Cancels the call's task; nil until the task exists.
        var cancel: (@Sendable () -> Void)?
        var endedBecause: RPCError?
    }

    private struct State {
        var nextId: UInt64 = 0
        var entries: [UInt64: Entry] = [:]
        var openPerAgent: [String: Int] = [:]
    }

    private let state = NIOLockedValueBox(State())
    let maxPerAgent: Int

    init(maxPerAgent: Int = GatewayConfiguration().maxLiveCallsPerAgent) {
        self.maxPerAgent = maxPerAgent
    }

    /// How many calls are open; for tests and metrics.
    var count: Int { state.withLockedValue { $0.entries.count } }

    /// Runs `body` as a call of `agentId` holding `tokenId`, until it ends by itself, a change
    /// to that agent or token ends it (then with that change's `UNAVAILABLE`), or the token
    /// expires (`tokenExpiresAtUnixMs`, 0 for never; then `UNAUTHENTICATED`). The call is
    /// registered before `body` starts, so a change that lands while `body` is starting ends it.
    /// Throws `RESOURCE_EXHAUSTED`, without running `body`, when the agent already holds
    /// `maxPerAgent` calls.
    func run<T: Sendable>(
        agentId: String, tokenId: String, clusterId: String = "", tokenExpiresAtUnixMs: Int64 = 0,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        // Counted per agent; a token tied to no agent (an admin token) counts on its own, not
        // together with every other tenant's admin tokens.
        let holder = agentId.isEmpty ? "token \(tokenId)" : agentId
        let id = state.withLockedValue { state -> UInt64? in
            guard state.openPerAgent[holder, default: 0] < maxPerAgent else { return nil }
            state.openPerAgent[holder, default: 0] += 1
            state.nextId += 1
            state.entries[state.nextId] = Entry(agentId: agentId, tokenId: tokenId, clusterId: clusterId)
            return state.nextId
        }
        guard let id else {
            throw RPCError(
                .resourceExhausted,
                "\(agentId.isEmpty ? "this token" : "agent \(agentId)") already holds \(maxPerAgent) open streams and "
                    + "long polls; close one before opening another")
        }
        defer {
            state.withLockedValue { state in
                state.entries.removeValue(forKey: id)
                let open = state.openPerAgent[holder, default: 1] - 1
                state.openPerAgent[holder] = open > 0 ? open : nil
            }
        }
        let task = Task { try await body() }
        let endedAlready = state.withLockedValue { state -> Bool in
            if state.entries[id]?.endedBecause != nil { return true }
            state.entries[id]?.cancel = { task.cancel() }
            return false
        }
        if endedAlready { task.cancel() }
        let expiry = tokenExpiresAtUnixMs > 0 ? endWhenExpired(id, atUnixMs: tokenExpiresAtUnixMs) : nil
        defer { expiry?.cancel() }
        let result: Result<T, any Error>
        do {
            result = .success(try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() })
        } catch {
            result = .failure(error)
        }
        // An ended call reports why even when its body, cancelled, returned normally (a stream
        // that stops at cancellation just finishes): an OK end would tell the caller not to reopen.
        if let reason = state.withLockedValue({ $0.entries[id]?.endedBecause }) { throw reason }
        return try result.get()
    }

    /// Ends the calls of the agent or the token a `registry.watch` event names.
    func end(touchedBy event: V1.MembershipEvent) {
        end(agentId: event.agentId, tokenId: event.revokedTokenId)
    }

    /// Ends the calls of `agentId`, of `tokenId` and of members of `clusterId` (an empty one names
    /// nothing).
    func end(agentId: String = "", tokenId: String = "", clusterId: String = "") {
        end(RPCError(.unavailable, "the caller's cluster membership or token changed; reopen the call")) { _, entry in
            (!agentId.isEmpty && entry.agentId == agentId) || (!tokenId.isEmpty && entry.tokenId == tokenId)
                || (!clusterId.isEmpty && entry.clusterId == clusterId)
        }
    }

    /// A timer that ends call `id` when its token expires, by the wall clock tokens are issued by.
    private func endWhenExpired(_ id: UInt64, atUnixMs expiresAtUnixMs: Int64) -> Task<Void, Never> {
        Task { [weak self] in
            let remainingMs = expiresAtUnixMs - Int64(Date().timeIntervalSince1970 * 1000)
            if remainingMs > 0 {
                do { try await Task.sleep(for: .milliseconds(remainingMs)) } catch { return }
            }
            self?.end(RPCError(.unauthenticated, "the token expired; reopen the call with a valid token")) { candidate, _ in
                candidate == id
            }
        }
    }

    /// Ends every call: the membership feed was lost, so no caller's access can be kept verified.
    func endAll() {
        end(RPCError(.unavailable, "the gateway lost the registry's membership feed; reopen the call")) { _, _ in true }
    }

    /// Marks the matching calls ended and cancels their tasks; a call whose task does not exist
    /// yet cancels it as soon as it does (see ``run(agentId:tokenId:_:)``).
    private func end(_ reason: RPCError, where matches: (UInt64, Entry) -> Bool) {
        let cancels = state.withLockedValue { state -> [@Sendable () -> Void] in
            var cancels: [@Sendable () -> Void] = []
            for (id, entry) in state.entries where entry.endedBecause == nil && matches(id, entry) {
                state.entries[id]?.endedBecause = reason
                if let cancel = entry.cancel { cancels.append(cancel) }
            }
            return cancels
        }
        for cancel in cancels { cancel() }
    }
}
