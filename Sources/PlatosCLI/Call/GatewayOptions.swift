import ArgumentParser
import Foundation
import PlatosProto
import PlatosRPC
import ProtobufCSwift

/// Where and as whom `platos call` and the admin shortcuts talk to the gateway.
struct GatewayOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Gateway address, host:port (env PLATOS_GATEWAY).", valueName: "host:port"))
    var gateway: String?

    @Option(help: ArgumentHelp(
        "Bearer token (env PLATOS_TOKEN). Default: the dev stack's admin token, <data-dir>/admin.token.",
        valueName: "secret"))
    var token: String?

    @Option(help: ArgumentHelp("The dev stack's data directory (env PLATOS_DATA_DIR).", valueName: "path"))
    var dataDir: String?

    @Option(help: ArgumentHelp("Act for this end user (metadata x-platos-user).", valueName: "user-id"))
    var user: String?

    @Option(help: ArgumentHelp("Act as the worker of this task, for its user (metadata x-platos-task).", valueName: "task-id"))
    var task: String?

    @Option(help: ArgumentHelp("Seconds a unary call may take (streams run until Ctrl-C unless set).", valueName: "seconds"))
    var timeout: Double?

    @Option(name: [.customShort("o"), .long], help: "Output format: json or table.")
    var output: OutputFormat = .json

    @Option(name: .customLong("field"), help: ArgumentHelp(
        "Print only this field of the response, for shell variables (a dotted path such as task.leaseId); repeat for several, tab-separated.",
        valueName: "path"))
    var fields: [String] = []

    static let defaultGateway = "127.0.0.1:7400"

    /// A year: a longer wait is a typo, and NaN or infinity cannot be a deadline at all.
    static let maxTimeoutSeconds = 365.0 * 24 * 3600

    func validate() throws {
        if let timeout, !(timeout > 0 && timeout <= Self.maxTimeoutSeconds) {
            throw ValidationError("--timeout must be a number of seconds above 0 and at most \(Int(Self.maxTimeoutSeconds))")
        }
    }

    /// Fails before the call when a `--field` path names no field of `method`'s response (a typo
    /// would otherwise print an empty value and succeed), listing the fields it could name.
    func checkFields(of method: RPCMethodDescriptor) throws {
        for path in fields {
            var descriptor: ProtoMessageDescriptor? = method.responseType.protoDescriptor
            for key in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
                guard let current = descriptor else {
                    throw ValidationError("--field \(path): '\(key)' is inside a value that has no fields")
                }
                // The printed response uses JSON names only: `lease_id` would print nothing.
                guard let field = current.fields.first(where: { $0.jsonName == key }) else {
                    let known = current.fields.map(\.jsonName).joined(separator: ", ")
                    let hint = current.fields.first { $0.name == key }.map { "; write it as '\($0.jsonName)'" } ?? ""
                    throw ValidationError(
                        "--field \(path): \(current.fullName) has no field '\(key)'\(hint) (it has \(known))")
                }
                let type = field.typeName.flatMap { DescriptorTable.messages[$0] }
                // A map's keys are data, not schema: whatever follows its name is a key.
                if let type, MethodCatalog.isMapEntry(type) { break }
                descriptor = field.isRepeated ? nil : type
            }
        }
    }

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// `--gateway`, else PLATOS_GATEWAY, else the dev stack's default address.
    func gatewayAddress() throws -> RPCEndpoint {
        let text = gateway ?? environment["PLATOS_GATEWAY"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultGateway
        guard let address = RPCEndpoint(text) else {
            throw ValidationError("--gateway must be host:port, got '\(text)'")
        }
        return address
    }

    /// `--token`, else PLATOS_TOKEN, else the admin token `platos dev` keeps in its data directory.
    func bearerToken() throws -> String {
        if let token, !token.isEmpty { return token }
        if let token = environment["PLATOS_TOKEN"], !token.isEmpty { return token }
        let directory = dataDir ?? environment["PLATOS_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./data"
        let path = "\(directory)/admin.token"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { return trimmed }
        }
        throw ValidationError(
            "no token: pass --token, set PLATOS_TOKEN, or run `platos dev` so that \(path) holds the admin token")
    }

    /// Prints a response the way the flags ask: `--field` values (the response was rendered with
    /// its default values, so a false or a 0 prints as such), else `--output`.
    func show(_ response: JSONValue, streamed: Bool = false) {
        guard fields.isEmpty else {
            print(fields.map { path in
                let value = path.split(separator: ".").reduce(Optional(response)) { value, key in value?[String(key)] }
                return value.map(TableRenderer.cell) ?? ""
            }.joined(separator: "\t"))
            return
        }
        print(streamed ? output.renderStreamed(response) : output.render(response))
    }

    func metadata() throws -> Metadata {
        var metadata: Metadata = [MetadataKey.authorization: "Bearer \(try bearerToken())"]
        if let user { metadata[MetadataKey.user] = user }
        if let task { metadata[MetadataKey.task] = task }
        return metadata
    }
}
