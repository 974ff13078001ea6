import CProtobufC

/// proto3's JSON mapping, driven by the same descriptors as the binary bridge: field names become
/// lowerCamelCase, 64-bit integers are strings, enums are their names, bytes are base64, maps
/// are objects. Fields holding their default value are left out when writing; reading accepts
/// either the JSON name or the proto name of a field.
extension ProtoMessage {
    public func jsonValue(includeDefaults: Bool = false) throws -> JSONValue {
        var writer = ProtoJSONWriter(descriptor: Self.protoDescriptor, includeDefaults: includeDefaults)
        try visitFields(&writer)
        return .object(writer.members)
    }

    public func jsonString(pretty: Bool = false, includeDefaults: Bool = false) throws -> String {
        try jsonValue(includeDefaults: includeDefaults).serialized(pretty: pretty)
    }

    public init(jsonValue: JSONValue) throws {
        self = try ProtoJSONReader.read(Self.self, from: jsonValue, path: "")
    }

    public init(jsonString: String) throws {
        try self.init(jsonValue: JSONValue(parsing: jsonString))
    }
}

struct ProtoJSONWriter: ProtoFieldVisitor {
    let descriptor: ProtoMessageDescriptor
    let includeDefaults: Bool
    var members: [(String, JSONValue)] = []

    private mutating func add(_ field: Int, _ value: JSONValue, isDefault: Bool) {
        guard includeDefaults || !isDefault else { return }
        let name = ProtoFieldInfo.jsonName(for: String(cString: descriptor.field(field).pointee.name))
        members.append((name, value))
    }

    static func scalar<T: ProtoScalar>(_ value: T) -> JSONValue {
        switch value {
        case let b as Bool: return .bool(b)
        // proto3 JSON writes 64-bit integers as strings: JavaScript numbers cannot hold them.
        case let i as Int64: return .string(String(i))
        case let u as UInt64: return .string(String(u))
        case let d as Double: return d.isFinite ? .number("\(d)") : .string(d.isNaN ? "NaN" : d > 0 ? "Infinity" : "-Infinity")
        case let f as Float: return f.isFinite ? .number("\(f)") : .string(f.isNaN ? "NaN" : f > 0 ? "Infinity" : "-Infinity")
        default: return .number("\(value)")
        }
    }

    static func enumName<E: ProtoEnum>(_ value: E) -> JSONValue {
        E.protoDescriptor.name(of: value.protoValue).map(JSONValue.string) ?? .number(String(value.protoValue))
    }

    mutating func visit<T: ProtoScalar>(_ value: T, field: Int) throws {
        add(field, Self.scalar(value), isDefault: value == T())
    }

    mutating func visit(_ value: String, field: Int) throws {
        add(field, .string(value), isDefault: value.isEmpty)
    }

    mutating func visit(_ value: [UInt8], field: Int) throws {
        add(field, .string(Base64.encode(value)), isDefault: value.isEmpty)
    }

    mutating func visit<E: ProtoEnum>(_ value: E, field: Int) throws {
        add(field, Self.enumName(value), isDefault: value.protoValue == 0)
    }

    mutating func visit<M: ProtoMessage>(_ value: M?, field: Int) throws {
        if let value {
            add(field, try value.jsonValue(includeDefaults: includeDefaults), isDefault: false)
        } else if includeDefaults {
            add(field, .null, isDefault: false)
        }
    }

    mutating func visit<T: ProtoScalar>(_ value: [T], field: Int) throws {
        add(field, .array(value.map(Self.scalar)), isDefault: value.isEmpty)
    }

    mutating func visit(_ value: [String], field: Int) throws {
        add(field, .array(value.map(JSONValue.string)), isDefault: value.isEmpty)
    }

    mutating func visit(_ value: [[UInt8]], field: Int) throws {
        add(field, .array(value.map { .string(Base64.encode($0)) }), isDefault: value.isEmpty)
    }

    mutating func visit<E: ProtoEnum>(_ value: [E], field: Int) throws {
        add(field, .array(value.map(Self.enumName)), isDefault: value.isEmpty)
    }

    mutating func visit<M: ProtoMessage>(_ value: [M], field: Int) throws {
        add(field, .array(try value.map { try $0.jsonValue(includeDefaults: includeDefaults) }), isDefault: value.isEmpty)
    }

