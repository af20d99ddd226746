import CShims

/// glibc's allocator and pgbackd's processes.
///
/// Every pgbackd command starts with at most 2 malloc arenas, a fixed 256 KiB mmap threshold and
/// a 1 MiB trim threshold (a constructor in CShims' malloc_shims.c applies them before `main`,
/// each unless the environment sets it: `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
/// `MALLOC_TRIM_THRESHOLD_`; `GLIBC_TUNABLES` leaves all three to glibc). Without them each thread that compresses,
/// uploads or verifies keeps what it freed in an arena of its own, and glibc's dynamic mmap
/// threshold moves the 4 MiB compression blocks and 16 MiB upload parts into those arenas after
/// the first is freed: the soak benchmark measured 200–270 MB of RSS with glibc's defaults and
/// 60–120 MB with 2 arenas (docs/benchmarks.md); an S3 base backup 176–199 MiB. `mallopt` from
/// Swift code, even first thing in `run`, came too late (threads and their arenas already
/// existed), hence the constructor. systemd/pgbackd.service still sets `MALLOC_ARENA_MAX=2`.
public enum ProcessMemory {
    /// After a job: free pages inside every arena go back to the kernel (`malloc_trim(0)`).
    public static func releaseFreePages() {
        _ = pgbackd_malloc_trim()
    }

    /// Whether this process runs with all three of pgbackd's allocator settings (glibc, and the
    /// environment chose none of its own).
    public static var allocatorDefaultsApplied: Bool {
        pgbackd_malloc_defaults_were_applied() != 0
    }

    /// The malloc arenas glibc has made in this process so far; nil where that is unknown.
    public static var arenaCount: Int? {
        let count = pgbackd_malloc_arena_count()
        return count < 0 ? nil : Int(count)
    }

    /// The settings, as applied (for logs and tests).
    public static let arenaMax = Int(PGBACKD_MALLOC_ARENA_MAX)
    public static let mmapThreshold = Int(PGBACKD_MALLOC_MMAP_THRESHOLD)
    public static let trimThreshold = Int(PGBACKD_MALLOC_TRIM_THRESHOLD)
}
