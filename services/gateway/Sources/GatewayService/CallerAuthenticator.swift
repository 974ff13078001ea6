import Foundation
import Logging
import PlatosAuth
import PlatosProto
import PlatosRPC

/// Who is calling, as the gateway established it.
struct AuthenticatedCaller: Sendable {
    /// What the backends will see.
    var principal: V1.Principal
    /// The token presented, for rate limiting and for ending its live calls when it is revoked.
    var tokenId: String
    /// When that token expires (Unix ms), 0 for never.
    var tokenExpiresAtUnixMs: Int64
}

/// Turns a call's metadata into the principal the backends will see: the token's identity, the
/// agent's current cluster, and the end user it acts for.
struct CallerAuthenticator: Sendable {
    let backends: Backends
    let cache: PrincipalCache

    /// The caller, or `UNAUTHENTICATED` / `PERMISSION_DENIED` / `UNAVAILABLE`.
    ///
    /// `admit` runs once the token is known and before anything else is looked up for the call
    /// (the task named in `x-platos-task` is a read on the threads service): a caller over its
    /// rate limit must cost the backends nothing.
    func caller(
        _ context: ServerContext, admit: (PrincipalCache.Entry) throws -> Void = { _ in }
    ) async throws -> AuthenticatedCaller {
        guard let header = context.metadata[MetadataKey.authorization] else {
            throw RPCError(.unauthenticated, "missing 'authorization: Bearer <token>' metadata")
        }
        guard let secret = Self.bearerSecret(header) else {
            throw RPCError(.unauthenticated, "the authorization metadata must be 'Bearer <token>'")
        }
        guard !secret.isEmpty else { throw RPCError(.unauthenticated, "the bearer token is empty") }
        let resolved = try await resolve(secret)
        try admit(resolved)
        var principal = resolved.principal
        try await actFor(&principal, context)
        return AuthenticatedCaller(
            principal: principal, tokenId: resolved.tokenId, tokenExpiresAtUnixMs: resolved.expiresAtUnixMs)
    }

    /// What follows `Bearer `, without the spaces and tabs around it, or nil when the header is
    /// not a bearer credential. The scheme is matched without regard to case, as HTTP's are
    /// (RFC 9110 §11.1). Tokens are ASCII: those are trimmed byte by byte (for ASCII,
    /// `.whitespaces` is exactly space and tab); anything else goes through Foundation's
    /// `trimmingCharacters`, which cost a twentieth of the gateway's CPU when every call went
    /// through it.
    static func bearerSecret(_ header: String) -> String? {
        let scheme = "bearer ".utf8
        guard header.utf8.count >= scheme.count,
            zip(header.utf8, scheme).allSatisfy({ (0x41...0x5A).contains($0) ? $0 | 0x20 == $1 : $0 == $1 })
        else { return nil }
        let rest = header.utf8.dropFirst(scheme.count)
        guard rest.allSatisfy({ $0 < 0x80 }) else {
            return String(header.dropFirst(scheme.count)).trimmingCharacters(in: .whitespaces)
        }
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let first = rest.firstIndex(where: { !isBlank($0) }), let last = rest.lastIndex(where: { !isBlank($0) }) else {
            return ""
        }
        return String(Substring(rest[first...last]))
    }

    private func resolve(_ secret: String) async throws -> PrincipalCache.Entry {
        let key = PrincipalCache.key(secret)
        if let cached = cache.lookup(key) { return cached }
        let generation = cache.generation
        let response: V1.ResolveTokenResponse
        do {
            response = try await backends.client(.registry, as: ServicePrincipal.gateway)
                .call(V1.AuthService.resolve, V1.ResolveTokenRequest(secret: secret), timeout: .seconds(5))
        } catch let error as RPCError where error.code == .unauthenticated {
            throw error
        } catch let error as RPCError where error.code == .invalidArgument {
            // A secret the registry cannot even parse is a bad credential, not an outage.
            throw RPCError(.unauthenticated, "invalid, expired or revoked token")
        } catch let error as RPCError {
            // Fail closed: without the registry nobody is let in on a stale answer.
            throw RPCError(.unavailable, "cannot authenticate: the registry is unavailable (\(error.message))")
        }
        guard let principal = response.principal else { throw RPCError(.unauthenticated, "invalid, expired or revoked token") }
        let entry = PrincipalCache.Entry(
            principal: principal, tokenId: response.tokenId, expiresAtUnixMs: response.expiresAtUnixMs, storedAt: .now)
        cache.store(entry, for: key, readAt: generation)
        return entry
    }

