#include "malloc_shims.h"

#if defined(__GLIBC__)
#include <malloc.h>

int pgbackd_malloc_trim(void) { return malloc_trim(0); }
int pgbackd_malloc_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
#else
int pgbackd_malloc_trim(void) { return 0; }
int pgbackd_malloc_mmap_threshold(int bytes) { (void)bytes; return 0; }
#endif