    mutating func visit(_ value: [String: String], field: Int) throws {
        // Sorted, so the same map always prints the same way.
        let members = value.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }
        add(field, .object(members), isDefault: value.isEmpty)
    }
}

struct ProtoJSONReader: ProtoFieldDecoder {
    let descriptor: ProtoMessageDescriptor
    let members: [String: JSONValue]
    let path: String

    static func read<M: ProtoMessage>(_ type: M.Type, from json: JSONValue, path: String) throws -> M {
        guard case .object(let pairs) = json else {
            throw ProtoError.json(path: path, problem: "expected an object for \(M.protoDescriptor.fullName), got \(json.kindName)")
        }
        let descriptor = M.protoDescriptor
        let fields = descriptor.fields
        var byField: [String: JSONValue] = [:]
        for (key, value) in pairs {
            guard let index = descriptor.fieldIndex(named: key) else {
                let known = fields.map(\.jsonName).joined(separator: ", ")
                throw ProtoError.json(
                    path: join(path, key),
                    problem: "\(descriptor.fullName) has no field '\(key)' (fields: \(known))")
            }
            guard byField.updateValue(value, forKey: fields[index].name) == nil else {
                throw ProtoError.json(
                    path: join(path, key), problem: "\(fields[index].name) is given twice (as a proto name and a JSON name, or repeated)")
            }
        }
        var reader = ProtoJSONReader(descriptor: descriptor, members: byField, path: path)
        return try M(fields: &reader)
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func value(_ field: Int) -> (JSONValue, String)? {
        let info = ProtoFieldInfo(descriptor.field(field))
        guard let value = members[info.name], value != .null else { return nil }
        return (value, Self.join(path, info.jsonName))
    }

    private func array(_ field: Int) throws -> ([JSONValue], String) {
        guard let (value, path) = value(field) else { return ([], "") }
        guard case .array(let items) = value else {
            throw ProtoError.json(path: path, problem: "expected an array, got \(value.kindName)")
        }
        return (items, path)
    }

    static func scalar<T: ProtoScalar>(_ type: T.Type, _ value: JSONValue, path: String) throws -> T {
        let text: String
        switch value {
        case .bool(let b):
            if let result = b as? T { return result }
            throw ProtoError.json(path: path, problem: "expected a number, got a boolean")
        case .number(let n): text = n
        case .string(let s) where T.self != Bool.self: text = s
        default:
            throw ProtoError.json(path: path, problem: "expected \(T.self == Bool.self ? "a boolean" : "a number"), got \(value.kindName)")
        }
        let parsed: T?
        switch T.self {
        case is Int32.Type: parsed = Int32(text) as? T
        case is Int64.Type: parsed = Int64(text) as? T
        case is UInt32.Type: parsed = UInt32(text) as? T
        case is UInt64.Type: parsed = UInt64(text) as? T
        case is Double.Type: parsed = floatingPoint(Double.self, text) as? T
        case is Float.Type: parsed = floatingPoint(Float.self, text) as? T
        default: parsed = nil
        }
        guard let parsed else {
            throw ProtoError.json(path: path, problem: "'\(text)' is not a valid \(T.self)")
        }
        return parsed
    }

    /// proto3 JSON's floating point: a JSON number that fits (1e400 is not infinity), or one of
    /// the strings "NaN", "Infinity", "-Infinity". Not hex, not "inf".
    static func floatingPoint<F: BinaryFloatingPoint & LosslessStringConvertible>(_ type: F.Type, _ text: String) -> F? {
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            guard JSONNumber.isValid(text.utf8), let value = F(text), value.isFinite else { return nil }
            return value
        }
    }

    static func string(_ value: JSONValue, path: String) throws -> String {
        guard case .string(let s) = value else {
            throw ProtoError.json(path: path, problem: "expected a string, got \(value.kindName)")
        }
        return s
    }

    static func bytes(_ value: JSONValue, path: String) throws -> [UInt8] {
        guard let decoded = Base64.decode(try string(value, path: path)) else {
            throw ProtoError.json(path: path, problem: "expected base64 text")
        }
        return decoded
    }

