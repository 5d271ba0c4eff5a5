/* The language's integer division and remainder (floor division, as in
 * Python: -7 / 2 == -4, -7 % 2 == 1): the one definition the folder, the
 * evaluators and the abstract interpreter share. The CUDA code generator
 * emits the same rule as text (compiler/codegen_cuda.c), and the tests run
 * both on the same operands. */
#ifndef FM_DSL_ARITH_H
#define FM_DSL_ARITH_H

#include <stdint.h>

/* Floor division in type T; the caller rules out d == 0 and MIN / -1. */
#define FMD_DEFINE_FLOORDIV(name, T)                                                              \
    static inline T name(T n, T d) {                                                               \
        T q = n / d;                                                                               \
        if (n % d != 0 && ((n < 0) != (d < 0))) q--;                                               \
        return q;                                                                                  \
    }
FMD_DEFINE_FLOORDIV(fmd_floordiv, int64_t)
/* The abstract interpreter's bounds, which may leave int64. */
FMD_DEFINE_FLOORDIV(fmd_floordiv128, __int128)
#undef FMD_DEFINE_FLOORDIV

/* Remainder with the sign of the divisor; the caller rules out d == 0.
 * x % -1 is 0 for every x (INT64_MIN % -1 is undefined in C). */
static inline int64_t fmd_floormod(int64_t n, int64_t d) {
    if (d == -1) return 0;
    int64_t r = n % d;
    if (r != 0 && ((r < 0) != (d < 0))) r += d;
    return r;
}

#endif
