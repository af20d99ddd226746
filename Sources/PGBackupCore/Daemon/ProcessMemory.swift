import CShims

/// glibc's allocator and a long-running daemon: free pages go back to the kernel after each job.
///
/// The bigger lever is the number of arenas, which only `MALLOC_ARENA_MAX` at exec sets reliably
/// (systemd/pgbackd.service sets 2): each thread that compresses, uploads or verifies otherwise
/// gets an arena of its own and keeps what is freed in it. The soak benchmark measured 200–270 MB
/// of RSS with glibc's default and 60–120 MB with 2 arenas (docs/benchmarks.md). `mallopt` from
/// inside the process, even first thing in `main`, did not lower it.
public enum ProcessMemory {
    /// Buffers of `threshold` bytes and more (the WAL watcher's pieces and the compressed
    /// objects of its uploads) get pages of their own, returned to the kernel when freed, in
    /// any thread's arena. Without it glibc raises its threshold after the first large buffer
    /// is freed (up to 32 MiB), and from then on such buffers come from the arenas, which keep
    /// what is freed: the suspected cause of the watcher's 403 MiB peak (docs/benchmarks.md),
    /// not measured apart from the streaming that came with it.
    public static func mapLargeBuffers(threshold: Int32 = 256 << 10) {
        _ = pgbackd_malloc_mmap_threshold(threshold)
    }

    /// After a job: free pages inside every arena go back to the kernel (`malloc_trim(0)`).
    public static func releaseFreePages() {
        _ = pgbackd_malloc_trim()
    }
}
