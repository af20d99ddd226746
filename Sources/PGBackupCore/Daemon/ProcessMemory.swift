import CShims

/// glibc's allocator and a long-running daemon. By default glibc raises its mmap threshold to
/// the largest block freed so far (up to 32 MiB), so after the first 16 MiB WAL segment or 8 MiB
/// upload part, such buffers come from per-thread arenas, and the free space at the top of a
/// thread's arena (up to twice that threshold) stays resident: `malloc_trim` does not shrink
/// other threads' arenas. The soak benchmark saw 150–215 MB of RSS with about 1 MB live,
/// swinging ±15 % from sample to sample (docs/benchmarks.md).
public enum ProcessMemory {
    /// Blocks from this size up are mmapped and unmapped on free: the 1 MiB compression blocks,
    /// upload parts and WAL segments, which the daemon allocates a few hundred times a second at
    /// most (one mmap and munmap each, next to compressing a MiB).
    public static let mmapThreshold: Int32 = 256 << 10

    /// At daemon start: at most 4 arenas (glibc's default is 8 per core), a fixed mmap threshold
    /// (which also stops the dynamic adjustment), and arenas trimmed when 1 MiB at their top is free.
    public static func tuneForLongRunning() {
        _ = pgbackd_malloc_set(4, mmapThreshold, 1 << 20)
    }

    /// After a job: free pages inside every arena go back to the kernel (`malloc_trim(0)`).
    public static func releaseFreePages() {
        _ = pgbackd_malloc_trim()
    }
}
