import ProtobufCSwift

/// Builds a message with a non-default value in every field, for any message type, by acting as
/// the "input format" of the generic decoder. The values are deliberately awkward: multi-byte
/// UTF-8, extreme integers, several elements per repeated field, nested messages all the way down.
struct ProtoSampleDecoder: ProtoFieldDecoder {
    enum BytesShape {
        /// 256 KiB of patterned bytes in every bytes field.
        case large
        /// Empty bytes (the only default value the samples allow, since empty and large are both cases).
        case empty
    }

    var bytesShape: BytesShape = .large
    var depth = 0

    static func sample<M: ProtoMessage>(_ type: M.Type, bytes: BytesShape = .large) throws -> M {
        var decoder = ProtoSampleDecoder(bytesShape: bytes)
        return try M(fields: &decoder)
    }

    func scalar<T: ProtoScalar>(_ type: T.Type, _ field: Int) -> T {
        switch type {
        case is Bool.Type: return true as! T
        case is Int32.Type: return (Int32.min + Int32(field)) as! T
        case is Int64.Type: return (Int64.min + Int64(field)) as! T
        case is UInt32.Type: return (UInt32.max - UInt32(field)) as! T
        case is UInt64.Type: return (UInt64.max - UInt64(field)) as! T
        case is Float.Type: return (Float(field) + 0.25) as! T
        case is Double.Type: return (-1.5e300 + Double(field)) as! T
        default: fatalError("no sample for \(type)")
        }
    }

    func string(_ field: Int, _ i: Int = 0) -> String {
        "héllo wörld ✓ 🚀 日本語 \"quoted\" \\ back\tslash f\(field)#\(i)"
    }

    func bytes(_ field: Int) -> [UInt8] {
        switch bytesShape {
        case .large: return (0..<(256 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ field) }
        case .empty: return []
        }
    }

    func enumValue<E: ProtoEnum>(_ type: E.Type) -> E {
        // The last declared value: never 0, the default.
        E(protoValue: E.protoDescriptor.values.last!.number)
    }

    mutating func nested<M: ProtoMessage>(_ type: M.Type) throws -> M {
        precondition(depth < 16, "message nesting deeper than 16 levels: is a message recursive?")
        var inner = ProtoSampleDecoder(bytesShape: bytesShape, depth: depth + 1)
        return try M(fields: &inner)
    }

    mutating func decode<T: ProtoScalar>(_ type: T.Type, field: Int) throws -> T { scalar(T.self, field) }
    mutating func decode(_ type: String.Type, field: Int) throws -> String { string(field) }
    mutating func decode(_ type: [UInt8].Type, field: Int) throws -> [UInt8] { bytes(field) }
    mutating func decode<E: ProtoEnum>(_ type: E.Type, field: Int) throws -> E { enumValue(E.self) }
    mutating func decode<M: ProtoMessage>(_ type: M?.Type, field: Int) throws -> M? { try nested(M.self) }
    mutating func decode<T: ProtoScalar>(_ type: [T].Type, field: Int) throws -> [T] {
        [scalar(T.self, field), scalar(T.self, field + 1), T()]
    }
    mutating func decode(_ type: [String].Type, field: Int) throws -> [String] {
        [string(field, 0), "", string(field, 2)]
    }
    mutating func decode(_ type: [[UInt8]].Type, field: Int) throws -> [[UInt8]] { [bytes(field), [], [0, 255]] }
    mutating func decode<E: ProtoEnum>(_ type: [E].Type, field: Int) throws -> [E] {
        [enumValue(E.self), E(protoValue: 0), enumValue(E.self)]
    }
    mutating func decode<M: ProtoMessage>(_ type: [M].Type, field: Int) throws -> [M] {
        [try nested(M.self), M(), try nested(M.self)]
    }
    mutating func decode(_ type: [String: String].Type, field: Int) throws -> [String: String] {
        ["ключ": "значение ✓", "k\(field)": string(field), "empty": ""]
    }
}
