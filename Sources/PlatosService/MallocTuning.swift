#if canImport(CGlibcMalloc)
import CGlibcMalloc
#endif

/// How the service processes tune glibc's allocator.
public enum MallocTuning {
    /// Freed memory stays with the process until 64 MiB of it sits free at the top of a heap.
    ///
    /// glibc hands freed memory back to the kernel once more than 128 KiB is free at the top of a
    /// heap. For the heaps of worker threads (GRDB's writer and readers, the concurrency pool) it
    /// does so with `madvise(MADV_DONTNEED)`, and each call is a TLB shootdown on every core:
    /// 5.6 % of the threads service's CPU while 64 callers posted, for memory that the next
    /// batch allocates again. Measured in `make bench-threads`: 8.8–9.0k → 10.2–11.0k posts/s.
    /// The cost is up to 64 MiB per heap kept instead of returned; large blocks (above glibc's
    /// 128 KiB mmap threshold) are still mapped and unmapped on their own.
    public static func keepFreedMemory() {
        #if canImport(CGlibcMalloc)
        _ = mallopt(M_TRIM_THRESHOLD, 64 << 20)
        #endif
    }
}
