import Foundation
import PlatosAuth
import PlatosProto
import PlatosRPC
import ProtobufCSwift
import Testing

/// The cross-tenant matrix of issue #8, generated from the method table, so that a new method is
/// covered as soon as it is generated.
///
/// On one stack of the four real executables, a victim tenant owns one resource of every kind
/// (``MatrixTenant``). Attackers are agents of another cluster of the victim's scope, and agents
/// and admins of another project, another env and another org. For every method the gateway
/// routes, every attacker sends requests built from the request message's own fields
/// (``fieldRoles`` says what each field names): one victim resource at a time with the other
/// fields holding the attacker's own valid resources (or left empty), and all of them at once.
///
/// * A request that points a *target* field (the resource the method reads or changes) at the
///   victim must be refused with `NOT_FOUND` or `PERMISSION_DENIED`, and answered exactly as the
///   same request naming an id that does not exist (DESIGN §4: ids leak nothing). A *filter*
///   field (it narrows a read, or is ignored by design) may be answered, but the same way as for
///   an id that does not exist. No answer, of any request, may contain anything of the victim's
///   (its ids, secrets, or the canary word in every text it wrote).
/// * Streams (`threads.watch`, `tasks.watch`) are held to the same rule: a stream naming the
///   victim's thread or task must end with `NOT_FOUND` or `PERMISSION_DENIED` before it yields a
///   single message; a stream that stays open (cut after a short window) fails the cell.
/// * `x-platos-task` naming the victim's task is refused on every method that needs a principal.
/// * The victim's state, read as the victim before and after, is identical.
/// * Every method of every backend, called straight at the backend's port with a stamp that is
///   missing, unsigned, signed with another secret, made for another method, expired, or made
///   for another principal, is `UNAUTHENTICATED`; the same call properly signed is not.
///
/// A request field missing from ``fieldRoles`` fails the test: the matrix never guesses.
@Suite(.serialized) struct CrossTenantMatrixTests {
    /// What a request field holds in the matrix.
    enum FieldRole: Sendable {
        /// Names the resource the method reads or changes: the victim's must be refused.
        case target(MatrixResource)
        /// Narrows a read, or is ignored by design: the victim's may be answered, never with its data.
        case filter(MatrixResource)
        /// The lease of the task the request names: it goes with that task, never on its own.
        case lease
        /// Left at its default.
        case absent
        /// A harmless valid value; wrapped as `{"value": ...}` for a `StringValue` field.
        case value(JSONValue)
        /// A fresh slug-like string per request (slugs must not collide); wrapped likewise.
        case unique
        /// The victim's canary word: a search that leaks would find the victim's texts.
        case victimCanary
    }

    /// Every request field of every routed method, by `Message.field` or by field name. A new
    /// field, or a new method with fields of its own, must be added here (the test says which).
    static let fieldRoles: [String: FieldRole] = [
        // What a request can point at another tenant.
        "agent_id": .target(.agent),
        "agent_ids": .target(.agent),
        "target_agent": .target(.agentRef),
        "cluster_id": .target(.cluster),
        "to_cluster_id": .target(.cluster),
        "token_id": .target(.token),
        "secret": .target(.tokenSecret),
        "thread_id": .target(.thread),
        "task_id": .target(.task),
        "memory_id": .target(.memory),
        "lease_id": .lease,
        // Filters of a list or a search, and a field the gateway overwrites (`tasks.spawn`
        // resolves `target_agent` itself and ignores what a client sets).
        "author_agent_id": .filter(.agent),
        "ListTokensRequest.agent_id": .filter(.agent),
        "ListTasksRequest.thread_id": .filter(.thread),
        "SpawnTaskRequest.target_agent_id": .filter(.agent),
        // Payload.
        "slug": .unique,
        "name": .value(.string("Matrix probe")),
        "title": .value(.string("matrix probe")),
        "content": .value(.string("matrix probe")),
        "prompt": .value(.string("matrix probe")),
        "result": .value(.string("matrix probe")),
        "error": .value(.string("matrix probe")),
        "query": .victimCanary,
        "include_revoked": .value(.bool(true)),
        "IssueTokenRequest.role": .value(.string("ROLE_AGENT")),
        "PostMessageRequest.role": .value(.string("MESSAGE_ROLE_AGENT")),
        // End users are not tenants: every tenant serves the same user, so erasing that user is
        // the caller's own business, and the victim's snapshot shows it was only the caller's.
        "ForgetUserRequest.user_id": .value(.string(MatrixTenant.user)),
        // The newest-first read of messages.list: the path context.load takes.
        "ListMessagesRequest.newest": .value(.bool(true)),
        // With the thread in the answer: a foreign thread's header must not come back either.
        "ListMessagesRequest.include_thread": .value(.bool(true)),
        // Defaults.
        "page": .absent, "metadata": .absent, "idempotency_key": .absent, "avatar_url": .absent,
        "description": .absent, "replace_metadata": .absent, "unclustered_only": .absent,
        "bound_user_id": .absent, "ttl_seconds": .absent, "after_version": .absent, "tags": .absent,
        "replace_tags": .absent, "visibility": .absent, "expires_at_unix_ms": .absent, "limit": .absent,
        "since_unix_ms": .absent, "until_unix_ms": .absent, "expected_version": .absent,
        "metadata_filter": .absent, "after_seq": .absent, "wait_ms": .absent, "lease_ms": .absent,
        "state": .absent, "recall_limit": .absent, "message_limit": .absent, "service": .absent,
    ]

