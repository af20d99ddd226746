import CShims

/// glibc's allocator and a long-running daemon: free pages go back to the kernel after each job.
///
/// The bigger lever is the number of arenas, which only `MALLOC_ARENA_MAX` at exec sets reliably
/// (systemd/pgbackd.service sets 2): each thread that compresses, uploads or verifies otherwise
/// gets an arena of its own and keeps what is freed in it. The soak benchmark measured 200–270 MB
/// of RSS with glibc's default and 60–120 MB with 2 arenas (docs/benchmarks.md). `mallopt` from
/// inside the process, even first thing in `main`, did not lower it.
public enum ProcessMemory {
    /// After a job: free pages inside every arena go back to the kernel (`malloc_trim(0)`).
    public static func releaseFreePages() {
        _ = pgbackd_malloc_trim()
    }
}
