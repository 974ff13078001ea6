import CProtobufC

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A bump allocator for the C side of one conversion.
///
/// Building a protobuf-c struct from Swift, and unpacking one with protobuf-c, both need many
/// small allocations (every string, every repeated array, every nested message). Taking them all
/// from one reusable block and dropping them together with ``reset()`` is what keeps the bridge
/// close to the speed of raw protobuf-c: nothing is allocated per field, and nothing needs
/// `free_unpacked`, because everything an unpack allocated belongs to the arena.
///
/// An arena is not thread-safe; use one per thread (``withThreadArena(_:)``) or per channel.
public final class ProtoArena {
    private static let alignment = 16

    private let chunkSize: Int
    private var first: UnsafeMutableRawPointer
    private var current: UnsafeMutableRawPointer
    private var used = 0
    private var capacity: Int
    /// Chunks beyond the first, freed on reset.
    private var extra: [UnsafeMutableRawPointer] = []

    public init(chunkSize: Int = 64 * 1024) {
        self.chunkSize = chunkSize
        first = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: Self.alignment)
        current = first
        capacity = chunkSize
    }

    deinit {
        releaseExtraChunks()
        first.deallocate()
    }

    /// `size` bytes, 16-byte aligned, valid until the next ``reset()``.
    @inline(__always)
    public func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        let rounded = (size + Self.alignment - 1) & ~(Self.alignment - 1)
        if used + rounded <= capacity {
            let p = current + used
            used += rounded
            return p
        }
        return allocateSlow(rounded)
    }

    private func allocateSlow(_ rounded: Int) -> UnsafeMutableRawPointer {
        let size = max(rounded, chunkSize)
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: Self.alignment)
        extra.append(chunk)
        current = chunk
        capacity = size
        used = rounded
        return chunk
    }

    /// Frees everything allocated since the last reset. Keeps the first chunk for reuse.
    public func reset() {
        releaseExtraChunks()
        current = first
        capacity = chunkSize
        used = 0
    }

    private func releaseExtraChunks() {
        for chunk in extra { chunk.deallocate() }
        extra.removeAll(keepingCapacity: true)
    }

    /// A copy of `string` as a NUL-terminated C string in the arena.
    @inline(__always)
    func copyCString(_ string: String) throws -> UnsafeMutablePointer<CChar> {
        var string = string
        return try string.withUTF8 { utf8 in
            // protobuf-c strings are C strings: a NUL inside would silently cut the value short.
            if utf8.count > 0, memchr(utf8.baseAddress!, 0, utf8.count) != nil {
                throw ProtoError.invalidValue("a string contains a NUL character, which protobuf-c cannot carry")
            }
            let p = allocate(utf8.count + 1)
            if utf8.count > 0 { p.copyMemory(from: utf8.baseAddress!, byteCount: utf8.count) }
            p.storeBytes(of: 0, toByteOffset: utf8.count, as: UInt8.self)
            return p.assumingMemoryBound(to: CChar.self)
        }
    }

    /// A copy of `bytes` in the arena.
    @inline(__always)
    func copyBytes(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        if bytes.isEmpty { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocate(bytes.count)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return ProtobufCBinaryData(len: bytes.count, data: p.assumingMemoryBound(to: UInt8.self))
    }

    /// A protobuf-c allocator that allocates from this arena and never frees: ``reset()`` does.
    /// Valid while the arena is alive.
    var protobufCAllocator: ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { data, size in
                Unmanaged<ProtoArena>.fromOpaque(data!).takeUnretainedValue().allocate(size)
            },
            free: { _, _ in },
            allocator_data: Unmanaged.passUnretained(self).toOpaque()
        )
    }
}

/// Runs `body` with this thread's arena, reset afterwards. Re-entrant: a nested call gets a
/// fresh arena of its own.
public func withThreadArena<R, E: Error>(_ body: (ProtoArena) throws(E) -> R) throws(E) -> R {
    let slot = ThreadArenaSlot.current()
    if slot.inUse {
        let nested = ProtoArena(chunkSize: 4096)
        return try body(nested)
    }
    slot.inUse = true
    defer {
        slot.arena.reset()
        slot.inUse = false
    }
    return try body(slot.arena)
}

/// One arena per thread, created on first use and freed with the thread.
private final class ThreadArenaSlot {
    let arena = ProtoArena()
    var inUse = false

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            Unmanaged<ThreadArenaSlot>.fromOpaque(pointer).release()
        }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    @inline(__always)
    static func current() -> ThreadArenaSlot {
        if let existing = pthread_getspecific(key) {
            return Unmanaged<ThreadArenaSlot>.fromOpaque(existing).takeUnretainedValue()
        }
        let slot = ThreadArenaSlot()
        pthread_setspecific(key, Unmanaged.passRetained(slot).toOpaque())
        return slot
    }
}
