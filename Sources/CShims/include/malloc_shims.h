#ifndef PGBACKD_MALLOC_SHIMS_H
#define PGBACKD_MALLOC_SHIMS_H

/// glibc's malloc_trim from <malloc.h>, which Swift's Glibc module does not export.
/// Does nothing (and returns 0) where the C library is not glibc.
int pgbackd_malloc_trim(void);

/// glibc's mallopt(M_MMAP_THRESHOLD, bytes): allocations of at least `bytes` get pages of their
/// own (mmap), returned to the kernel when freed, and glibc stops raising the threshold by itself
/// (its default grows it up to 32 MiB after the first large free, after which large buffers are
/// carved from the arenas and kept there). Returns 1 on success; 0 where the C library is not glibc.
int pgbackd_malloc_mmap_threshold(int bytes);

#endif