    /// The end user: bound to the token, else `x-platos-user`, else — for a worker that names the
    /// task it works on in `x-platos-task` — the user of that task's spawner.
    /// The longest `x-platos-user` (and `x-platos-task`) accepted: ids, not documents. The user
    /// also travels inside the stamp, so a long one would cost twice in the backend's metadata.
    static let maxHeaderIdBytes = 256

    /// Sets the principal's end user (and task) from the token and the call's metadata.
    private func actFor(_ principal: inout V1.Principal, _ context: ServerContext) async throws {
        let header = context.metadata[MetadataKey.user] ?? ""
        let taskId = context.metadata[MetadataKey.task] ?? ""
        for (key, value) in [(MetadataKey.user, header), (MetadataKey.task, taskId)]
        where value.utf8.count > Self.maxHeaderIdBytes {
            throw RPCError(
                .invalidArgument, "\(key) is \(value.utf8.count) bytes; the limit is \(Self.maxHeaderIdBytes)")
        }
        let bound = principal.userId
        if !bound.isEmpty, !header.isEmpty, header != bound {
            throw RPCError(.permissionDenied, "this token acts only for its bound user; x-platos-user names another")
        }
        guard !taskId.isEmpty else {
            if bound.isEmpty { principal.userId = header }
            return
        }
        let task = try await workedTask(taskId, by: principal)
        guard header.isEmpty || header == task.userId else {
            throw RPCError(.permissionDenied, "x-platos-user differs from the user of the task named in x-platos-task")
        }
        guard bound.isEmpty || bound == task.userId else {
            throw RPCError(.permissionDenied, "this token acts only for its bound user; x-platos-task names another user's task")
        }
        principal.userId = task.userId
        principal.taskId = task.id
    }

    /// The task named in `x-platos-task`: given to this agent and running. A worker acts for the
    /// task's user while it works on the task (DESIGN §5.3), not once the task is over.
    private func workedTask(_ taskId: String, by principal: V1.Principal) async throws -> V1.Task {
        let task = try await backends.client(.threads, as: principal)
            .call(V1.TasksService.get, V1.GetTaskRequest(taskId: taskId), timeout: .seconds(5))
        guard task.targetAgentId == principal.agentId else {
            throw RPCError(.permissionDenied, "x-platos-task names a task that was not given to this agent")
        }
        guard task.state == .running else {
            throw RPCError(
                .failedPrecondition,
                "x-platos-task names task \(task.id), which is \(task.state); a worker acts for the task's user "
                    + "only while the task runs (claim it first, or drop the header once it is done)")
        }
        return task
    }
}

/// Keeps the principal cache honest: follows `registry.watch`, drops entries a change touches
/// and ends the live calls it touches, and marks the cache unusable (and ends every live call)
/// whenever the feed is down.
struct MembershipWatcher: Sendable {
    let backends: Backends
    let cache: PrincipalCache
    let liveCalls: LiveCalls
    let logger: Logger

    func run() async {
        var after: UInt64 = 0
        var attempt = 0
        while !Task.isCancelled {
            do {
                let stream = backends.client(.registry, as: ServicePrincipal.gateway)
                    .stream(V1.RegistryService.watch, V1.WatchRegistryRequest(afterVersion: after))
                for try await event in stream {
                    if event.agentId.isEmpty, event.revokedTokenId.isEmpty {
                        cache.feedCaughtUp(at: event.version)
                        attempt = 0
                    } else {
                        cache.apply(event)
                        liveCalls.end(touchedBy: event)
                    }
                    after = max(after, event.version)
                }
            } catch let error as RPCError where error.code == .outOfRange {
                // The registry's history went back (restored from a backup): what was cached
                // was derived from versions that no longer exist. Start over from its newest.
                logger.warning("registry.watch history was reset; every cached token dropped", metadata: ["error": "\(error)"])
                cache.invalidateAll()
                after = error.details[MetadataKey.currentVersion].flatMap { UInt64($0) } ?? 0
            } catch {
                // Cancelled: the gateway is shutting down, nothing was lost.
                if !Task.isCancelled {
                    logger.warning(
                        "registry.watch lost; caching of tokens is off until it is back", metadata: ["error": "\(error)"])
                }
            }
            cache.feedLost()
            liveCalls.endAll()
            attempt += 1
            try? await Task.sleep(for: .milliseconds(min(2000, 50 * (1 << min(attempt, 6)))))
        }
    }
}