    static let refused: Set<RPCError.Code> = [.notFound, .permissionDenied]

    struct Attacker: Sendable {
        let label: String
        let tenant: MatrixTenant
        let secret: String
        var metadata: Metadata { ["authorization": "Bearer \(secret)", "x-platos-user": MatrixTenant.user] }
    }

    @Test func noMethodReachesAnotherTenant() async throws {
        let stack = try await SeedStoryTests.startStack()
        let port = stack.gateway.port
        let dataDir = stack.registry.dataDir
        func adminSecret(_ scope: V1.Scope) throws -> String {
            let (secret, status) = try ServiceProcess.issueAdminToken(
                dataDir: dataDir, org: scope.org, project: scope.project, env: scope.env)
            guard status == 0 else { throw RPCError(.internal, "issue-admin-token exited \(status)") }
            return secret
        }
        let home = V1.Scope(org: "acme", project: "wally", env: "prod")
        let victim = try await MatrixTenant.make(name: "vic", scope: home, adminSecret: stack.adminSecret, port: port)
        let sameScope = try await MatrixTenant.make(name: "xcl", scope: home, adminSecret: stack.adminSecret, port: port)
        var others: [(String, MatrixTenant)] = []
        for (label, name, scope) in [
            ("another project", "xpr", V1.Scope(org: "acme", project: "other", env: "prod")),
            ("another env", "xen", V1.Scope(org: "acme", project: "wally", env: "staging")),
            ("another org", "xor", V1.Scope(org: "zeta", project: "wally", env: "prod")),
        ] {
            others.append((label, try await MatrixTenant.make(name: name, scope: scope, adminSecret: try adminSecret(scope), port: port)))
        }
        // An admin of the victim's own scope administers the victim legitimately: the cluster
        // next door attacks with its agent only.
        var attackers = [Attacker(label: "an agent of another cluster", tenant: sameScope, secret: sameScope.chatToken.secret)]
        for (label, tenant) in others {
            attackers.append(Attacker(label: "an agent of \(label)", tenant: tenant, secret: tenant.chatToken.secret))
            attackers.append(Attacker(label: "the admin of \(label)", tenant: tenant, secret: tenant.adminSecret))
        }

        let before = try await victim.snapshot(port: port)
        #expect(before["tasks"]?.contains(victim.running.id) == true && before["tasks"]?.contains(victim.queued.id) == true)
        #expect(before["chat's memories"]?.contains(victim.privateMemory.id) == true)

        let gateway = RPCConnectionPool(host: "127.0.0.1", port: port)
        let started = ContinuousClock.now
        let cells = try await Self.gatewayMatrix(gateway, victim: victim, attackers: attackers)
        try await Self.internalMethodsAreNotRouted(gateway, victim: victim, attackers: attackers)
        let forged = try await Self.backendPortsWantTheGatewaysSignature(stack, victim: victim, stranger: others[0].1)
        await gateway.close()

        let after = try await victim.snapshot(port: port)
        for key in Set(before.keys).union(after.keys).sorted() where before[key] != after[key] {
            Issue.record("the matrix changed the victim's \(key):\nbefore: \(before[key] ?? "nothing")\nafter:  \(after[key] ?? "nothing")")
        }
        print(
            "cross-tenant matrix: \(cells.methods) methods × \(attackers.count) attackers = \(cells.pairs) cells, "
                + "\(cells.probes) requests, \(cells.calls) gateway calls with their controls, "
                + "\(forged) forged backend calls, in \(ContinuousClock.now - started)")
        #expect(await stack.stop() == [0, 0, 0, 0])
    }

