/* The compressor's share of the logical backup's CPU floor: libdeflate gzip members of BLOCK
 * bytes at LEVEL over FILE (the raw `pg_dump -Fc -Z0` output), on one thread, as pgbackd's
 * ParallelGzipEncoder compresses them (libdeflate_gzip_compress per block; the block's CRC is
 * libdeflate's own). Only the compression calls are timed (CLOCK_THREAD_CPUTIME_ID), not the
 * reads of FILE.
 *
 *   cc -O2 -o deflate-floor bench/backup/deflate-floor.c -ldeflate
 *   ./deflate-floor LEVEL BLOCK FILE        prints "cpu_s raw_bytes compressed_bytes"
 */
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s LEVEL BLOCK FILE\n", argv[0]);
        return 2;
    }
    int level = atoi(argv[1]);
    size_t block = (size_t)strtoull(argv[2], NULL, 10);
    FILE *in = fopen(argv[3], "rb");
    if (!in) { perror(argv[3]); return 1; }
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (!c) { fprintf(stderr, "libdeflate_alloc_compressor(%d) failed\n", level); return 1; }
    size_t bound = libdeflate_gzip_compress_bound(c, block);
    unsigned char *raw = malloc(block), *out = malloc(bound);
    if (!raw || !out) { fprintf(stderr, "out of memory\n"); return 1; }
    double cpu = 0;
    unsigned long long raw_bytes = 0, compressed = 0;
    size_t n;
    while ((n = fread(raw, 1, block, in)) > 0) {
        double start = thread_cpu();
        size_t m = libdeflate_gzip_compress(c, raw, n, out, bound);
        cpu += thread_cpu() - start;
        if (m == 0) { fprintf(stderr, "libdeflate_gzip_compress failed\n"); return 1; }
        raw_bytes += n;
        compressed += m;
    }
    printf("%.2f %llu %llu\n", cpu, raw_bytes, compressed);
    libdeflate_free_compressor(c);
    return 0;
}
