/* The language's integer arithmetic, shared by the folder, the
 * interpreters and the abstract interpreter. */
#ifndef FM_COMPILER_ARITH_H
#define FM_COMPILER_ARITH_H

#include <stdbool.h>
#include <stdint.h>

/* Floor division and remainder: fmd_floordiv, fmd_floormod (one rule,
 * shared with the front end's folder). */
#include "dsl/arith.h"

static inline int64_t fmc_sat128(__int128 v) {
    if (v > INT64_MAX) return INT64_MAX;
    if (v < INT64_MIN) return INT64_MIN;
    return (int64_t)v;
}

#endif