    // MARK: The gateway

    /// Every routed method × every attacker, the attackers side by side (their tenants share
    /// nothing but the end user, and erasing that user stays in each caller's own scope). Returns
    /// what it counted.
    static func gatewayMatrix(_ gateway: RPCConnectionPool, victim: MatrixTenant, attackers: [Attacker]) async throws
        -> (methods: Int, pairs: Int, probes: Int, calls: Int)
    {
        let routed = V1.allMethods.filter { $0.access != .internal }
        let (probes, calls, unmapped) = try await withThrowingTaskGroup(of: (Int, Int, Set<String>).self) { group in
            for attacker in attackers {
                group.addTask { try await attack(gateway, routed, victim: victim, attacker: attacker) }
            }
            return try await group.reduce(into: (0, 0, Set<String>())) {
                $0.0 += $1.0
                $0.1 += $1.1
                $0.2.formUnion($1.2)
            }
        }
        for problem in unmapped.sorted() { Issue.record(Comment(rawValue: problem)) }
        return (routed.count, routed.count * attackers.count, probes, calls)
    }

    /// One attacker's row of the matrix: how many requests it built and calls it made, and the
    /// fields it found unmapped.
    static func attack(_ gateway: RPCConnectionPool, _ routed: [RPCMethodDescriptor], victim: MatrixTenant, attacker: Attacker)
        async throws -> (Int, Int, Set<String>)
    {
        let markers = victim.markers
        var probes = 0
        var calls = 0
        var builder = ProbeBuilder(victim: victim, attacker: attacker.tenant)
        for method in routed {
            var covered: Set<String> = []
            let built = builder.probes(method)
            let mustCover = Set(built.filter { $0.kind == .target }.flatMap(\.fields))
            for probe in built {
                probes += 1
                calls += 1
                let cell = "\(method.name) as \(attacker.label), \(probe.summary)"
                let outcome = try await call(gateway, method, probe.request, attacker.metadata)
                expectNoLeak(outcome, markers, cell)
                guard probe.kind != .noVictim else { continue }
                calls += 1
                let control = try await call(gateway, method, probe.control, attacker.metadata)
                #expect(
                    outcome.code == control.code && outcome.message == probe.restore(control.message),
                    "\(cell): the victim's resource is answered differently from one that does not exist: \(outcome), vs \(control)")
                guard probe.kind == .target else { continue }
                #expect(outcome.code != .ok, "\(cell): succeeded on the victim's resource: \(outcome)")
                // A control that is not refused either means the request did not get past
                // validation; the cell then proves only that nothing differs.
                guard refused.contains(control.code) else { continue }
                covered.formUnion(probe.fields)
                if refused.contains(outcome.code) {
                    #expect(outcome.body.isEmpty, "\(cell): streamed \(outcome.body.count) message(s) before refusing")
                } else {
                    Issue.record("\(cell): expected NOT_FOUND or PERMISSION_DENIED, got \(outcome)")
                }
            }
            for field in mustCover.subtracting(covered).sorted() {
                let problem =
                    "\(method.name) as \(attacker.label): no request naming the victim's \(field) reached the scope check "
                    + "(even with an id that does not exist, each was refused otherwise, by validation first); "
                    + "make fieldRoles fill the other fields validly"
                Issue.record(Comment(rawValue: problem))
            }
            if method.access != .public {
                probes += 1
                calls += 2
                try await workerHeaderIsRefused(gateway, method, builder.ownRequest(method), victim, attacker)
            }
        }
        return (probes, calls, builder.unmapped)
    }

    /// `x-platos-task` naming the victim's task: a worker inherits its task's end user, so the
    /// gateway must refuse a task that is not the caller's, and exactly as a task that does not exist.
    static func workerHeaderIsRefused(
        _ gateway: RPCConnectionPool, _ method: RPCMethodDescriptor, _ request: JSONValue?, _ victim: MatrixTenant,
        _ attacker: Attacker
    ) async throws {
        guard let request else { return }
        let cell = "\(method.name) as \(attacker.label) with x-platos-task naming the victim's task"
        let fake = lookalike(victim.running.id)
        let outcome = try await call(gateway, method, request, ["authorization": "Bearer \(attacker.secret)", "x-platos-task": victim.running.id])
        let control = try await call(gateway, method, request, ["authorization": "Bearer \(attacker.secret)", "x-platos-task": fake])
        expectNoLeak(outcome, victim.markers, cell)
        #expect(refused.contains(outcome.code), "\(cell): expected NOT_FOUND or PERMISSION_DENIED, got \(outcome)")
        #expect(
            outcome.code == control.code
                && outcome.message == control.message.replacingOccurrences(of: fake, with: victim.running.id),
            "\(cell): answered differently from a task that does not exist: \(outcome), vs \(control)")
    }

    /// Internal methods (`auth.resolve`, `registry.watch`) are for the gateway's own use: it must
    /// not route them, to anyone.
    static func internalMethodsAreNotRouted(_ gateway: RPCConnectionPool, victim: MatrixTenant, attackers: [Attacker])
        async throws
    {
        for attacker in attackers {
            var builder = ProbeBuilder(victim: victim, attacker: attacker.tenant)
            for method in V1.allMethods where method.access == .internal {
                guard let request = builder.victimRequest(method) else { continue }
                let outcome = try await call(gateway, method, request, attacker.metadata)
                expectNoLeak(outcome, victim.markers, "\(method.name) as \(attacker.label)")
                #expect(outcome.code == .unimplemented, "\(method.name) as \(attacker.label) through the gateway: \(outcome)")
            }
            for problem in builder.unmapped.sorted() { Issue.record(Comment(rawValue: problem)) }
        }
    }

    // MARK: The backends

    /// Every method of every backend, at the backend's own port, with the victim's own principal
    /// (or the gateway's, for internal methods) carried by a stamp that is not the gateway's valid
    /// one. Returns how many forged calls were made.
    static func backendPortsWantTheGatewaysSignature(
        _ stack: SeedStoryTests.Stack, victim: MatrixTenant, stranger: MatrixTenant
    ) async throws -> Int {
        let signer = try TestSigner(dataDir: stack.registry.dataDir).signer
        let wrongSecret = try PrincipalSigner(secret: (0..<32).map { _ in UInt8.random(in: 0...255) })
        let pools: [MethodOwner: RPCConnectionPool] = [
            .registry: RPCConnectionPool(host: "127.0.0.1", port: stack.registry.port),
            .memory: RPCConnectionPool(host: "127.0.0.1", port: stack.memory.port),
            .threads: RPCConnectionPool(host: "127.0.0.1", port: stack.threads.port),
        ]
        var builder = ProbeBuilder(victim: victim, attacker: victim)
        var forgedCalls = 0
        var backendMethods = 0
        for method in V1.allMethods {
            guard let pool = pools[method.owner] else { continue }
            backendMethods += 1
            guard let request = builder.ownRequest(method) else { continue }
            let principal: V1.Principal
            switch method.access {
            case .internal: principal = ServicePrincipal.gateway
            case .admin: principal = victim.adminPrincipal
            case .agent, .public: principal = victim.agentPrincipal
            }
            let encoded = Data(try principal.serializedBytes()).base64EncodedString()
            let otherMethod = V1.allMethods.first { $0.owner == method.owner && $0.name != method.name }!.name
            var altered = Metadata(try signer.stamp(stranger.agentPrincipal, method: method.name))
            altered[MetadataKey.principal] = encoded
            let forgeries: [(String, Metadata)] = [
                ("no principal", [:]),
                ("a principal without a signature", [MetadataKey.principal: encoded]),
                ("a signature made with another secret", Metadata(try wrongSecret.stamp(principal, method: method.name))),
                ("a signature made for \(otherMethod)", Metadata(try signer.stamp(principal, method: otherMethod))),
                ("a signature ten minutes old", Metadata(try signer.stamp(principal, method: method.name, now: Date() - 600))),
                ("another principal's signature", altered),
            ]
            for (forgery, stamp) in forgeries {
                var metadata = stamp
                metadata[MetadataKey.user] = MatrixTenant.user
                let outcome = try await call(pool, method, request, metadata)
                forgedCalls += 1
                #expect(
                    outcome.code == .unauthenticated && outcome.body.isEmpty,
                    "\(method.name) at the \(method.owner) port with \(forgery): \(outcome)")
            }
            // The same read, properly signed, passes: the stamp was the only reason for the refusals.
            if method.idempotent, method.kind == .unary {
                let signed = try await call(pool, method, request, Metadata(try signer.stamp(principal, method: method.name)))
                #expect(signed.code != .unauthenticated, "\(method.name) at the \(method.owner) port, properly signed: \(signed)")
            }
        }
        #expect(backendMethods >= 30, "only \(backendMethods) backend methods in the method table")
        for problem in builder.unmapped.sorted() { Issue.record(Comment(rawValue: problem)) }
        for pool in pools.values { await pool.close() }
        return forgedCalls
    }

    // MARK: Calls

    struct Outcome: CustomStringConvertible {
        var code: RPCError.Code
        var message: String
        /// The response, or each stream message, as JSON.
        var body: [String]

        var description: String {
            "\(code)" + (message.isEmpty ? "" : " '\(message)'") + (body.isEmpty ? "" : " with \(body)")
        }
    }

    /// How long a stream may stay open before the matrix cuts it (only a failing cell waits this long).
    static let streamWindow: Duration = .seconds(10)

    /// One call of any method, its request given as proto3 JSON, through `transport`.
    static func call(_ transport: any RPCTransport, _ method: RPCMethodDescriptor, _ request: JSONValue, _ metadata: Metadata)
        async throws -> Outcome
    {
        let payload = try encode(method.requestType, request)
        func decoded(_ bytes: [UInt8]) -> String {
            (try? decode(method.responseType, bytes)) ?? "<\(bytes.count) bytes that are not a \(method.responseType)>"
        }
        var body: [String] = []
        do {
            switch method.kind {
            case .unary:
                let bytes = try await transport.unary(
                    method: method, payload: payload, metadata: metadata, deadline: .now + .seconds(10))
                return Outcome(code: .ok, message: "", body: [decoded(bytes)])
            case .serverStreaming:
                let stream = transport.serverStreaming(
                    method: method, payload: payload, metadata: metadata, deadline: .now + streamWindow)
                for try await bytes in stream {
                    body.append(decoded(bytes))
                    if body.count == 20 { break }
                }
                return Outcome(code: .ok, message: "", body: body)
            }
        } catch {
            let status = RPCRouter.status(for: error)
            return Outcome(code: status.code, message: status.message, body: body)
        }
    }

    static func encode<M: ProtoMessage>(_ type: M.Type, _ json: JSONValue) throws -> [UInt8] {
        try M(jsonValue: json).serializedBytes()
    }

    static func decode<M: ProtoMessage>(_ type: M.Type, _ bytes: [UInt8]) throws -> String {
        try M(serializedBytes: bytes).jsonString()
    }

    static func expectNoLeak(_ outcome: Outcome, _ markers: [String], _ cell: String) {
        for text in outcome.body {
            let leaked = markers.filter { text.contains($0) }
            #expect(leaked.isEmpty, "\(cell): the answer holds the victim's \(leaked): \(text)")
        }
    }
}

