#include "malloc_shims.h"

// Before the test below: __GLIBC__ comes from <features.h>, which only a C library header brings
// in. Without one, as until issue #17, the test was always false and even malloc_trim was a no-op.
#include <stdlib.h>

#if defined(__GLIBC__)
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pgbackd_malloc_trim(void) { return malloc_trim(0); }

static int pgbackd_malloc_defaults_applied = 0;

/* Runs when the binary is loaded: before main, the Swift runtime and any thread, which is when
 * glibc still honours M_ARENA_MAX (it fixes its arena limit when the first extra arena is made;
 * set later, from Swift code, it left 13 arenas: docs/decisions.md). Every pgbackd command gets
 * it, not only the daemon. A setting the operator chose in the environment wins: each of
 * MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ leaves its own setting to
 * glibc, and GLIBC_TUNABLES (which may set any of them) leaves all three. */
__attribute__((constructor)) static void pgbackd_malloc_defaults(void) {
    if (getenv("GLIBC_TUNABLES")) return;
    int applied = 1;
    if (!getenv("MALLOC_ARENA_MAX")) applied &= mallopt(M_ARENA_MAX, PGBACKD_MALLOC_ARENA_MAX) == 1; else applied = 0;
    if (!getenv("MALLOC_MMAP_THRESHOLD_")) applied &= mallopt(M_MMAP_THRESHOLD, PGBACKD_MALLOC_MMAP_THRESHOLD) == 1; else applied = 0;
    if (!getenv("MALLOC_TRIM_THRESHOLD_")) applied &= mallopt(M_TRIM_THRESHOLD, PGBACKD_MALLOC_TRIM_THRESHOLD) == 1; else applied = 0;
    pgbackd_malloc_defaults_applied = applied;
}

int pgbackd_malloc_defaults_were_applied(void) { return pgbackd_malloc_defaults_applied; }

int pgbackd_malloc_arena_count(void) {
    char *text = NULL;
    size_t length = 0;
    FILE *stream = open_memstream(&text, &length);
    if (stream == NULL) return -1;
    int status = malloc_info(0, stream);
    fclose(stream);
    int count = 0;
    for (const char *at = text; status == 0 && at != NULL && (at = strstr(at, "<heap nr=")) != NULL; at++) count++;
    free(text);
    return status == 0 ? count : -1;
}
#else
int pgbackd_malloc_trim(void) { return 0; }
int pgbackd_malloc_defaults_were_applied(void) { return 0; }
int pgbackd_malloc_arena_count(void) { return -1; }
#endif
