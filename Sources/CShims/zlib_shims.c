#include "zlib_shims.h"

int pgbackd_deflate_init2(z_stream *stream, int level, int window_bits, int mem_level, int strategy) {
    return deflateInit2(stream, level, Z_DEFLATED, window_bits, mem_level, strategy);
}

int pgbackd_inflate_init2(z_stream *stream, int window_bits) {
    return inflateInit2(stream, window_bits);
}
