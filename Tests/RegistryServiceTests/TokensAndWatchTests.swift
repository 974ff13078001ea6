import PlatosAuth
import PlatosProto
import PlatosRPC
@testable import RegistryService
import Testing

@Suite struct TokensTests {
    @Test func issueResolveListRevoke() async throws {
        let f = try RegistryFixture()
        let chat = try await f.createAgent("wally-chat")
        let bgo = try await f.createAgent("wally-bgo")
        let wally = try await f.admin().call(V1.ClustersService.create, V1.CreateClusterRequest(name: "W", slug: "w", agentIds: [chat.id, bgo.id]))
        let issued = try await f.admin().call(
            V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: chat.id, boundUserId: "user-1"))
        #expect(issued.secret.hasPrefix("pt_tok_"))

        let resolved = try await f.gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: issued.secret))
        #expect(resolved.principal?.agentId == chat.id)
        #expect(resolved.principal?.clusterId == wally.id)
        #expect(resolved.principal?.userId == "user-1")
        #expect(resolved.principal?.scope == RegistryFixture.scopeP)
        #expect(resolved.principal?.role == .agent)

        // The secret is shown once: listing never carries it.
        let listed = try await f.admin().call(V1.TokensService.list, V1.ListTokensRequest())
        #expect(listed.tokens.map(\.id) == [issued.token!.id])

        _ = try await f.admin().call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: issued.token!.id))
        let revoked = await rpcError { _ = try await f.gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: issued.secret)) }
        #expect(revoked == RPCError(.unauthenticated, "invalid, expired or revoked token"))
    }

    /// A token bound to a user cannot mint one that is not (that would undo its own binding), and
    /// lists and revokes only that user's tokens.
    @Test func aCallerActingForAUserReachesOnlyThatUsersTokens() async throws {
        let f = try RegistryFixture()
        let bound = f.client(V1.Principal(scope: RegistryFixture.scopeP, userId: "u1", role: .admin))
        for other in ["", "u2"] {
            let error = await rpcError {
                _ = try await bound.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .admin, boundUserId: other))
            }
            #expect(error?.code == .permissionDenied, "bound_user_id '\(other)'")
            #expect(error?.message.contains("'u1'") == true)
        }
        let issued = try await bound.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .admin, boundUserId: "u1"))
        #expect(issued.token?.boundUserId == "u1")
        // An unbound admin still issues any token.
        let unbound = try await f.admin().call(V1.TokensService.issue, V1.IssueTokenRequest(role: .admin))
        #expect(unbound.token?.boundUserId == "")
        // It lists and revokes its user's tokens only; another's is as good as absent.
        let listed = try await bound.call(V1.TokensService.list, V1.ListTokensRequest())
        #expect(listed.tokens.map(\.id) == [issued.token!.id])
        let other = await rpcError {
            _ = try await bound.call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: unbound.token!.id))
        }
        #expect(other?.code == .notFound)
        let own = try await bound.call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: issued.token!.id))
        #expect(own.token?.revokedAtUnixMs != 0)
    }

    /// A retried issue creates no second live credential: the first secret cannot be shown
    /// again, so the retry names the token to revoke.
    @Test func aRetriedIssueWithItsKeyIssuesNothingAndNamesTheFirstToken() async throws {
        let f = try RegistryFixture()
        let request = V1.IssueTokenRequest(role: .admin, description: "ci", idempotencyKey: "issue-1")
        let first = try await f.admin().call(V1.TokensService.issue, request)
        let retry = await rpcError { _ = try await f.admin().call(V1.TokensService.issue, request) }
        #expect(retry?.code == .alreadyExists)
        #expect(retry?.details[MetadataKey.tokenId] == first.token?.id)
        #expect(retry?.message.contains("tokens.revoke") == true)
        let listed = try await f.admin().call(V1.TokensService.list, V1.ListTokensRequest())
        #expect(listed.tokens.map(\.id) == [first.token!.id])
        // Keys belong to their scope.
        let elsewhere = try await f.admin(RegistryFixture.scopeQ).call(V1.TokensService.issue, request)
        #expect(elsewhere.token?.id != first.token?.id)
    }

    @Test func wrongSecretsAllGetTheSameAnswer() async throws {
        let f = try RegistryFixture()
        let agent = try await f.createAgent("a")
        let issued = try await f.admin().call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id))
        let altered = String(issued.secret.dropLast()) + (issued.secret.hasSuffix("0") ? "1" : "0")
        for secret in [
            altered, issued.secret + "_x", String(issued.secret.dropLast(issued.secret.count - 20)), "pt_tok_deadbeef_00",
            "garbage", "pt_tok__", "pt_tok_x_", "pt_tokx_y",
        ] {
            let error = await rpcError { _ = try await f.gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: secret)) }
            #expect(error == RPCError(.unauthenticated, "invalid, expired or revoked token"), "\(secret)")
        }
    }

    @Test func onlyTheGatewayMayResolve() async throws {
        let f = try RegistryFixture()
        let error = await rpcError { _ = try await f.admin().call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: "x")) }
        #expect(error?.code == .permissionDenied)
    }

    @Test func issueValidatesRoleAndAgent() async throws {
        let f = try RegistryFixture()
        let noRole = await rpcError { _ = try await f.admin().call(V1.TokensService.issue, V1.IssueTokenRequest()) }
        #expect(noRole?.message.hasPrefix("role") == true)
        let noAgent = await rpcError { _ = try await f.admin().call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent)) }
        #expect(noAgent == RPCError(.invalidArgument, "agent_id is required"))
        let unknown = await rpcError { _ = try await f.admin().call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: "agt_x")) }
        #expect(unknown == RPCError(.notFound, "agent 'agt_x' not found"))
    }
}

