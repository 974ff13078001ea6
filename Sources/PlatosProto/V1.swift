import CPlatosProto
import ProtobufCSwift

/// The `platos.v1` proto package. Generated types live in extensions of this namespace
/// (`V1.Frame`, `V1.RecallRequest`, ...) so that names such as `Task` and `Thread` do not shadow
/// the standard library's.
public enum V1 {
    /// protoc-c's descriptor for a message of this package, found once by name.
    static func messageDescriptor(_ fullName: String) -> ProtoMessageDescriptor {
        guard let d = DescriptorTable.messages[fullName] else {
            fatalError("protoc-c emitted no descriptor for \(fullName): run `make proto`")
        }
        return d
    }

    static func enumDescriptor(_ fullName: String) -> ProtoEnumDescriptor {
        guard let d = DescriptorTable.enums[fullName] else {
            fatalError("protoc-c emitted no descriptor for \(fullName): run `make proto`")
        }
        return d
    }
}

/// The descriptor table `scripts/generate-proto.sh` writes next to protoc-c's output.
public enum DescriptorTable {
    public static let messages: [String: ProtoMessageDescriptor] = {
        var out: [String: ProtoMessageDescriptor] = [:]
        for i in 0..<platos_message_descriptor_count() {
            let d = ProtoMessageDescriptor(platos_message_descriptor_at(i))
            out[d.fullName] = d
        }
        return out
    }()

    public static let enums: [String: ProtoEnumDescriptor] = {
        var out: [String: ProtoEnumDescriptor] = [:]
        for i in 0..<platos_enum_descriptor_count() {
            let d = ProtoEnumDescriptor(platos_enum_descriptor_at(i))
            out[d.fullName] = d
        }
        return out
    }()

    /// Full names of every service protoc-c emitted, for example `platos.v1.Memory`.
    public static let serviceNames: [String] = (0..<platos_service_descriptor_count()).map {
        String(cString: platos_service_descriptor_at($0).pointee.name)
    }
}
