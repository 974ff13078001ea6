import CProtobufC
import PlatosProto
import PlatosRPC
import ProtobufCSwift

/// The methods a caller can reach through the gateway, from the generated method table, and
/// what a person needs to know to call them.
enum MethodCatalog {
    /// Every method but the service-to-service ones, by name.
    static let callable: [RPCMethodDescriptor] = V1.allMethods
        .filter { $0.access != .internal }
        .sorted { $0.name < $1.name }

    /// The method called `name`, or `UNIMPLEMENTED` with the closest names and the whole list.
    static func method(named name: String) throws -> RPCMethodDescriptor {
        if let method = callable.first(where: { $0.name == name }) { return method }
        let close = callable
            .map { ($0.name, editDistance($0.name, name)) }
            .filter { $0.1 <= max(3, name.count / 3) || $0.0.hasPrefix(name) }
            .sorted { $0.1 < $1.1 }
            .prefix(3)
            .map(\.0)
        var message = "no method '\(name)'."
        if !close.isEmpty { message += " Did you mean \(close.joined(separator: " or "))?" }
        message += "\nMethods:\n" + callable.map { "  \($0.name)" }.joined(separator: "\n")
        throw RPCError(.unimplemented, message)
    }

    /// One line per method: name, who may call it, and its request type.
    static func listing() -> String {
        let rows = callable.map { method in
            [method.name, accessLabel(method.access), method.kind == .serverStreaming ? "stream" : "unary",
             method.requestType.protoDescriptor.shortName]
        }
        return TableRenderer.grid([["METHOD", "WHO MAY CALL", "KIND", "REQUEST"]] + rows)
    }

    /// The method's shape: who may call it, whether it is retried, and every request and response
    /// field with its JSON name and type, nested messages expanded.
    static func describe(_ method: RPCMethodDescriptor) -> String {
        var out = """
            \(method.name)  (\(method.kind == .serverStreaming ? "server stream" : "unary"), \
            \(accessLabel(method.access)), owned by \(method.owner.rawValue)\(method.idempotent ? ", idempotent: retried on UNAVAILABLE" : ""))

            request \(method.requestType.protoDescriptor.fullName) {

            """
        describeFields(of: method.requestType.protoDescriptor, indent: "  ", into: &out, seen: [])
        out += "}\n\nresponse \(method.responseType.protoDescriptor.fullName) {\n"
        describeFields(of: method.responseType.protoDescriptor, indent: "  ", into: &out, seen: [])
        out += "}\n"
        return out
    }

    private static func describeFields(
        of descriptor: ProtoMessageDescriptor, indent: String, into out: inout String, seen: Set<String>
    ) {
        for field in descriptor.fields {
            let type = typeLabel(field)
            let isMap = field.typeName.flatMap { DescriptorTable.messages[$0] }.map(isMapEntry) ?? false
            out += "\(indent)\(field.jsonName): \(field.isRepeated && !isMap ? "[\(type)]" : type)"
            if let name = field.typeName, let nested = DescriptorTable.messages[name], !seen.contains(name),
                !isMapEntry(nested)
            {
                out += " {\n"
                describeFields(of: nested, indent: indent + "  ", into: &out, seen: seen.union([descriptor.fullName, name]))
                out += "\(indent)}\n"
            } else if let name = field.typeName, let values = DescriptorTable.enums[name]?.values {
                out += "  one of " + values.map(\.name).joined(separator: ", ") + "\n"
            } else {
                out += "\n"
            }
        }
    }

    static func isMapEntry(_ descriptor: ProtoMessageDescriptor) -> Bool {
        descriptor.shortName.hasSuffix("Entry") && descriptor.fields.map(\.name) == ["key", "value"]
    }

    private static func typeLabel(_ field: ProtoFieldInfo) -> String {
        if let name = field.typeName {
            if let entry = DescriptorTable.messages[name], isMapEntry(entry) {
                return "map<string, \(entry.fields[1].typeName.map(shortName) ?? scalarName(entry.fields[1].type))>"
            }
            return shortName(name)
        }
        return scalarName(field.type)
    }

    private static func shortName(_ fullName: String) -> String {
        String(fullName.split(separator: ".").last ?? Substring(fullName))
    }

    private static func scalarName(_ type: UInt32) -> String {
        switch type {
        case PROTOBUF_C_TYPE_INT32.rawValue, PROTOBUF_C_TYPE_SINT32.rawValue, PROTOBUF_C_TYPE_SFIXED32.rawValue: "int32"
        case PROTOBUF_C_TYPE_INT64.rawValue, PROTOBUF_C_TYPE_SINT64.rawValue, PROTOBUF_C_TYPE_SFIXED64.rawValue: "int64 (string)"
        case PROTOBUF_C_TYPE_UINT32.rawValue, PROTOBUF_C_TYPE_FIXED32.rawValue: "uint32"
        case PROTOBUF_C_TYPE_UINT64.rawValue, PROTOBUF_C_TYPE_FIXED64.rawValue: "uint64 (string)"
        case PROTOBUF_C_TYPE_FLOAT.rawValue: "float"
        case PROTOBUF_C_TYPE_DOUBLE.rawValue: "double"
        case PROTOBUF_C_TYPE_BOOL.rawValue: "bool"
        case PROTOBUF_C_TYPE_STRING.rawValue: "string"
        case PROTOBUF_C_TYPE_BYTES.rawValue: "bytes (base64)"
        default: "?"
        }
    }

    private static func accessLabel(_ access: MethodAccess) -> String {
        switch access {
        case .public: "no token needed"
        case .agent: "any token of the scope"
        case .admin: "admin token"
        case .internal: "internal"
        }
    }

    /// Levenshtein distance, for "did you mean".
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