@Suite struct ScopeIsolationTests {
    /// Everything of project P is invisible from project Q and from env E2, answered exactly
    /// like an id that never existed.
    @Test func anotherProjectOrEnvSeesNothing() async throws {
        let f = try RegistryFixture()
        let a = try await f.createAgent("a")
        let b = try await f.createAgent("b")
        let cluster = try await f.admin().call(V1.ClustersService.create, V1.CreateClusterRequest(name: "C", slug: "c", agentIds: [a.id, b.id]))
        let token = try await f.admin().call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: a.id))
        for scope in [RegistryFixture.scopeQ, RegistryFixture.scopeE2] {
            let outsider = f.admin(scope)
            for (id, random) in [(a.id, "agt_000000000000000000000000")] {
                let real = await rpcError { _ = try await outsider.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: id)) }
                let fake = await rpcError { _ = try await outsider.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: random)) }
                #expect(real?.code == .notFound)
                #expect(real?.message == fake?.message.replacingOccurrences(of: random, with: id))
            }
            let clusterError = await rpcError { _ = try await outsider.call(V1.ClustersService.get, V1.GetClusterRequest(clusterId: cluster.id)) }
            #expect(clusterError == RPCError(.notFound, "cluster '\(cluster.id)' not found"))
            let tokenError = await rpcError { _ = try await outsider.call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: token.token!.id)) }
            #expect(tokenError == RPCError(.notFound, "token '\(token.token!.id)' not found"))
            let deleteError = await rpcError { _ = try await outsider.call(V1.AgentsService.delete, V1.DeleteAgentRequest(agentId: a.id)) }
            #expect(deleteError?.code == .notFound)
            let moveError = await rpcError { _ = try await outsider.call(V1.ClustersService.addMember, V1.AddMemberRequest(clusterId: cluster.id, agentId: a.id)) }
            #expect(moveError?.code == .notFound)
            #expect(try await outsider.call(V1.AgentsService.list, V1.ListAgentsRequest()).agents.isEmpty)
            #expect(try await outsider.call(V1.ClustersService.list, V1.ListClustersRequest()).clusters.isEmpty)
            #expect(try await outsider.call(V1.TokensService.list, V1.ListTokensRequest()).tokens.isEmpty)
        }
        // Nothing changed in P.
        #expect(try await f.admin().call(V1.ClustersService.get, V1.GetClusterRequest(clusterId: cluster.id)).agentIds.count == 2)
        #expect(try await f.gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: token.secret)).tokenId == token.token!.id)
    }

    /// An agent reads itself and its own cluster; the other clusters of its scope, their members
    /// and the agents in no cluster are answered like ids that do not exist. Admins read it all.
    @Test func anAgentReadsOnlyItsOwnCluster() async throws {
        let f = try RegistryFixture()
        let (a1, a2, b1, b2, loner) = (
            try await f.createAgent("a1"), try await f.createAgent("a2"), try await f.createAgent("b1"),
            try await f.createAgent("b2"), try await f.createAgent("loner")
        )
        let a = try await f.admin().call(V1.ClustersService.create, V1.CreateClusterRequest(name: "A", slug: "a", agentIds: [a1.id, a2.id]))
        let b = try await f.admin().call(V1.ClustersService.create, V1.CreateClusterRequest(name: "B", slug: "b", agentIds: [b1.id, b2.id]))
        let asA1 = f.agent(a1.id, cluster: a.id)
        #expect(try await asA1.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: a2.id)).id == a2.id)
        #expect(try await asA1.call(V1.ClustersService.get, V1.GetClusterRequest(clusterId: a.id)).id == a.id)
        #expect(Set(try await asA1.call(V1.AgentsService.list, V1.ListAgentsRequest()).agents.map(\.id)) == [a1.id, a2.id])
        #expect(try await asA1.call(V1.ClustersService.list, V1.ListClustersRequest()).clusters.map(\.id) == [a.id])
        for id in [b1.id, loner.id] {
            let error = await rpcError { _ = try await asA1.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: id)) }
            #expect(error == RPCError(.notFound, "agent '\(id)' not found"))
        }
        let clusterError = await rpcError { _ = try await asA1.call(V1.ClustersService.get, V1.GetClusterRequest(clusterId: b.id)) }
        #expect(clusterError == RPCError(.notFound, "cluster '\(b.id)' not found"))
        // An agent in no cluster reads itself only.
        let asLoner = f.agent(loner.id)
        #expect(try await asLoner.call(V1.AgentsService.get, V1.GetAgentRequest(agentId: loner.id)).id == loner.id)
        #expect(try await asLoner.call(V1.AgentsService.list, V1.ListAgentsRequest(unclusteredOnly: true)).agents.map(\.id) == [loner.id])
        #expect(try await asLoner.call(V1.ClustersService.list, V1.ListClustersRequest()).clusters.isEmpty)
        #expect(try await f.admin().call(V1.AgentsService.list, V1.ListAgentsRequest()).agents.count == 5)
        #expect(try await f.admin().call(V1.ClustersService.list, V1.ListClustersRequest()).clusters.count == 2)
    }
}

