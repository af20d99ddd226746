#ifndef PGBACKD_MALLOC_SHIMS_H
#define PGBACKD_MALLOC_SHIMS_H

/// glibc's <malloc.h> tuning, which Swift's Glibc module does not export.
/// Both do nothing (and return 0) where the C library is not glibc.
int pgbackd_malloc_limit_arenas(int count);
int pgbackd_malloc_trim(void);

#endif
