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

    /// The bump state lives behind a pointer rather than in stored properties: class properties
    /// pay a dynamic exclusivity check on every `+=`, which on this path cost more than the
    /// allocation itself.
    private struct BumpState {
        var current: UnsafeMutableRawPointer
        var used: Int
        var capacity: Int
        /// Set while ``withThreadArena(_:)`` lends the arena out.
        var lent: Bool
        /// The arena itself, for the slow path of protobuf-c's allocator callback.
        var owner: Unmanaged<ProtoArena>?
    }

    private let chunkSize: Int
    private let first: UnsafeMutableRawPointer
    private let state: UnsafeMutablePointer<BumpState>
    /// Chunks beyond the first, freed on reset.
    private var extra: [UnsafeMutableRawPointer] = []

    public init(chunkSize: Int = 64 * 1024) {
        self.chunkSize = chunkSize
        first = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: Self.alignment)
        state = .allocate(capacity: 1)
        state.initialize(to: BumpState(current: first, used: 0, capacity: chunkSize, lent: false, owner: nil))
        state.pointee.owner = Unmanaged.passUnretained(self)
    }

    deinit {
        releaseExtraChunks()
        first.deallocate()
        state.deallocate()
    }

    /// `size` bytes, 16-byte aligned, valid until the next ``reset()``.
    @inline(__always)
    public func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        let rounded = (size + Self.alignment - 1) & ~(Self.alignment - 1)
        if state.pointee.used + rounded <= state.pointee.capacity {
            let p = state.pointee.current + state.pointee.used
            state.pointee.used += rounded
            return p
        }
        return allocateSlow(rounded)
    }

    private func allocateSlow(_ rounded: Int) -> UnsafeMutableRawPointer {
        let size = max(rounded, chunkSize)
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: Self.alignment)
        extra.append(chunk)
        state.pointee.current = chunk
        state.pointee.used = rounded
        state.pointee.capacity = size
        return chunk
    }

    /// Frees everything allocated since the last reset. Keeps the first chunk for reuse.
    public func reset() {
        if !extra.isEmpty { releaseExtraChunks() }
        state.pointee.current = first
        state.pointee.capacity = chunkSize
        state.pointee.used = 0
    }

    private func releaseExtraChunks() {
        for chunk in extra { chunk.deallocate() }
        extra.removeAll(keepingCapacity: true)
    }

    @usableFromInline var lent: Bool {
        get { state.pointee.lent }
        set { state.pointee.lent = newValue }
    }

    /// A copy of `string` as a NUL-terminated C string in the arena.
    @inlinable
    func copyCString(_ string: String) throws -> UnsafeMutablePointer<CChar> {
        // Native strings are contiguous UTF-8: read them in place, without the copy (and the
        // retain/release pair) that `withUTF8` on a mutable copy would cost.
        if let copied = try string.utf8.withContiguousStorageIfAvailable({ try copyCString(utf8: $0) }) {
            return copied
        }
        var contiguous = string
        return try contiguous.withUTF8 { try copyCString(utf8: $0) }
    }

    @usableFromInline
    func copyCString(utf8: UnsafeBufferPointer<UInt8>) throws -> UnsafeMutablePointer<CChar> {
        let p = allocate(utf8.count + 1)
        if let source = utf8.baseAddress, utf8.count > 0 {
            // protobuf-c strings are C strings: a NUL inside would silently cut the value short.
            // memccpy copies and looks for it in one pass; it returns non-nil only if it met one.
            if memccpy(p, source, 0, utf8.count) != nil {
                throw ProtoError.invalidValue("a string contains a NUL character, which protobuf-c cannot carry")
            }
        }
        p.storeBytes(of: 0, toByteOffset: utf8.count, as: UInt8.self)
        return p.assumingMemoryBound(to: CChar.self)
    }

    /// A copy of `bytes` in the arena.
    @inlinable
    func copyBytes(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        if bytes.isEmpty { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocate(bytes.count)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return ProtobufCBinaryData(len: bytes.count, data: p.assumingMemoryBound(to: UInt8.self))
    }

    /// A protobuf-c allocator that allocates from this arena and never frees: ``reset()`` does.
    /// Valid while the arena is alive. The callback bumps the state directly, touching the class
    /// (and its reference count) only when a chunk runs out.
    @usableFromInline var protobufCAllocator: ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { data, size in
                let state = data!.assumingMemoryBound(to: BumpState.self)
                let rounded = (size + ProtoArena.alignment - 1) & ~(ProtoArena.alignment - 1)
                if state.pointee.used + rounded <= state.pointee.capacity {
                    let p = state.pointee.current + state.pointee.used
                    state.pointee.used += rounded
                    return p
                }
                return state.pointee.owner!.takeUnretainedValue().allocateSlow(rounded)
            },
            free: { _, _ in },
            allocator_data: UnsafeMutableRawPointer(state)
        )
    }
}

/// Runs `body` with this thread's arena, reset afterwards. Re-entrant: a nested call gets a
/// fresh arena of its own.
@inlinable
public func withThreadArena<R, E: Error>(_ body: (ProtoArena) throws(E) -> R) throws(E) -> R {
    let arena = ThreadArena.current()
    if arena.lent {
        let nested = ProtoArena(chunkSize: 4096)
        return try body(nested)
    }
    arena.lent = true
    defer {
        arena.reset()
        arena.lent = false
    }
    return try body(arena)
}

/// One arena per thread, created on first use and freed with the thread.
@usableFromInline
enum ThreadArena {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            Unmanaged<ProtoArena>.fromOpaque(pointer).release()
        }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    @usableFromInline
    static func current() -> ProtoArena {
        if let existing = pthread_getspecific(key) {
            return Unmanaged<ProtoArena>.fromOpaque(existing).takeUnretainedValue()
        }
        let arena = ProtoArena()
        pthread_setspecific(key, Unmanaged.passRetained(arena).toOpaque())
        return arena
    }
}
