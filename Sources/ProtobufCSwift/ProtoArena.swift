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
/// from one reusable block and dropping them together with ``Cursor/reset()`` is what keeps the
/// bridge close to the speed of raw protobuf-c: nothing is allocated per field, and nothing needs
/// `free_unpacked`, because everything an unpack allocated belongs to the arena.
///
/// The conversions never touch this class: they work through a ``Cursor``, a plain pointer to the
/// bump state, so a round trip pays no reference counting for its allocator. The class only owns
/// the memory and is reached on the slow path, when a chunk runs out.
///
/// An arena is not thread-safe; use one per thread (``withThreadArena(_:)``).
@usableFromInline
final class ProtoArena {
    @usableFromInline static let alignment = 16

    @usableFromInline
    struct BumpState {
        @usableFromInline var current: UnsafeMutableRawPointer
        @usableFromInline var used: Int
        @usableFromInline var capacity: Int
        /// The reusable first chunk, and its size: what a reset returns to.
        @usableFromInline let first: UnsafeMutableRawPointer
        @usableFromInline let chunkSize: Int
        /// Set once a chunk beyond the first was allocated, so a reset must free it.
        @usableFromInline var hasExtraChunks: Bool
        /// Set while ``withThreadArena(_:)`` lends the arena out.
        @usableFromInline var lent: Bool
        /// The arena itself, for the slow paths.
        @usableFromInline var owner: Unmanaged<ProtoArena>?
        /// Bytes protobuf-c may still take during the unpack in progress (``Cursor/beginUnpack(budget:)``).
        @usableFromInline var unpackBudget: Int
    }

    private let state: UnsafeMutablePointer<BumpState>
    /// Chunks beyond the first, freed on reset.
    private var extra: [UnsafeMutableRawPointer] = []

