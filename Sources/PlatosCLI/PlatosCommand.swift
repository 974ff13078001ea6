import ArgumentParser

/// `platos`: the command a person uses every day. `platos dev` runs the whole stack locally;
/// `platos call` is a grpcurl for the gateway (JSON in, JSON out); `agents`, `clusters` and
/// `tokens` are shortcuts for the admin calls a new project needs first.
public struct PlatosCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "platos",
        abstract: "Run and call Platos agent clusters.",
        discussion: """
            Exit codes: 0 on success; a failed call exits with its status code (3 INVALID_ARGUMENT, \
            5 NOT_FOUND, 7 PERMISSION_DENIED, 14 UNAVAILABLE, 16 UNAUTHENTICATED, ...); 64 for a \
            command line the CLI cannot parse.
            """,
        subcommands: [
            DevCommand.self, CallCommand.self, AgentsCommand.self, ClustersCommand.self, TokensCommand.self,
        ]
    )

    public init() {}
}
