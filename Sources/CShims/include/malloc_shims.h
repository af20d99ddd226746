#ifndef PGBACKD_MALLOC_SHIMS_H
#define PGBACKD_MALLOC_SHIMS_H

/// glibc's malloc_trim from <malloc.h>, which Swift's Glibc module does not export.
/// Does nothing (and returns 0) where the C library is not glibc.
int pgbackd_malloc_trim(void);

#endif