// MARK: - Requests

/// How a request points at the victim.
enum ProbeKind: Sendable {
    /// It names nothing of the victim's (lists, searches, creations in the caller's own scope).
    case noVictim
    /// Only filters name the victim.
    case filter
    /// A target field names the victim.
    case target
}

struct Probe {
    let kind: ProbeKind
    let request: JSONValue
    /// The victim values the request names, each with the lookalike its control uses instead.
    let substitutions: [String: String]
    /// The fields holding a victim value.
    let fields: [String]
    /// The other resource fields: the attacker's own, or empty.
    let others: String

    /// The same request with every victim value replaced by a lookalike that names nothing.
    var control: JSONValue { Self.replacing(request, substitutions) }

    /// `message` (a control's answer) with the lookalikes put back, to compare with the victim's answer.
    func restore(_ message: String) -> String {
        substitutions.reduce(message) { $0.replacingOccurrences(of: $1.value, with: $1.key) }
    }

    var summary: String {
        switch kind {
        case .noVictim: return "a request naming nothing of the victim's"
        case .filter, .target: return "the victim's \(fields.joined(separator: ", ")) (other resource fields \(others))"
        }
    }

    static func replacing(_ json: JSONValue, _ substitutions: [String: String]) -> JSONValue {
        switch json {
        case .string(let text): return .string(substitutions[text] ?? text)
        case .array(let items): return .array(items.map { replacing($0, substitutions) })
        case .object(let members): return .object(members.map { ($0.0, replacing($0.1, substitutions)) })
        default: return json
        }
    }
}

