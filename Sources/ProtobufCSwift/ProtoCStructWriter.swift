import CProtobufC

/// Writes a Swift message into a protobuf-c struct allocated in an arena, using the descriptor's
/// offsets. Nothing is allocated outside the arena.
@usableFromInline
struct ProtoCStructWriter: ProtoFieldVisitor {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let descriptor: ProtoMessageDescriptor
    // A cursor, not the arena class: allocating and copying strings costs no reference counting.
    @usableFromInline let arena: ProtoArena.Cursor

    @inlinable
    init(base: UnsafeMutableRawPointer, descriptor: ProtoMessageDescriptor, arena: ProtoArena.Cursor) {
        self.base = base
        self.descriptor = descriptor
        self.arena = arena
    }

    /// Builds the protobuf-c struct for `message`; valid until the arena is reset.
    @inlinable
    static func build<M: ProtoMessage>(_ message: M, in arena: ProtoArena.Cursor) throws -> UnsafeMutablePointer<
        ProtobufCMessage
    > {
        try build(message, descriptor: M.protoDescriptor, in: arena)
    }

    @inlinable
    static func build<M: ProtoMessage>(
        _ message: M,
        descriptor: ProtoMessageDescriptor,
        in arena: ProtoArena.Cursor
    ) throws -> UnsafeMutablePointer<ProtobufCMessage> {
        let d = descriptor.pointer
        let raw = arena.allocate(d.pointee.sizeof_message)
        let cMessage = raw.bindMemory(to: ProtobufCMessage.self, capacity: 1)
        // Sets `base.descriptor` and every field to its default (the empty-string sentinel included).
        d.pointee.message_init(cMessage)
        var writer = ProtoCStructWriter(base: raw, descriptor: descriptor, arena: arena)
        try message.visitFields(&writer)
        return cMessage
    }

    @inlinable
    func slot(_ field: Int) -> (UnsafeMutableRawPointer, UnsafePointer<ProtobufCFieldDescriptor>) {
        let f = descriptor.field(field)
        return (base + Int(f.pointee.offset), f)
    }

    /// Stores the count and the element array of a repeated field.
    @inlinable
    func storeRepeated(_ field: Int, count: Int, elementSize: Int) -> UnsafeMutableRawPointer? {
        let f = descriptor.field(field)
        (base + Int(f.pointee.quantifier_offset)).storeBytes(of: count, as: Int.self)
        guard count > 0 else { return nil }
        let array = arena.allocate(count * elementSize)
        (base + Int(f.pointee.offset)).storeBytes(of: array, as: UnsafeMutableRawPointer.self)
        return array
    }

    @inlinable
    mutating func visit<T: ProtoScalar>(_ value: T, field: Int) throws {
        value.store(to: slot(field).0)
    }

    @inlinable
    mutating func visit(_ value: String, field: Int) throws {
        // The default is already the empty-string sentinel protoc-c's init put there.
        guard !value.isEmpty else { return }
        let copy: UnsafeMutablePointer<CChar>
        do { copy = try arena.copyCString(value) } catch { throw ProtoError.naming(error, descriptor, field) }
        slot(field).0.storeBytes(of: copy, as: UnsafeMutablePointer<CChar>.self)
    }

    @inlinable
    mutating func visit(_ value: [UInt8], field: Int) throws {
        slot(field).0.storeBytes(of: arena.copyBytes(value), as: ProtobufCBinaryData.self)
    }

    @inlinable
    mutating func visit<E: ProtoEnum>(_ value: E, field: Int) throws {
        // protobuf-c stores enums as C enums, which are `int`.
        slot(field).0.storeBytes(of: CInt(value.protoValue), as: CInt.self)
    }

    @inlinable
    mutating func visit<M: ProtoMessage>(_ value: M?, field: Int) throws {
        guard let value else { return }
        let sub = try Self.build(value, in: arena)
        slot(field).0.storeBytes(of: sub, as: UnsafeMutablePointer<ProtobufCMessage>.self)
    }

