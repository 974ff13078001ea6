import CProtobufC

/// A Swift value type that protobuf-c can pack and unpack.
///
/// Conforming types are written by `platos-protogen` from protoc-c's descriptors. They only list
/// their fields, in descriptor order; every conversion (protobuf-c structs, JSON, test samples) is
/// a generic ``ProtoFieldVisitor`` or ``ProtoFieldDecoder`` that uses the descriptor for names,
/// numbers, types and struct offsets.
public protocol ProtoMessage: Sendable, Hashable {
    /// protoc-c's descriptor for this message.
    static var protoDescriptor: ProtoMessageDescriptor { get }
    init()
    /// Builds the value from a decoder, field by field (`field` is the index in the descriptor).
    init<D: ProtoFieldDecoder>(fields decoder: inout D) throws
    /// Hands every field to the visitor, in descriptor order.
    func visitFields<V: ProtoFieldVisitor>(_ visitor: inout V) throws
}

/// A proto enum: an `Int32` raw value that keeps values this build does not know.
public protocol ProtoEnum: Sendable, Hashable {
    static var protoDescriptor: ProtoEnumDescriptor { get }
    init(protoValue: Int32)
    var protoValue: Int32 { get }
}

/// The scalar field types, with their in-struct representation in protobuf-c.
public protocol ProtoScalar: Sendable, Hashable {
    /// The proto3 default: zero or false.
    init()
    /// Reads the C representation at `pointer`.
    static func load(from pointer: UnsafeRawPointer) -> Self
    /// Writes the C representation at `pointer`.
    func store(to pointer: UnsafeMutableRawPointer)
    /// Bytes one value occupies in a protobuf-c struct or repeated array.
    static var cSize: Int { get }
}

extension ProtoScalar where Self: FixedWidthInteger {
    @inline(__always) public static func load(from pointer: UnsafeRawPointer) -> Self {
        pointer.loadUnaligned(as: Self.self)
    }
    @inline(__always) public func store(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: self, as: Self.self)
    }
    @inline(__always) public static var cSize: Int { MemoryLayout<Self>.size }
}

extension Int32: ProtoScalar {}
extension Int64: ProtoScalar {}
extension UInt32: ProtoScalar {}
extension UInt64: ProtoScalar {}

extension Float: ProtoScalar {
    public static func load(from pointer: UnsafeRawPointer) -> Float { pointer.loadUnaligned(as: Float.self) }
    public func store(to pointer: UnsafeMutableRawPointer) { pointer.storeBytes(of: self, as: Float.self) }
    public static var cSize: Int { MemoryLayout<Float>.size }
}

extension Double: ProtoScalar {
    public static func load(from pointer: UnsafeRawPointer) -> Double { pointer.loadUnaligned(as: Double.self) }
    public func store(to pointer: UnsafeMutableRawPointer) { pointer.storeBytes(of: self, as: Double.self) }
    public static var cSize: Int { MemoryLayout<Double>.size }
}

extension Bool: ProtoScalar {
    // protobuf-c stores a bool as `protobuf_c_boolean`, which is an `int`.
    public static func load(from pointer: UnsafeRawPointer) -> Bool {
        pointer.loadUnaligned(as: protobuf_c_boolean.self) != 0
    }
    public func store(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: self ? 1 : 0, as: protobuf_c_boolean.self)
    }
    public static var cSize: Int { MemoryLayout<protobuf_c_boolean>.size }
}

/// Walks a message's fields. One conforming type per output format.
public protocol ProtoFieldVisitor {
    mutating func visit<T: ProtoScalar>(_ value: T, field: Int) throws
    mutating func visit(_ value: String, field: Int) throws
    mutating func visit(_ value: [UInt8], field: Int) throws
    mutating func visit<E: ProtoEnum>(_ value: E, field: Int) throws
    mutating func visit<M: ProtoMessage>(_ value: M?, field: Int) throws
    mutating func visit<T: ProtoScalar>(_ value: [T], field: Int) throws
    mutating func visit(_ value: [String], field: Int) throws
    mutating func visit(_ value: [[UInt8]], field: Int) throws
    mutating func visit<E: ProtoEnum>(_ value: [E], field: Int) throws
    mutating func visit<M: ProtoMessage>(_ value: [M], field: Int) throws
    /// A `map<string, string>` field.
    mutating func visit(_ value: [String: String], field: Int) throws
}

/// Produces a message's fields. One conforming type per input format.
public protocol ProtoFieldDecoder {
    mutating func decode<T: ProtoScalar>(_ type: T.Type, field: Int) throws -> T
    mutating func decode(_ type: String.Type, field: Int) throws -> String
    mutating func decode(_ type: [UInt8].Type, field: Int) throws -> [UInt8]
    mutating func decode<E: ProtoEnum>(_ type: E.Type, field: Int) throws -> E
    mutating func decode<M: ProtoMessage>(_ type: M?.Type, field: Int) throws -> M?
    mutating func decode<T: ProtoScalar>(_ type: [T].Type, field: Int) throws -> [T]
    mutating func decode(_ type: [String].Type, field: Int) throws -> [String]
    mutating func decode(_ type: [[UInt8]].Type, field: Int) throws -> [[UInt8]]
    mutating func decode<E: ProtoEnum>(_ type: [E].Type, field: Int) throws -> [E]
    mutating func decode<M: ProtoMessage>(_ type: [M].Type, field: Int) throws -> [M]
    mutating func decode(_ type: [String: String].Type, field: Int) throws -> [String: String]
}