/// Builds the requests of the matrix from a method's request descriptor and ``CrossTenantMatrixTests/fieldRoles``.
struct ProbeBuilder {
    let victim: MatrixTenant
    let attacker: MatrixTenant
    /// Fields the role table does not know, as messages for the test's failure.
    private(set) var unmapped: Set<String> = []
    private var counter = 0

    init(victim: MatrixTenant, attacker: MatrixTenant) {
        self.victim = victim
        self.attacker = attacker
    }

    enum Source {
        case victim(String)
        case own
        case empty
    }

    typealias Role = CrossTenantMatrixTests.FieldRole

    static func role(_ message: ProtoMessageDescriptor, _ field: ProtoFieldInfo) -> Role? {
        CrossTenantMatrixTests.fieldRoles["\(message.shortName).\(field.name)"] ?? CrossTenantMatrixTests.fieldRoles[field.name]
    }

    static func resource(_ role: Role) -> (MatrixResource, isTarget: Bool)? {
        switch role {
        case .target(let resource): return (resource, true)
        case .filter(let resource): return (resource, false)
        default: return nil
        }
    }

    /// Every request of `method`'s part of the matrix.
    mutating func probes(_ method: RPCMethodDescriptor) -> [Probe] {
        let descriptor = method.requestType.protoDescriptor
        guard let fields = known(method) else { return [] }
        let resourceFields = fields.compactMap { field in
            Self.role(descriptor, field).flatMap(Self.resource).map { (field.name, $0.0, $0.isTarget) }
        }
        guard !resourceFields.isEmpty else {
            guard let (request, _) = build(method, [:]) else { return [] }
            return [Probe(kind: .noVictim, request: request, substitutions: [:], fields: [], others: "")]
        }
        var out: [Probe] = []
        var seen: Set<String> = []
        func add(_ sources: [String: Source], _ kind: ProbeKind, _ named: [String], _ others: String) {
            guard let (request, substitutions) = build(method, sources) else { return }
            guard seen.insert(request.serialized()).inserted else { return }
            out.append(Probe(kind: kind, request: request, substitutions: substitutions, fields: named, others: others))
        }
        for (name, resource, isTarget) in resourceFields {
            for value in victim.values(resource) {
                for (others, label) in [(Source.own, "the attacker's own"), (Source.empty, "empty")] {
                    var sources: [String: Source] = [:]
                    for other in resourceFields where other.0 != name { sources[other.0] = others }
                    sources[name] = .victim(value)
                    add(sources, isTarget ? .target : .filter, [name], resourceFields.count == 1 ? "none" : label)
                }
            }
        }
        if resourceFields.count > 1 {
            var sources: [String: Source] = [:]
            for (name, resource, _) in resourceFields { sources[name] = .victim(victim.values(resource)[0]) }
            add(
                sources, resourceFields.contains { $0.2 } ? .target : .filter, resourceFields.map(\.0).sorted(),
                "none")
        }
        return out
    }