    @inlinable
    mutating func visit<T: ProtoScalar>(_ value: [T], field: Int) throws {
        guard let array = storeRepeated(field, count: value.count, elementSize: T.cSize) else { return }
        for (i, element) in value.enumerated() { element.store(to: array + i * T.cSize) }
    }

    @inlinable
    mutating func visit(_ value: [String], field: Int) throws {
        let size = MemoryLayout<UnsafeMutablePointer<CChar>>.stride
        guard let array = storeRepeated(field, count: value.count, elementSize: size) else { return }
        do {
            for (i, element) in value.enumerated() {
                (array + i * size).storeBytes(of: try arena.copyCString(element), as: UnsafeMutablePointer<CChar>.self)
            }
        } catch {
            throw ProtoError.naming(error, descriptor, field)
        }
    }

    @inlinable
    mutating func visit(_ value: [[UInt8]], field: Int) throws {
        let size = MemoryLayout<ProtobufCBinaryData>.stride
        guard let array = storeRepeated(field, count: value.count, elementSize: size) else { return }
        for (i, element) in value.enumerated() {
            (array + i * size).storeBytes(of: arena.copyBytes(element), as: ProtobufCBinaryData.self)
        }
    }

    @inlinable
    mutating func visit<E: ProtoEnum>(_ value: [E], field: Int) throws {
        let size = MemoryLayout<CInt>.stride
        guard let array = storeRepeated(field, count: value.count, elementSize: size) else { return }
        for (i, element) in value.enumerated() { (array + i * size).storeBytes(of: CInt(element.protoValue), as: CInt.self) }
    }

    @inlinable
    mutating func visit<M: ProtoMessage>(_ value: [M], field: Int) throws {
        let size = MemoryLayout<UnsafeMutablePointer<ProtobufCMessage>>.stride
        guard let array = storeRepeated(field, count: value.count, elementSize: size) else { return }
        for (i, element) in value.enumerated() {
            (array + i * size).storeBytes(
                of: try Self.build(element, in: arena), as: UnsafeMutablePointer<ProtobufCMessage>.self)
        }
    }

    @inlinable
    mutating func visit(_ value: [String: String], field: Int) throws {
        // protoc-c represents a map as a repeated `XxxEntry { key = 1; value = 2; }` message.
        let size = MemoryLayout<UnsafeMutablePointer<ProtobufCMessage>>.stride
        guard let array = storeRepeated(field, count: value.count, elementSize: size) else { return }
        let entry = ProtoMapEntryLayout(mapField: descriptor.field(field))
        var i = 0
        do {
            for (key, item) in value {
                defer { i += 1 }
                let raw = arena.allocate(entry.structSize)
                let cEntry = raw.bindMemory(to: ProtobufCMessage.self, capacity: 1)
                entry.descriptor.pointee.message_init(cEntry)
                (raw + entry.keyOffset).storeBytes(of: try arena.copyCString(key), as: UnsafeMutablePointer<CChar>.self)
                (raw + entry.valueOffset).storeBytes(
                    of: try arena.copyCString(item), as: UnsafeMutablePointer<CChar>.self)
                (array + i * size).storeBytes(of: cEntry, as: UnsafeMutablePointer<ProtobufCMessage>.self)
            }
        } catch {
            throw ProtoError.naming(error, descriptor, field)
        }
    }
}

/// Where the key and value of a `map<string, string>` entry struct live.
@usableFromInline
struct ProtoMapEntryLayout {
    @usableFromInline let descriptor: UnsafePointer<ProtobufCMessageDescriptor>
    @usableFromInline let keyOffset: Int
    @usableFromInline let valueOffset: Int
    @inlinable var structSize: Int { descriptor.pointee.sizeof_message }

    @inlinable
    init(mapField: UnsafePointer<ProtobufCFieldDescriptor>) {
        descriptor = mapField.pointee.descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
        // Entry fields are sorted by number: key = 1, value = 2.
        keyOffset = Int(descriptor.pointee.fields[0].offset)
        valueOffset = Int(descriptor.pointee.fields[1].offset)
    }
}
