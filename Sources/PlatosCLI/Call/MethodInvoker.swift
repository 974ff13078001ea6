import ArgumentParser
import Foundation
import PlatosProto
import PlatosRPC
import ProtobufCSwift

/// Calls a method of the method table by its wire name: JSON in, protobuf over the wire, JSON
/// out. Nothing here knows any message type; the descriptors do the work.
struct MethodInvoker {
    let options: GatewayOptions

    /// One unary call; the response as proto3 JSON.
    func unary(_ method: RPCMethodDescriptor, request: JSONValue) async throws -> JSONValue {
        let payload = try Self.encode(method, request)
        let metadata = try options.metadata()
        let pool = RPCConnectionPool(endpoint: try options.gatewayAddress())
        let deadline = ContinuousClock.now + .milliseconds(Int64((options.timeout ?? 10) * 1000))
        let bytes: [UInt8]
        do {
            bytes = try await pool.unary(method: method, payload: payload, metadata: metadata, deadline: deadline)
        } catch {
            await pool.close()
            throw error
        }
        await pool.close()
        return try Self.decode(method, bytes, includeDefaults: !options.fields.isEmpty)
    }

    /// A server-streaming call; `each` gets every message as it arrives.
    func stream(_ method: RPCMethodDescriptor, request: JSONValue, each: (JSONValue) throws -> Void) async throws {
        let payload = try Self.encode(method, request)
        let metadata = try options.metadata()
        let pool = RPCConnectionPool(endpoint: try options.gatewayAddress())
        let deadline = options.timeout.map { ContinuousClock.now + .milliseconds(Int64($0 * 1000)) }
        do {
            for try await bytes in pool.serverStreaming(method: method, payload: payload, metadata: metadata, deadline: deadline) {
                try each(try Self.decode(method, bytes, includeDefaults: !options.fields.isEmpty))
            }
        } catch {
            await pool.close()
            throw error
        }
        await pool.close()
    }

    /// A response as proto3 JSON; one that is not the method's response type is `INTERNAL`
    /// (the gateway answered something this client cannot read), not a crash of the parser.
    static func decode(_ method: RPCMethodDescriptor, _ bytes: [UInt8], includeDefaults: Bool) throws -> JSONValue {
        do {
            return try method.responseType.init(serializedBytes: bytes).jsonValue(includeDefaults: includeDefaults)
        } catch {
            throw RPCError(
                .internal, "the answer is not a valid \(method.responseType.protoDescriptor.fullName): \(error)")
        }
    }

    /// The request as protobuf, or `INVALID_ARGUMENT` naming what in the JSON is wrong.
    static func encode(_ method: RPCMethodDescriptor, _ request: JSONValue) throws -> [UInt8] {
        do {
            return try method.requestType.init(jsonValue: request).serializedBytes()
        } catch {
            throw RPCError(
                .invalidArgument,
                "the request is not a valid \(method.requestType.protoDescriptor.fullName): \(error) "
                    + "(see `platos call --describe \(method.name)`)")
        }
    }
}

/// Runs a command body and turns a failed call into what a person and a script need: the status
/// and message on stderr, and the status code as the exit code.
func reportingStatus(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as RPCError {
        var line = "error: \(error.code): \(error.message)"
        for (key, value) in error.details.sorted(by: { $0.key < $1.key }) { line += "\n  \(key): \(value)" }
        if error.code == .unavailable {
            line += "\n  (is the gateway running? `platos dev` starts one at \(GatewayOptions.defaultGateway))"
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
        throw ExitCode(error.code.wire.protoValue)
    }
}
