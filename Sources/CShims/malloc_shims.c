#include "malloc_shims.h"

#if defined(__GLIBC__)
#include <malloc.h>

int pgbackd_malloc_limit_arenas(int count) { return mallopt(M_ARENA_MAX, count); }
int pgbackd_malloc_trim(void) { return malloc_trim(0); }
#else
int pgbackd_malloc_limit_arenas(int count) { (void)count; return 0; }
int pgbackd_malloc_trim(void) { return 0; }
#endif