@Suite struct MembershipVersionTests {
    /// The version in admin answers counts the caller's scope only: another tenant's activity
    /// does not move it.
    @Test func answersCountTheCallersScopeOnly() async throws {
        let f = try RegistryFixture()
        let a = try await f.createAgent("a"), b = try await f.createAgent("b")
        let p = f.admin()
        let cluster = try await p.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "P", slug: "p", agentIds: [a.id, b.id]))
        let noOp = V1.MoveMemberRequest(agentId: a.id, toClusterId: cluster.id)
        let before = try await p.call(V1.ClustersService.moveMember, noOp).membershipVersion
        #expect(before == 2)

        let q = f.admin(RegistryFixture.scopeQ)
        let c = try await f.createAgent("c", scope: RegistryFixture.scopeQ), d = try await f.createAgent("d", scope: RegistryFixture.scopeQ)
        _ = try await q.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "Q", slug: "q", agentIds: [c.id, d.id]))
        let token = try await q.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: c.id))
        _ = try await q.call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: token.token!.id))

        #expect(try await p.call(V1.ClustersService.moveMember, noOp).membershipVersion == before)
        let removed = try await p.call(V1.ClustersService.removeMember, V1.RemoveMemberRequest(clusterId: cluster.id, agentId: b.id))
        #expect(removed.membershipVersion == before + 1)
    }
}

