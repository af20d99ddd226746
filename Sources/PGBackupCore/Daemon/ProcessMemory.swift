import CShims

/// glibc's allocator and a long-running daemon. Each thread that compresses, uploads or verifies
/// gets an arena of its own, and freed blocks stay in it: the soak benchmark saw 180 MB of RSS of
/// which 1 MB was in use, swinging ±15 % from run to run (docs/benchmarks.md). Fewer arenas and
/// handing free pages back after each job keep the daemon's RSS at what it uses.
public enum ProcessMemory {
    /// At daemon start: at most this many arenas (glibc's default is 8 per core).
    public static func limitArenas(_ count: Int32 = 4) {
        _ = pgbackd_malloc_limit_arenas(count)
    }

    /// After a job: free pages of every arena go back to the kernel (`malloc_trim(0)`).
    public static func releaseFreePages() {
        _ = pgbackd_malloc_trim()
    }
}
