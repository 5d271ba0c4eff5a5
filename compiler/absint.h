/* Abstract interpretation of a lowered mask over a box of points.
 *
 * The box fixes ranges of b, h, q and kv. Every register gets an abstract
 * value: an int range [lo, hi] with facts (attained: lo and hi are taken;
 * contiguous: every value between is taken; an exact affine form
 * a*q + c*kv + d; which box dimensions it depends on), and every bool one
 * of all-true / all-false / mixed, where mixed may be proven ("exact": a
 * true and a false point exist). A bool may also carry an exact
 * conjunctive or disjunctive form of affine constraints, which decides
 * combinations of two undecided comparisons by a small integer
 * feasibility check.
 *
 * Soundness argument, in short: the result of the IR at a point never
 * depends on the value of an instruction the spec does not evaluate there
 * (short-circuit operators discard it). So the analysis may give such an
 * instruction any value; it uses a total version of every operation
 * (saturating arithmetic, a zero divisor giving 0, indices clamped into
 * the array), which makes every register a plain function over the whole
 * box, and checks the safety rules only where the guard can be true. An
 * instruction whose guard is all-false over the box is not evaluated in it.
 * The property test against brute force (tests/test_blockmask.c) checks it. */
#ifndef FM_COMPILER_ABSINT_H
#define FM_COMPILER_ABSINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler/ir.h"

typedef struct fmc_box {
    int64_t b0, b1, h0, h1, q0, q1, k0, k1; /* inclusive, non-empty */
} fmc_box;

/* Per-input min/max tables (built once per build): per-block minima and
 * maxima with a sparse table over the blocks, per row of the last
 * dimension, plus whether each row is "step-monotone" (consecutive values
 * differ by 0 or +1, or by 0 or -1), which makes a read over a contiguous
 * index range take every value between its min and max. */
typedef struct fmc_rtab fmc_rtab;
fmc_rtab *fmc_rtab_build(const fmc_program *p, const fmc_env *env);
void fmc_rtab_free(fmc_rtab *t);
/* Min and max of input slot's row over [lo, hi] (clamped, lo <= hi). */
void fmc_rtab_query(const fmc_rtab *t, size_t slot, int64_t row, int64_t lo, int64_t hi,
                    int32_t *mn, int32_t *mx);
bool fmc_rtab_row_monotone(const fmc_rtab *t, size_t slot, int64_t row);
void fmc_rtab_global(const fmc_rtab *t, size_t slot, int32_t *mn, int32_t *mx);

/* A constraint a*q + c*kv + d <= 0. */
typedef struct fmc_cons {
    int64_t a, c, d;
} fmc_cons;

#define FMC_NOCONS 0xFF

typedef struct fmc_aval {
    int64_t lo, hi; /* bools: [0,0] all false, [1,1] all true, [0,1] mixed */
    int64_t a, c, d;
    uint32_t conj, disj;  /* offsets in the constraint pool */
    uint8_t nconj, ndisj; /* FMC_NOCONS: no such form */
    uint8_t f;            /* FMC_AF_* */
    uint8_t deps;         /* FMC_DEP_* */
} fmc_aval;

enum { FMC_AF_ATT = 1, FMC_AF_CON = 2, FMC_AF_AFF = 4 };
enum { FMC_DEP_B = 1, FMC_DEP_H = 2, FMC_DEP_Q = 4, FMC_DEP_KV = 8 };

typedef enum fmc_abs_class { FMC_ABS_FALSE, FMC_ABS_TRUE, FMC_ABS_MIXED } fmc_abs_class;

typedef struct fmc_abs_answer {
    fmc_abs_class cls;
    bool exact;     /* MIXED is proven (a true and a false point exist) */
    bool safe;      /* no evaluated point of the box can break a safety rule */
    int64_t ntrue;  /* true positions in the box when asked for and known, else -1 */
} fmc_abs_answer;

typedef struct fmc_absint {
    const fmc_program *p;
    const fmc_env *env;
    const fmc_rtab *tabs;
    fmc_aval *v; /* p->count values */
    fmc_cons *pool;
    size_t npool, poolcap;
    bool oom;
    /* set by fmc_absint_eval */
    fmc_box box;
    bool unsafe;
} fmc_absint;

bool fmc_absint_init(fmc_absint *a, const fmc_program *p, const fmc_env *env,
                     const fmc_rtab *tabs);
void fmc_absint_free(fmc_absint *a);
/* Evaluates the program over box; with count, also counts the true
 * positions where a cheap exact count exists. */
fmc_abs_answer fmc_absint_eval(fmc_absint *a, const fmc_box *box, bool count);
/* Class of register r after an eval. */
fmc_abs_class fmc_absint_class(const fmc_absint *a, int32_t r);

/* Whether some integer point of box satisfies every constraint:
 * 1 yes, 0 no, -1 not decided (too large to scan). */
int fmc_feasible(const fmc_cons *cs, size_t n, const fmc_box *box);
/* Number of points of box satisfying every constraint, or -1 when too
 * large to count. */
int64_t fmc_count_feasible(const fmc_cons *cs, size_t n, const fmc_box *box);

#endif