    static func enumValue<E: ProtoEnum>(_ type: E.Type, _ value: JSONValue, path: String) throws -> E {
        switch value {
        case .string(let name):
            if let number = E.protoDescriptor.number(named: name) { return E(protoValue: number) }
            let known = E.protoDescriptor.values.map(\.name).joined(separator: ", ")
            throw ProtoError.json(path: path, problem: "'\(name)' is not a \(E.protoDescriptor.fullName) (one of: \(known))")
        case .number(let text):
            guard let number = Int32(text) else {
                throw ProtoError.json(path: path, problem: "'\(text)' is not an enum number")
            }
            return E(protoValue: number)
        default:
            throw ProtoError.json(path: path, problem: "expected an enum name, got \(value.kindName)")
        }
    }

    func decode<T: ProtoScalar>(_ type: T.Type, field: Int) throws -> T {
        guard let (v, path) = value(field) else { return T() }
        return try Self.scalar(T.self, v, path: path)
    }

    func decode(_ type: String.Type, field: Int) throws -> String {
        guard let (v, path) = value(field) else { return "" }
        return try Self.string(v, path: path)
    }

    func decode(_ type: [UInt8].Type, field: Int) throws -> [UInt8] {
        guard let (v, path) = value(field) else { return [] }
        return try Self.bytes(v, path: path)
    }

    func decode<E: ProtoEnum>(_ type: E.Type, field: Int) throws -> E {
        guard let (v, path) = value(field) else { return E(protoValue: 0) }
        return try Self.enumValue(E.self, v, path: path)
    }

    func decode<M: ProtoMessage>(_ type: M?.Type, field: Int) throws -> M? {
        guard let (v, path) = value(field) else { return nil }
        return try Self.read(M.self, from: v, path: path)
    }

    func decode<T: ProtoScalar>(_ type: [T].Type, field: Int) throws -> [T] {
        let (items, path) = try array(field)
        return try items.enumerated().map { try Self.scalar(T.self, $1, path: "\(path)[\($0)]") }
    }

    func decode(_ type: [String].Type, field: Int) throws -> [String] {
        let (items, path) = try array(field)
        return try items.enumerated().map { try Self.string($1, path: "\(path)[\($0)]") }
    }

    func decode(_ type: [[UInt8]].Type, field: Int) throws -> [[UInt8]] {
        let (items, path) = try array(field)
        return try items.enumerated().map { try Self.bytes($1, path: "\(path)[\($0)]") }
    }

    func decode<E: ProtoEnum>(_ type: [E].Type, field: Int) throws -> [E] {
        let (items, path) = try array(field)
        return try items.enumerated().map { try Self.enumValue(E.self, $1, path: "\(path)[\($0)]") }
    }

    func decode<M: ProtoMessage>(_ type: [M].Type, field: Int) throws -> [M] {
        let (items, path) = try array(field)
        return try items.enumerated().map { try Self.read(M.self, from: $1, path: "\(path)[\($0)]") }
    }

    func decode(_ type: [String: String].Type, field: Int) throws -> [String: String] {
        guard let (v, path) = value(field) else { return [:] }
        guard case .object(let pairs) = v else {
            throw ProtoError.json(path: path, problem: "expected an object of strings, got \(v.kindName)")
        }
        var out: [String: String] = [:]
        for (key, item) in pairs {
            guard out.updateValue(try Self.string(item, path: Self.join(path, key)), forKey: key) == nil else {
                throw ProtoError.json(path: Self.join(path, key), problem: "the key '\(key)' is given twice")
            }
        }
        return out
    }
}

/// RFC 4648 base64, as proto3 JSON writes bytes (reading also accepts the URL-safe alphabet).
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i]
            let b1 = i + 1 < bytes.count ? bytes[i + 1] : 0
            let b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        var padding = 0
        for c in text.utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(c - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(c - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"), UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "/"), UInt8(ascii: "_"): values.append(63)
            case UInt8(ascii: "="): padding += 1; continue
            default: return nil
            }
            // Padding ends the text: nothing after it.
            guard padding == 0 else { return nil }
        }
        if values.count % 4 == 1 || padding > 2 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 3 / 4)
        var i = 0
        while i + 1 < values.count {
            out.append(values[i] << 2 | values[i + 1] >> 4)
            if i + 2 < values.count { out.append(values[i + 1] << 4 | values[i + 2] >> 2) }
            if i + 3 < values.count { out.append(values[i + 2] << 6 | values[i + 3]) }
            i += 4
        }
        return out
    }
}