    @usableFromInline
    init(chunkSize: Int = 64 * 1024) {
        let first = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: Self.alignment)
        state = .allocate(capacity: 1)
        state.initialize(
            to: BumpState(
                current: first, used: 0, capacity: chunkSize, first: first, chunkSize: chunkSize,
                hasExtraChunks: false, lent: false, owner: nil, unpackBudget: .max))
        state.pointee.owner = Unmanaged.passUnretained(self)
    }

    deinit {
        releaseExtraChunks()
        state.pointee.first.deallocate()
        state.deallocate()
    }

    /// The handle conversions allocate through. Valid while the arena is alive.
    @usableFromInline var cursor: Cursor { Cursor(state: state) }

    fileprivate func allocateSlow(_ rounded: Int) -> UnsafeMutableRawPointer {
        let size = max(rounded, state.pointee.chunkSize)
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: Self.alignment)
        extra.append(chunk)
        state.pointee.current = chunk
        state.pointee.used = rounded
        state.pointee.capacity = size
        state.pointee.hasExtraChunks = true
        return chunk
    }

    /// Frees the chunks beyond the first; the cursor resets the bump state itself.
    fileprivate func releaseExtraChunks() {
        for chunk in extra { chunk.deallocate() }
        extra.removeAll(keepingCapacity: true)
        state.pointee.hasExtraChunks = false
    }

    /// A pointer to an arena's bump state: allocation without reference counting.
    @usableFromInline
    struct Cursor {
        @usableFromInline let state: UnsafeMutablePointer<BumpState>

        @inlinable
        init(state: UnsafeMutablePointer<BumpState>) {
            self.state = state
        }

        /// `size` bytes, 16-byte aligned, valid until the next ``reset()``.
        @inlinable @inline(__always)
        func allocate(_ size: Int) -> UnsafeMutableRawPointer {
            Self.allocate(size, in: state)
        }

        @inlinable @inline(__always)
        static func allocate(_ size: Int, in state: UnsafeMutablePointer<BumpState>) -> UnsafeMutableRawPointer {
            let rounded = (size + ProtoArena.alignment - 1) & ~(ProtoArena.alignment - 1)
            if state.pointee.used + rounded <= state.pointee.capacity {
                let p = state.pointee.current + state.pointee.used
                state.pointee.used += rounded
                return p
            }
            return allocateSlow(rounded, in: state)
        }

        @usableFromInline
        static func allocateSlow(_ rounded: Int, in state: UnsafeMutablePointer<BumpState>) -> UnsafeMutableRawPointer {
            state.pointee.owner!.takeUnretainedValue().allocateSlow(rounded)
        }

        /// Frees everything allocated since the last reset. Keeps the first chunk for reuse.
        @inlinable
        func reset() {
            if state.pointee.hasExtraChunks { Self.releaseExtraChunks(state) }
            state.pointee.current = state.pointee.first
            state.pointee.capacity = state.pointee.chunkSize
            state.pointee.used = 0
            state.pointee.unpackBudget = .max
        }

        /// Caps what ``protobufCAllocator`` hands out until the next ``reset()``: past `budget`
        /// bytes it returns NULL, and protobuf-c fails the unpack. Without a cap a peer's bytes
        /// decide how much memory an unpack takes, and since this allocator never frees, a
        /// non-repeated message field sent many times (protobuf-c merges the copies, concatenating
        /// their repeated fields into a fresh array each time) took memory quadratic in the input:
        /// 1.6 GB for 80 KB.
        @inlinable
        func beginUnpack(budget: Int) {
            state.pointee.unpackBudget = budget
        }

        @usableFromInline
        static func releaseExtraChunks(_ state: UnsafeMutablePointer<BumpState>) {
            state.pointee.owner!.takeUnretainedValue().releaseExtraChunks()
        }

        @inlinable var lent: Bool {
            get { state.pointee.lent }
            nonmutating set { state.pointee.lent = newValue }
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
                    throw ProtoError.invalidValue("contains a NUL character, which protobuf-c cannot carry")
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

        /// Bytes in front of each block ``protobufCAllocator`` hands out; they hold the size asked for.
        @usableFromInline static let unpackHeader = 16

        /// A protobuf-c allocator that allocates from the arena and never frees: ``reset()`` does.
        /// Each block is preceded by the size protobuf-c asked for (``unpackedBlockSize(_:)``), and
        /// the whole takes from the unpack budget; a request past it gets NULL.
        @inlinable var protobufCAllocator: ProtobufCAllocator {
            ProtobufCAllocator(
                alloc: { data, size in
                    let state = data!.assumingMemoryBound(to: BumpState.self)
                    let cost = Cursor.unpackHeader + ((size + ProtoArena.alignment - 1) & ~(ProtoArena.alignment - 1))
                    guard cost <= state.pointee.unpackBudget else { return nil }
                    state.pointee.unpackBudget -= cost
                    let block = Cursor.allocate(cost, in: state)
                    block.storeBytes(of: size, as: Int.self)
                    return block + Cursor.unpackHeader
                },
                free: { _, _ in },
                allocator_data: UnsafeMutableRawPointer(state)
            )
        }

        /// The size protobuf-c asked for when it allocated `block` through ``protobufCAllocator``.
        @inlinable
        static func unpackedBlockSize(_ block: UnsafeRawPointer) -> Int {
            (block - unpackHeader).load(as: Int.self)
        }
    }
}

/// Runs `body` with this thread's arena, reset afterwards. Re-entrant: a nested call gets a
/// fresh arena of its own.
@inlinable
func withThreadArena<R, E: Error>(_ body: (ProtoArena.Cursor) throws(E) -> R) throws(E) -> R {
    let cursor = ThreadArena.current()
    if cursor.lent {
        let nested = ProtoArena(chunkSize: 4096)
        return try withExtendedLifetime(nested) { () throws(E) -> R in try body(nested.cursor) }
    }
    cursor.lent = true
    defer {
        cursor.reset()
        cursor.lent = false
    }
    return try body(cursor)
}

/// One arena per thread, created on first use and freed with the thread. The thread-specific
/// value is the arena's bump state, so finding it touches no reference count.
@usableFromInline
enum ThreadArena {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            pointer.assumingMemoryBound(to: ProtoArena.BumpState.self).pointee.owner!.release()
        }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    @usableFromInline
    static func current() -> ProtoArena.Cursor {
        if let existing = pthread_getspecific(key) {
            return ProtoArena.Cursor(state: existing.assumingMemoryBound(to: ProtoArena.BumpState.self))
        }
        let arena = ProtoArena()
        _ = Unmanaged.passRetained(arena)  // released by the key's destructor
        let cursor = arena.cursor
        pthread_setspecific(key, UnsafeMutableRawPointer(cursor.state))
        return cursor
    }
}