    /// `method`'s request with every resource field holding the attacker's own value.
    mutating func ownRequest(_ method: RPCMethodDescriptor) -> JSONValue? {
        guard known(method) != nil else { return nil }
        return build(method, [:])?.request
    }

    /// `method`'s request with every resource field holding the victim's value.
    mutating func victimRequest(_ method: RPCMethodDescriptor) -> JSONValue? {
        let descriptor = method.requestType.protoDescriptor
        guard let fields = known(method) else { return nil }
        var sources: [String: Source] = [:]
        for field in fields {
            if let (resource, _) = Self.role(descriptor, field).flatMap(Self.resource) {
                sources[field.name] = .victim(victim.values(resource)[0])
            }
        }
        return build(method, sources)?.request
    }

    /// The request's fields, or nil (and a note in ``unmapped``) when one has no role.
    private mutating func known(_ method: RPCMethodDescriptor) -> [ProtoFieldInfo]? {
        let descriptor = method.requestType.protoDescriptor
        let missing = descriptor.fields.filter { Self.role(descriptor, $0) == nil }
        for field in missing {
            unmapped.insert(
                "\(method.name): request field \(descriptor.shortName).\(field.name) has no role in "
                    + "CrossTenantMatrixTests.fieldRoles; add one (a resource it names, a filter, or a harmless value) "
                    + "so that the cross-tenant matrix covers it")
        }
        return missing.isEmpty ? descriptor.fields : nil
    }

