import CProtobufC

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads a Swift message out of a protobuf-c struct (as `protobuf_c_message_unpack` produced it),
/// using the descriptor's offsets.
@usableFromInline
struct ProtoCStructReader: ProtoFieldDecoder {
    @usableFromInline let base: UnsafeRawPointer
    @usableFromInline let descriptor: ProtoMessageDescriptor

    @inlinable
    init(base: UnsafeRawPointer, descriptor: ProtoMessageDescriptor) {
        self.base = base
        self.descriptor = descriptor
    }

    @inlinable
    static func read<M: ProtoMessage>(_ type: M.Type, from message: UnsafeRawPointer) throws -> M {
        var reader = ProtoCStructReader(base: message, descriptor: M.protoDescriptor)
        return try M(fields: &reader)
    }

    @inlinable
    func slot(_ field: Int) -> UnsafeRawPointer {
        base + Int(descriptor.field(field).pointee.offset)
    }

    /// The element count and array pointer of a repeated field.
    @inlinable
    func repeated(_ field: Int) -> (count: Int, array: UnsafeRawPointer?) {
        let f = descriptor.field(field)
        let count = (base + Int(f.pointee.quantifier_offset)).loadUnaligned(as: Int.self)
        guard count > 0 else { return (0, nil) }
        return (count, (base + Int(f.pointee.offset)).loadUnaligned(as: UnsafeRawPointer?.self))
    }

    /// The string field at `pointer` of a struct protobuf-c unpacked. Refused, as protobuf refuses
    /// them, when the peer sent invalid UTF-8 or a NUL (a C string would silently end there, and
    /// "a\0b" would be read as "a"): protobuf-c checks neither.
    @inlinable
    static func string(at pointer: UnsafeRawPointer) throws -> String {
        guard let cString = pointer.loadUnaligned(as: UnsafePointer<UInt8>?.self),
            UnsafeRawPointer(cString) != UnsafeRawPointer(protobufCEmptyString())
        else { return "" }
        // Not protobuf-c's shared empty string (what a field the bytes left out points to), so
        // protobuf-c allocated it, exactly length + 1 bytes, and the arena noted that size.
        let length = ProtoArena.Cursor.unpackedBlockSize(UnsafeRawPointer(cString)) - 1
        if length <= 0 { return "" }
        if memchr(cString, 0, length) != nil {
            throw ProtoError.invalidValue("contains a NUL character")
        }
        guard let string = String(validating: UnsafeBufferPointer(start: cString, count: length), as: UTF8.self) else {
            throw ProtoError.invalidValue("is not valid UTF-8")
        }
        return string
    }

    @inlinable
    static func bytes(at pointer: UnsafeRawPointer) -> [UInt8] {
        let binary = pointer.loadUnaligned(as: ProtobufCBinaryData.self)
        guard binary.len > 0, let data = binary.data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: binary.len))
    }

    @inlinable
    func decode<T: ProtoScalar>(_ type: T.Type, field: Int) throws -> T {
        T.load(from: slot(field))
    }

    @inlinable
    func decode(_ type: String.Type, field: Int) throws -> String {
        do { return try Self.string(at: slot(field)) } catch { throw naming(error, field) }
    }

    @usableFromInline
    func naming(_ error: any Error, _ field: Int) -> any Error {
        ProtoError.naming(error, descriptor, field)
    }

    @inlinable
    func decode(_ type: [UInt8].Type, field: Int) throws -> [UInt8] {
        Self.bytes(at: slot(field))
    }

    @inlinable
    func decode<E: ProtoEnum>(_ type: E.Type, field: Int) throws -> E {
        E(protoValue: Int32(slot(field).loadUnaligned(as: CInt.self)))
    }

    @inlinable
    func decode<M: ProtoMessage>(_ type: M?.Type, field: Int) throws -> M? {
        guard let sub = slot(field).loadUnaligned(as: UnsafeRawPointer?.self) else { return nil }
        return try Self.read(M.self, from: sub)
    }

    @inlinable
    func decode<T: ProtoScalar>(_ type: [T].Type, field: Int) throws -> [T] {
        let (count, array) = repeated(field)
        guard let array else { return [] }
        return (0..<count).map { T.load(from: array + $0 * T.cSize) }
    }

    @inlinable
    func decode(_ type: [String].Type, field: Int) throws -> [String] {
        let (count, array) = repeated(field)
        guard let array else { return [] }
        let size = MemoryLayout<UnsafeRawPointer>.stride
        do {
            return try (0..<count).map { try Self.string(at: array + $0 * size) }
        } catch {
            throw naming(error, field)
        }
    }

    @inlinable
    func decode(_ type: [[UInt8]].Type, field: Int) throws -> [[UInt8]] {
        let (count, array) = repeated(field)
        guard let array else { return [] }
        let size = MemoryLayout<ProtobufCBinaryData>.stride
        return (0..<count).map { Self.bytes(at: array + $0 * size) }
    }

    @inlinable
    func decode<E: ProtoEnum>(_ type: [E].Type, field: Int) throws -> [E] {
        let (count, array) = repeated(field)
        guard let array else { return [] }
        let size = MemoryLayout<CInt>.stride
        return (0..<count).map { E(protoValue: Int32((array + $0 * size).loadUnaligned(as: CInt.self))) }
    }

    @inlinable
    func decode<M: ProtoMessage>(_ type: [M].Type, field: Int) throws -> [M] {
        let (count, array) = repeated(field)
        guard let array else { return [] }
        let size = MemoryLayout<UnsafeRawPointer>.stride
        var out: [M] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let sub = (array + i * size).loadUnaligned(as: UnsafeRawPointer.self)
            out.append(try Self.read(M.self, from: sub))
        }
        return out
    }

    @inlinable
    func decode(_ type: [String: String].Type, field: Int) throws -> [String: String] {
        let (count, array) = repeated(field)
        guard let array else { return [:] }
        let entry = ProtoMapEntryLayout(mapField: descriptor.field(field))
        let size = MemoryLayout<UnsafeRawPointer>.stride
        // As in protobuf, the last occurrence of a key wins. Built from a sequence because that
        // initialiser is specialised here, while `init(minimumCapacity:)` runs the unspecialised
        // stdlib code, which looks the storage type up in the runtime's metadata cache on every
        // call (5 % of a small message's round trip).
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(count)
        do {
            for i in 0..<count {
                let raw = (array + i * size).loadUnaligned(as: UnsafeRawPointer.self)
                pairs.append((try Self.string(at: raw + entry.keyOffset), try Self.string(at: raw + entry.valueOffset)))
            }
        } catch {
            throw naming(error, field)
        }
        return Dictionary(pairs, uniquingKeysWith: { _, last in last })
    }
}
