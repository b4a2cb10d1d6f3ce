#ifndef TETHER_ZLIB_SHIM_H
#define TETHER_ZLIB_SHIM_H
#include <zlib.h>

// deflateInit/inflateInit are macros in zlib.h, which Swift cannot call; these wrap them.
static inline int tether_deflateInit(z_streamp stream, int level) {
    return deflateInit(stream, level);
}

static inline int tether_inflateInit(z_streamp stream) {
    return inflateInit(stream);
}
#endif
