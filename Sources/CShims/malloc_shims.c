#include "malloc_shims.h"

#if defined(__GLIBC__)
#include <malloc.h>

int pgbackd_malloc_set(int arena_max, int mmap_threshold, int trim_threshold) {
    return mallopt(M_ARENA_MAX, arena_max) & mallopt(M_MMAP_THRESHOLD, mmap_threshold) & mallopt(M_TRIM_THRESHOLD, trim_threshold);
}
int pgbackd_malloc_trim(void) { return malloc_trim(0); }
#else
int pgbackd_malloc_set(int arena_max, int mmap_threshold, int trim_threshold) {
    (void)arena_max; (void)mmap_threshold; (void)trim_threshold;
    return 0;
}
int pgbackd_malloc_trim(void) { return 0; }
#endif
