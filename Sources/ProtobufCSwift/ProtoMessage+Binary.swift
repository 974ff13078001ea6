import CProtobufC

/// Limits applied before protobuf-c sees any bytes.
public enum ProtoLimits {
    /// The default largest encoded message accepted: 4 MiB, the same as the largest frame.
    public static let defaultMaxMessageSize = 4 * 1024 * 1024

    /// What protobuf-c may allocate to unpack `size` encoded bytes. Real messages take a few to
    /// some 35 times their size (each string, array, nested message and scan record is a block of
    /// its own); garbage built to make protobuf-c allocate more is refused as malformed.
    ///
    /// The 64 bytes per byte apply to the first MiB only, 8 to the rest: only small parts cost
    /// that much (a large message is large because of its strings), and a 4 MiB frame of empty
    /// unknown fields, each a record and a copy to protobuf-c, would otherwise be let allocate a
    /// quarter of a GiB. With this, at most 89 MiB.
    @inlinable
    public static func unpackBudget(forEncodedSize size: Int) -> Int {
        let mebibyte = 1024 * 1024
        return 64 * min(size, mebibyte) + 8 * max(0, size - mebibyte) + mebibyte
    }
}

extension ProtoMessage {
    /// The protobuf encoding of this value, packed by protobuf-c.
    @inlinable
    public func serializedBytes() throws -> [UInt8] {
        try withThreadArena { arena in
            let cMessage = try ProtoCStructWriter.build(self, in: arena)
            let size = protobuf_c_message_get_packed_size(cMessage)
            guard size <= Self.packInArenaLimit else {
                return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                    count = protobuf_c_message_pack(cMessage, buffer.baseAddress)
                }
            }
            // Packed in the arena and copied out. `init(unsafeUninitializedCapacity:)` runs the
            // stdlib's unspecialised allocator, which looks the array's storage type up in the
            // runtime's metadata cache on every call; copying a buffer into an array does not,
            // and for a small message the lookup costs more than the copy.
            let out = arena.allocate(max(size, 1)).assumingMemoryBound(to: UInt8.self)
            let written = protobuf_c_message_pack(cMessage, out)
            return [UInt8](UnsafeBufferPointer(start: out, count: written))
        }
    }

    /// Above this size, ``serializedBytes()`` packs straight into the array instead.
    @usableFromInline static var packInArenaLimit: Int { 16 * 1024 }

    /// Packs this value with protobuf-c and hands the bytes to `body` (valid only inside it).
    /// This is the zero-copy path for writers that own their output buffer.
    @inlinable
    public func withSerializedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try withThreadArena { arena in
            let cMessage = try ProtoCStructWriter.build(self, in: arena)
            let size = protobuf_c_message_get_packed_size(cMessage)
            let out = arena.allocate(max(size, 1))
            let written = protobuf_c_message_pack(cMessage, out.assumingMemoryBound(to: UInt8.self))
            return try body(UnsafeRawBufferPointer(start: out, count: written))
        }
    }

    /// Packs this value straight into a caller's buffer: `sink` learns the packed size, makes
    /// room, and calls `pack` with a pointer to that many writable bytes.
    @inlinable
    public func serialize(
        _ sink: (_ size: Int, _ pack: (UnsafeMutablePointer<UInt8>) -> Int) throws -> Void
    ) throws {
        try withThreadArena { arena in
            let cMessage = try ProtoCStructWriter.build(self, in: arena)
            let size = protobuf_c_message_get_packed_size(cMessage)
            try sink(size) { protobuf_c_message_pack(cMessage, $0) }
        }
    }

    /// Unpacks `bytes` with protobuf-c. The size is checked against `maxSize` before protobuf-c is
    /// called, so an oversized input costs nothing.
    @inlinable
    public init(serializedBytes bytes: UnsafeRawBufferPointer, maxSize: Int = ProtoLimits.defaultMaxMessageSize)
        throws
    {
        guard bytes.count <= maxSize else { throw ProtoError.tooLarge(size: bytes.count, limit: maxSize) }
        self = try withThreadArena { arena in
            arena.beginUnpack(budget: ProtoLimits.unpackBudget(forEncodedSize: bytes.count))
            var allocator = arena.protobufCAllocator
            // protobuf-c reads nothing from a zero-length input, but wants a non-null pointer.
            var empty: UInt8 = 0
            let unpacked = withUnsafeMutablePointer(to: &empty) { emptyPointer in
                protobuf_c_message_unpack(
                    Self.protoDescriptor.pointer, &allocator, bytes.count,
                    bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(emptyPointer))
            }
            guard let unpacked else { throw ProtoError.malformed(message: Self.protoDescriptor.fullName) }
            // Everything unpack allocated lives in the arena, which withThreadArena resets: no
            // free_unpacked is needed, and none is ever called on a struct we built ourselves.
            return try ProtoCStructReader.read(Self.self, from: UnsafeRawPointer(unpacked))
        }
    }

    public init(serializedBytes bytes: [UInt8], maxSize: Int = ProtoLimits.defaultMaxMessageSize) throws {
        self = try bytes.withUnsafeBytes { try Self(serializedBytes: $0, maxSize: maxSize) }
    }
}
