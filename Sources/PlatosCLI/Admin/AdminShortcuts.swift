import ArgumentParser
import PlatosProto
import PlatosRPC
import ProtobufCSwift

// Shortcuts for the admin calls a new project makes first. Each one is exactly a `platos call`
// of the method it names (same JSON, same output), with flags instead of a JSON document.

struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents", abstract: "Create and list agents (agents.create, agents.list).",
        subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "agents.create: a new agent in the token's scope (admin).")
        @Option(help: "Unique within the scope, for example wally-chat.") var slug: String
        @Option(help: "Display name.") var name: String
        @Option(help: "What the agent does.") var description: String?
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            var request: [(String, JSONValue)] = [("slug", .string(slug)), ("name", .string(name))]
            if let description { request.append(("description", .string(description))) }
            try await Shortcut(gateway).call(V1.AgentsService.create.descriptor, .object(request))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "agents.list: the agents of the token's scope.")
        @Flag(help: "Only agents in no cluster.") var unclustered = false
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            try await Shortcut(gateway).call(
                V1.AgentsService.list.descriptor, .object(unclustered ? [("unclusteredOnly", .bool(true))] : []))
        }
    }
}

struct ClustersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clusters", abstract: "Create and list clusters (clusters.create, clusters.list).",
        subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "clusters.create: group two or more agents (admin).")
        @Option(help: "Display name.") var name: String
        @Option(help: "Unique within the scope.") var slug: String
        @Option(name: .customLong("agent"), help: "A member, by id or slug; repeat for each (at least two).")
        var agents: [String] = []
        @OptionGroup var gateway: GatewayOptions

        func validate() throws {
            guard agents.count >= 2 else { throw ValidationError("a cluster needs at least two --agent") }
        }

        func run() async throws {
            let shortcut = Shortcut(gateway)
            try await reportingStatus {
                let ids = try await shortcut.agentIds(agents)
                try await shortcut.call(
                    V1.ClustersService.create.descriptor,
                    .object([("name", .string(name)), ("slug", .string(slug)), ("agentIds", .array(ids.map { .string($0) }))]))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "clusters.list: the clusters of the token's scope.")
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            try await Shortcut(gateway).call(V1.ClustersService.list.descriptor, .object([]))
        }
    }
}

struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "Issue tokens (tokens.issue).", subcommands: [Issue.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "tokens.issue: a token for an agent, or with --admin for the scope (admin).",
            discussion: "The secret is shown this once; `--field secret` prints only it: CHAT=$(platos tokens issue --agent wally-chat --field secret)")
        @Option(help: "The agent the token acts as, by id or slug.") var agent: String?
        @Flag(help: "An admin token of the scope instead of an agent token.") var admin = false
        @Option(name: .customLong("bound-user"), help: "Only ever act for this end user.") var boundUser: String?
        @Option(help: "Seconds until it expires (default: never).") var ttl: Int?
        @Option(help: "A note for `tokens.list`.") var description: String?
        @OptionGroup var gateway: GatewayOptions

        func validate() throws {
            guard admin != (agent != nil) else { throw ValidationError("name exactly one of --agent <id|slug> or --admin") }
        }

        func run() async throws {
            let shortcut = Shortcut(gateway)
            try await reportingStatus {
                try gateway.checkFields(of: V1.TokensService.issue.descriptor)
                var request: [(String, JSONValue)] = [("role", .string(admin ? "ROLE_ADMIN" : "ROLE_AGENT"))]
                if let agent { request.append(("agentId", .string(try await shortcut.agentIds([agent])[0]))) }
                if let boundUser { request.append(("boundUserId", .string(boundUser))) }
                if let ttl { request.append(("ttlSeconds", .number(String(ttl)))) }
                if let description { request.append(("description", .string(description))) }
                gateway.show(try await MethodInvoker(options: gateway).unary(V1.TokensService.issue.descriptor, request: .object(request)))
            }
        }
    }
}

/// What the shortcuts share: call and print, and let a person name agents by slug.
struct Shortcut {
    let gateway: GatewayOptions
    init(_ gateway: GatewayOptions) { self.gateway = gateway }

    func call(_ method: RPCMethodDescriptor, _ request: JSONValue) async throws {
        try await reportingStatus {
            try gateway.checkFields(of: method)
            gateway.show(try await MethodInvoker(options: gateway).unary(method, request: request))
        }
    }

    /// Each name as an agent id: a slug of the scope becomes that agent's id; anything else is
    /// taken to be an id already (the service says NOT_FOUND if it is not).
    func agentIds(_ names: [String]) async throws -> [String] {
        var idsBySlug: [String: String] = [:]
        var pageToken = ""
        repeat {
            let request: [(String, JSONValue)] = [("page", .object([("pageSize", .number("500")), ("pageToken", .string(pageToken))]))]
            let response = try await MethodInvoker(options: gateway).unary(V1.AgentsService.list.descriptor, request: .object(request))
            if case .array(let agents)? = response["agents"] {
                for agent in agents {
                    if case .string(let slug)? = agent["slug"], case .string(let id)? = agent["id"] { idsBySlug[slug] = id }
                }
            }
            if case .string(let next)? = response["nextPageToken"] { pageToken = next } else { pageToken = "" }
        } while !pageToken.isEmpty
        return names.map { idsBySlug[$0] ?? $0 }
    }
}
