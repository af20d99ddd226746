#include "malloc_shims.h"

#if defined(__GLIBC__)
#include <malloc.h>

int pgbackd_malloc_trim(void) { return malloc_trim(0); }
#else
int pgbackd_malloc_trim(void) { return 0; }
#endif