    /// The request as proto3 JSON, with the victim values it holds and their lookalikes. A
    /// field absent from `sources` holds the attacker's own value.
    private mutating func build(_ method: RPCMethodDescriptor, _ sources: [String: Source])
        -> (request: JSONValue, substitutions: [String: String])?
    {
        let descriptor = method.requestType.protoDescriptor
        var substitutions: [String: String] = [:]
        func victimValue(_ value: String) -> JSONValue {
            if substitutions[value] == nil { substitutions[value] = lookalike(value) }
            return .string(value)
        }
        // The lease goes with the task the request names.
        var leaseOf: MatrixTenant?
        for field in descriptor.fields {
            guard case .target(.task)? = Self.role(descriptor, field) else { continue }
            switch sources[field.name] ?? .own {
            case .victim: leaseOf = victim
            case .own: leaseOf = attacker
            case .empty: leaseOf = nil
            }
        }
        var members: [(String, JSONValue)] = []
        for field in descriptor.fields {
            guard let role = Self.role(descriptor, field) else { return nil }
            var value: JSONValue?
            switch role {
            case .target(let resource), .filter(let resource):
                let own = JSONValue.string(attacker.own(resource))
                switch sources[field.name] ?? .own {
                case .victim(let text): value = field.isRepeated ? .array([own, victimValue(text)]) : victimValue(text)
                case .own: value = field.isRepeated ? .array([own]) : own
                case .empty: value = nil
                }
            case .lease:
                if let tenant = leaseOf {
                    value = tenant.name == victim.name ? victimValue(tenant.running.leaseId) : .string(tenant.running.leaseId)
                }
            case .absent: value = nil
            case .value(let fixed): value = fixed
            case .unique:
                counter += 1
                value = .string("\(attacker.name)-probe-\(counter)")
            case .victimCanary: value = .string(victim.canary)
            }
            guard var value else { continue }
            if let typeName = field.typeName, DescriptorTable.messages[typeName] != nil {
                guard typeName == "platos.v1.StringValue" else {
                    unmapped.insert(
                        "\(method.name): \(descriptor.shortName).\(field.name) is a \(typeName); fieldRoles can only "
                            + "fill StringValue messages, so leave it .absent or teach ProbeBuilder.build the type")
                    return nil
                }
                value = .object([("value", value)])
            }
            members.append((field.jsonName, value))
        }
        return (.object(members), substitutions)
    }
}
