/* The language's integer arithmetic, shared by the folder, the
 * interpreters and the abstract interpreter. */
#ifndef FM_COMPILER_ARITH_H
#define FM_COMPILER_ARITH_H

#include <stdbool.h>
#include <stdint.h>

/* Floor division; the caller rules out d == 0 and INT64_MIN / -1. */
static inline int64_t fmc_floordiv(int64_t n, int64_t d) {
    int64_t q = n / d;
    if ((n % d != 0) && ((n < 0) != (d < 0))) q--;
    return q;
}

/* Remainder with the sign of the divisor; the caller rules out d == 0.
 * x % -1 is 0 for every x (INT64_MIN % -1 is undefined in C, so it is
 * handled here). */
static inline int64_t fmc_floormod(int64_t n, int64_t d) {
    if (d == -1) return 0;
    int64_t r = n % d;
    if (r != 0 && ((r < 0) != (d < 0))) r += d;
    return r;
}

static inline int64_t fmc_sat128(__int128 v) {
    if (v > INT64_MAX) return INT64_MAX;
    if (v < INT64_MIN) return INT64_MIN;
    return (int64_t)v;
}

#endif
