#ifndef PGBACKD_ZLIB_SHIMS_H
#define PGBACKD_ZLIB_SHIMS_H
#include <zlib.h>

/// deflateInit2 and inflateInit2 are macros; Swift sees these functions instead.
int pgbackd_deflate_init2(z_stream *stream, int level, int window_bits, int mem_level, int strategy);
int pgbackd_inflate_init2(z_stream *stream, int window_bits);

#endif
