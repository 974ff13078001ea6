import CProtobufC

/// A protoc-c message descriptor.
///
/// `@unchecked Sendable` is safe: it points at a `const` static that protoc-c generated and that
/// nothing ever writes.
public struct ProtoMessageDescriptor: @unchecked Sendable, Hashable {
    public let pointer: UnsafePointer<ProtobufCMessageDescriptor>

    public init(_ pointer: UnsafePointer<ProtobufCMessageDescriptor>) {
        self.pointer = pointer
    }

    /// The full proto name, for example `platos.v1.Frame`.
    public var fullName: String { String(cString: pointer.pointee.name) }
    public var shortName: String { String(cString: pointer.pointee.short_name) }
    public var fieldCount: Int { Int(pointer.pointee.n_fields) }
    public var structSize: Int { pointer.pointee.sizeof_message }

    /// The field at `index` in descriptor order (protoc-c sorts fields by number).
    @inline(__always)
    public func field(_ index: Int) -> UnsafePointer<ProtobufCFieldDescriptor> {
        pointer.pointee.fields.advanced(by: index)
    }

    public var fields: [ProtoFieldInfo] {
        (0..<fieldCount).map { ProtoFieldInfo(field($0)) }
    }

    /// The field whose proto name or proto3 JSON name is `name`.
    public func fieldIndex(named name: String) -> Int? {
        fields.firstIndex { $0.name == name || $0.jsonName == name }
    }
}

/// What a person or a JSON document needs to know about one field.
public struct ProtoFieldInfo: Sendable, Hashable {
    public let name: String
    public let jsonName: String
    public let number: UInt32
    public let isRepeated: Bool
    public let type: ProtobufCType.RawValue
    /// For message and enum fields, the full name of that type.
    public let typeName: String?

    init(_ field: UnsafePointer<ProtobufCFieldDescriptor>) {
        let f = field.pointee
        name = String(cString: f.name)
        jsonName = ProtoFieldInfo.jsonName(for: name)
        number = f.id
        isRepeated = f.label == PROTOBUF_C_LABEL_REPEATED
        type = f.type.rawValue
        switch f.type {
        case PROTOBUF_C_TYPE_MESSAGE:
            typeName = f.descriptor.map {
                String(cString: $0.assumingMemoryBound(to: ProtobufCMessageDescriptor.self).pointee.name)
            }
        case PROTOBUF_C_TYPE_ENUM:
            typeName = f.descriptor.map {
                String(cString: $0.assumingMemoryBound(to: ProtobufCEnumDescriptor.self).pointee.name)
            }
        default:
            typeName = nil
        }
    }

    /// proto3's JSON name: `lower_snake` becomes `lowerSnake`.
    public static func jsonName(for protoName: String) -> String {
        var out = ""
        var upperNext = false
        for ch in protoName {
            if ch == "_" {
                upperNext = true
            } else if upperNext {
                out += ch.uppercased()
                upperNext = false
            } else {
                out.append(ch)
            }
        }
        return out
    }
}

/// A protoc-c enum descriptor. `@unchecked Sendable` for the same reason as
/// ``ProtoMessageDescriptor``.
public struct ProtoEnumDescriptor: @unchecked Sendable, Hashable {
    public let pointer: UnsafePointer<ProtobufCEnumDescriptor>

    public init(_ pointer: UnsafePointer<ProtobufCEnumDescriptor>) {
        self.pointer = pointer
    }

    public var fullName: String { String(cString: pointer.pointee.name) }

    /// `(proto name, number)` for every value, in declaration order.
    public var values: [(name: String, number: Int32)] {
        (0..<Int(pointer.pointee.n_values)).map {
            let v = pointer.pointee.values[$0]
            return (String(cString: v.name), Int32(v.value))
        }
    }

    public func name(of number: Int32) -> String? {
        protobuf_c_enum_descriptor_get_value(pointer, number).map { String(cString: $0.pointee.name) }
    }

    public func number(named name: String) -> Int32? {
        protobuf_c_enum_descriptor_get_value_by_name(pointer, name).map { Int32($0.pointee.value) }
    }
}
