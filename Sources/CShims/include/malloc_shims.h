#ifndef PGBACKD_MALLOC_SHIMS_H
#define PGBACKD_MALLOC_SHIMS_H

#include <stddef.h>

/// glibc's <malloc.h> tuning, which Swift's Glibc module does not export.
/// They do nothing (and return 0) where the C library is not glibc.
int pgbackd_malloc_set(int arena_max, int mmap_threshold, int trim_threshold);
int pgbackd_malloc_trim(void);

#endif
