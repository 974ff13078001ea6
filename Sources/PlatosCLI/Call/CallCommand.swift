import ArgumentParser
import Foundation
import PlatosRPC
import ProtobufCSwift

/// `platos call <method> '<json>'`: any public method through the gateway, like grpcurl.
struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a method through the gateway: JSON in, JSON out.",
        discussion: """
            Fields use proto3 JSON names (agentIds, or the proto name agent_ids); 64-bit integers \
            are strings. '-' reads the request from stdin. Examples:

              platos call --list
              platos call --describe memory.recall
              platos call agents.list '{}'
              platos call memory.recall '{"query": "birthday"}' --user u-42 --token "$CHAT_TOKEN"
              THREAD=$(platos call threads.create '{"title": "Trip"}' --user u-42 --token "$CHAT_TOKEN" --field id)
            """
    )

    @Flag(help: "List every method the gateway serves.")
    var list = false

    @Option(help: ArgumentHelp("Print a method's request and response fields.", valueName: "method"))
    var describe: String?

    @Argument(help: "The method, for example memory.recall.")
    var method: String?

    @Argument(help: "The request as JSON ('-' for stdin).")
    var request: String = "{}"

    @OptionGroup var gateway: GatewayOptions

    func validate() throws {
        if !list, describe == nil, method == nil {
            throw ValidationError("name a method (platos call memory.recall '{...}'), or use --list or --describe <method>")
        }
    }

    func run() async throws {
        try await reportingStatus {
            if list {
                print(MethodCatalog.listing())
                return
            }
            if let describe {
                print(MethodCatalog.describe(try MethodCatalog.method(named: describe)), terminator: "")
                return
            }
            let method = try MethodCatalog.method(named: method ?? "")
            try gateway.checkFields(of: method)
            var text = request
            if request == "-" {
                guard let input = String(validating: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) else {
                    throw RPCError(.invalidArgument, "the request on standard input is not UTF-8 text")
                }
                text = input
            }
            let json: JSONValue
            do {
                json = try JSONValue(parsing: text)
            } catch {
                throw RPCError(.invalidArgument, "the request is not JSON: \(error)")
            }
            let invoker = MethodInvoker(options: gateway)
            if method.kind == .serverStreaming {
                try await invoker.stream(method, request: json) { gateway.show($0, streamed: true) }
            } else {
                gateway.show(try await invoker.unary(method, request: json))
            }
        }
    }
}
