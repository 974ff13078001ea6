import CPlatosProto

/// protoc-c's descriptor table, indexed by full proto name.
final class DescriptorModel {
    let messages: [String: UnsafePointer<ProtobufCMessageDescriptor>]
    let enums: [String: UnsafePointer<ProtobufCEnumDescriptor>]
    let services: [String: UnsafePointer<ProtobufCServiceDescriptor>]
    var placed: Set<String> = []

    init() {
        var messages: [String: UnsafePointer<ProtobufCMessageDescriptor>] = [:]
        for i in 0..<platos_message_descriptor_count() {
            let d = platos_message_descriptor_at(i)!
            messages[String(cString: d.pointee.name)] = d
        }
        var enums: [String: UnsafePointer<ProtobufCEnumDescriptor>] = [:]
        for i in 0..<platos_enum_descriptor_count() {
            let d = platos_enum_descriptor_at(i)!
            enums[String(cString: d.pointee.name)] = d
        }
        var services: [String: UnsafePointer<ProtobufCServiceDescriptor>] = [:]
        for i in 0..<platos_service_descriptor_count() {
            let d = platos_service_descriptor_at(i)!
            services[String(cString: d.pointee.name)] = d
        }
        self.messages = messages
        self.enums = enums
        self.services = services
    }

    /// protoc-c turns `map<K, V>` into a nested `XxxEntry { K key = 1; V value = 2; }` message.
    func isMapEntry(_ fullName: String) -> Bool {
        guard let d = messages[fullName], fullName.hasSuffix("Entry"), d.pointee.n_fields == 2 else { return false }
        let parent = fullName.split(separator: ".").dropLast().joined(separator: ".")
        return messages[parent] != nil && String(cString: d.pointee.fields[0].name) == "key"
            && String(cString: d.pointee.fields[1].name) == "value"
    }
}

