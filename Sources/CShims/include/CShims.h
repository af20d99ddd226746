#ifndef PGBACKD_CSHIMS_H
#define PGBACKD_CSHIMS_H
#include "zlib_shims.h"
#include "curl_shims.h"
#include "malloc_shims.h"
#endif