@Suite struct WatchTests {
    @Test func aMoveIsPublishedAndAResumingWatcherMissesNothing() async throws {
        let f = try RegistryFixture()
        let a = try await f.createAgent("a"), b = try await f.createAgent("b"), c = try await f.createAgent("c"), d = try await f.createAgent("d")
        let admin = f.admin()
        let first = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "One", slug: "one", agentIds: [a.id, b.id]))
        let second = try await admin.call(V1.ClustersService.create, V1.CreateClusterRequest(name: "Two", slug: "two", agentIds: [c.id, d.id]))

        // A watcher reads the backlog (4 joins), then sees the move live.
        var events: [V1.MembershipEvent] = []
        let stream = f.gateway.stream(V1.RegistryService.watch, V1.WatchRegistryRequest(afterVersion: 0))
        var iterator = stream.makeAsyncIterator()
        for _ in 0..<4 { events.append(try #require(try await iterator.next())) }
        let caughtUp = try #require(try await iterator.next())
        #expect(caughtUp.version == 4 && caughtUp.agentId.isEmpty && caughtUp.revokedTokenId.isEmpty)
        let moved = try await admin.call(V1.ClustersService.moveMember, V1.MoveMemberRequest(agentId: b.id, toClusterId: second.id))
        let live = try #require(try await iterator.next())
        #expect(live.agentId == b.id)
        #expect(live.clusterId == second.id)
        #expect(live.previousClusterId == first.id)
        #expect(live.version == moved.membershipVersion)
        events.append(live)
        #expect(events.map(\.version) == Array(1...5))

        // Changes made while no one watches are replayed to a watcher resuming from its version.
        _ = try await admin.call(V1.ClustersService.removeMember, V1.RemoveMemberRequest(clusterId: first.id, agentId: a.id))
        _ = try await admin.call(V1.ClustersService.addMember, V1.AddMemberRequest(clusterId: first.id, agentId: a.id))
        var resumed = f.gateway.stream(V1.RegistryService.watch, V1.WatchRegistryRequest(afterVersion: live.version)).makeAsyncIterator()
        let next1 = try #require(try await resumed.next())
        let next2 = try #require(try await resumed.next())
        let marker = try #require(try await resumed.next())
        #expect([next1.version, next2.version, marker.version] == [6, 7, 7])
        #expect(next1.clusterId == "" && next2.clusterId == first.id)
    }

    /// Changes committed together are published by their writers' tasks in any order; the
    /// watcher still gets every one of them, once, in version order.
    @Test func concurrentChangesReachAWatcherGapFreeAndInOrder() async throws {
        let f = try RegistryFixture()
        let agent = try await f.createAgent("a")
        let admin = f.admin()
        let count = 200
        var tokens: [String] = []
        for _ in 0...count {
            tokens.append(try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id)).token!.id)
        }
        let sentinel = tokens.removeLast()
        var iterator = f.gateway.stream(V1.RegistryService.watch, V1.WatchRegistryRequest()).makeAsyncIterator()
        let caughtUp = try #require(try await iterator.next())
        #expect(caughtUp.revokedTokenId.isEmpty && caughtUp.agentId.isEmpty)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in tokens {
                group.addTask { _ = try await admin.call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: id)) }
            }
            try await group.waitForAll()
        }
        // Revoked after all the others were answered: the last event, whatever came before it.
        _ = try await admin.call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: sentinel))
        var events: [V1.MembershipEvent] = []
        while let event = try await iterator.next() {
            if event.revokedTokenId == sentinel { break }
            events.append(event)
        }
        #expect(events.map(\.version) == Array(caughtUp.version + 1...caughtUp.version + UInt64(count)))
        #expect(Set(events.map(\.revokedTokenId)) == Set(tokens))
    }

    /// The gateway resolves a token again the moment it hears of its revocation. The watch sends
    /// an event as soon as it is committed (a watcher woken by another writer reads it from the
    /// table), which can be before the revoking writer's own task runs again: the resolve must
    /// not be answered from what the registry cached before the commit.
    @Test func aTokenResolvedAsSoonAsItsRevocationIsWatchedIsRejected() async throws {
        let f = try RegistryFixture()
        let agent = try await f.createAgent("a")
        let admin = f.admin()
        let count = 200
        var secrets: [String: String] = [:]
        for _ in 0..<count {
            let issued = try await admin.call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id))
            secrets[issued.token!.id] = issued.secret
            // Cached in the registry from here on.
            _ = try await f.gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: issued.secret))
        }
        var iterator = f.gateway.stream(V1.RegistryService.watch, V1.WatchRegistryRequest()).makeAsyncIterator()
        _ = try #require(try await iterator.next())  // caught up

        let ids = Array(secrets.keys)
        let revocations = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for id in ids {
                    group.addTask { _ = try await admin.call(V1.TokensService.revoke, V1.RevokeTokenRequest(tokenId: id)) }
                }
                try await group.waitForAll()
            }
        }
        var stillAccepted: [String] = []
        var seen = 0
        while seen < count, let event = try await iterator.next() {
            guard let secret = secrets[event.revokedTokenId] else { continue }
            seen += 1
            do {
                _ = try await f.gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: secret))
                stillAccepted.append(event.revokedTokenId)
            } catch let error as RPCError {
                #expect(error.code == .unauthenticated)
            }
        }
        try await revocations.value
        #expect(seen == count)
        #expect(stillAccepted.isEmpty, "resolved after their revocation was watched: \(stillAccepted.count) of \(count)")
    }

    /// The window behind the test above, held open: the revocation is committed (a watcher can
    /// already read its event from the table) and its writer's task has not run again yet. A
    /// resolve then reads the database, not what the registry cached before the commit.
    @Test func aResolveWhileARevocationIsInFlightReadsTheDatabase() async throws {
        let f = try RegistryFixture()
        let agent = try await f.createAgent("a")
        let issued = try await f.admin().call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: agent.id))
        let resolve = V1.ResolveTokenRequest(secret: issued.secret)
        _ = try await f.gateway.call(V1.AuthService.resolve, resolve)  // cached from here on
        let store = try #require(f.handlers.store as? SQLiteRegistryStore)

        store.resolveCache.beginChange()  // what revokeToken does before its write
        try await store.database.write { db in
            try db.execute(sql: "UPDATE token SET revoked_at = 1 WHERE id = ?", arguments: [issued.token!.id])
        }
        let inTheWindow = await rpcError { _ = try await f.gateway.call(V1.AuthService.resolve, resolve) }
        store.resolveCache.endChange(changed: true)
        let after = await rpcError { _ = try await f.gateway.call(V1.AuthService.resolve, resolve) }

        #expect(inTheWindow?.code == .unauthenticated)
        #expect(after?.code == .unauthenticated)
    }

    /// Membership calls that change nothing (refused, or a move to where the agent already is)
    /// keep the cached answers: only a write that changed rows may have made one wrong.
    @Test func membershipCallsThatChangeNothingKeepTheResolveCache() async throws {
        let f = try RegistryFixture()
        let a = try await f.createAgent("a"), b = try await f.createAgent("b"), c = try await f.createAgent("c")
        let cluster = try await f.admin().call(
            V1.ClustersService.create, V1.CreateClusterRequest(name: "P", slug: "p", agentIds: [a.id, b.id]))
        let issued = try await f.admin().call(V1.TokensService.issue, V1.IssueTokenRequest(role: .agent, agentId: a.id))
        _ = try await f.gateway.call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: issued.secret))
        let store = try #require(f.handlers.store as? SQLiteRegistryStore)
        let tokenId = try #require(issued.token?.id)
        #expect(store.resolveCache.entry(tokenId) != nil)

        let refused = await rpcError {
            _ = try await f.admin().call(V1.ClustersService.removeMember, V1.RemoveMemberRequest(clusterId: cluster.id, agentId: c.id))
        }
        #expect(refused?.code == .failedPrecondition)
        _ = try await f.admin().call(V1.ClustersService.moveMember, V1.MoveMemberRequest(agentId: a.id, toClusterId: cluster.id))
        #expect(store.resolveCache.entry(tokenId) != nil)

        // A change does clear it.
        _ = try await f.admin().call(V1.ClustersService.addMember, V1.AddMemberRequest(clusterId: cluster.id, agentId: c.id))
        #expect(store.resolveCache.entry(tokenId) == nil)
    }

    /// A watcher ahead of the registry's history (restored from a backup) is told so, with the
    /// version to watch from, instead of waiting silently for versions it believes it has.
    @Test func aWatcherAheadOfTheHistoryGetsOutOfRangeWithTheNewestVersion() async throws {
        let f = try RegistryFixture()
        let a = try await f.createAgent("a"), b = try await f.createAgent("b")
        _ = try await f.admin().call(V1.ClustersService.create, V1.CreateClusterRequest(name: "P", slug: "p", agentIds: [a.id, b.id]))
        let error = await rpcError {
            for try await _ in f.gateway.stream(V1.RegistryService.watch, V1.WatchRegistryRequest(afterVersion: 99)) {}
        }
        #expect(error?.code == .outOfRange)
        #expect(error?.details[MetadataKey.currentVersion] == "2")
        var iterator = f.gateway.stream(V1.RegistryService.watch, V1.WatchRegistryRequest(afterVersion: 2)).makeAsyncIterator()
        #expect(try await iterator.next()?.version == 2)
    }

    @Test func anAgentsWatchIsLimitedToItsScope() async throws {
        let f = try RegistryFixture()
        let a = try await f.createAgent("a"), b = try await f.createAgent("b")
        let x = try await f.createAgent("x", scope: RegistryFixture.scopeQ), y = try await f.createAgent("y", scope: RegistryFixture.scopeQ)
        _ = try await f.admin(RegistryFixture.scopeQ).call(V1.ClustersService.create, V1.CreateClusterRequest(name: "Q", slug: "q", agentIds: [x.id, y.id]))
        _ = try await f.admin().call(V1.ClustersService.create, V1.CreateClusterRequest(name: "P", slug: "p", agentIds: [a.id, b.id]))
        var iterator = f.admin().stream(V1.RegistryService.watch, V1.WatchRegistryRequest()).makeAsyncIterator()
        let first = try #require(try await iterator.next())
        let second = try #require(try await iterator.next())
        #expect(first.scope == RegistryFixture.scopeP && second.scope == RegistryFixture.scopeP)
    }
}
