#ifndef PGBACKD_MALLOC_SHIMS_H
#define PGBACKD_MALLOC_SHIMS_H

/// glibc's allocator settings for every pgbackd process, applied by a constructor in
/// malloc_shims.c before main, each unless the environment sets it (MALLOC_ARENA_MAX,
/// MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_; GLIBC_TUNABLES leaves all three to glibc):
/// - at most 2 arenas (glibc's default is 8 per core): each thread that compresses, uploads or
///   verifies otherwise keeps what it freed in an arena of its own;
/// - a fixed mmap threshold, which also turns off glibc's dynamic one (raised to the largest
///   block freed, up to 32 MiB, after which 4 MiB compression blocks and 16 MiB upload parts come
///   from arenas whose free tops stay resident): blocks from this size up are mapped and
///   unmapped on free;
/// - a trim threshold: an arena's free top beyond this goes back to the kernel.
#define PGBACKD_MALLOC_ARENA_MAX 2
#define PGBACKD_MALLOC_MMAP_THRESHOLD 262144 /* 256 KiB */
#define PGBACKD_MALLOC_TRIM_THRESHOLD 1048576 /* 1 MiB */

/// glibc's malloc_trim(0) from <malloc.h>, which Swift's Glibc module does not export.
/// Does nothing (and returns 0) where the C library is not glibc.
int pgbackd_malloc_trim(void);

/// 1 when the constructor applied all three settings above (glibc, none set in the environment).
int pgbackd_malloc_defaults_were_applied(void);

/// The arenas glibc has made so far (from malloc_info), or -1 where that is unknown.
int pgbackd_malloc_arena_count(void);

#endif
