/* Shared by the abstract interpreter's two files: the evaluation context
 * and the small operations on abstract values (absint.c: booleans,
 * comparisons, guards and the pass; absint_int.c: integer operations and
 * reads). See absint.h for the domain. */
#ifndef FM_COMPILER_ABSINT_INTERNAL_H
#define FM_COMPILER_ABSINT_INTERNAL_H

#include <string.h>

#include "compiler/absint.h"
#include "compiler/arith.h"

#define MAXC 6                       /* constraints kept per form */
#define COEF_LIMIT ((int64_t)1 << 61) /* affine coefficients stay small enough for int128 */
#define LOAD_ROWS 64                 /* rows of a multi-dimensional read looked up one by one */

typedef fmc_aval aval;

typedef struct ctx {
    fmc_absint *A;
    const fmc_box *box;
    int64_t Lq, Lk;
} ctx;

static inline int64_t sat(__int128 v) {
    return fmc_sat128(v);
}

static inline bool fits(__int128 v, int64_t lim) {
    return v < lim && v > -lim;
}

static inline void set_const(aval *r, int64_t v) {
    memset(r, 0, sizeof *r);
    r->lo = r->hi = v;
    r->d = v;
    r->f = FMC_AF_ATT | FMC_AF_CON | FMC_AF_AFF;
    r->nconj = r->ndisj = FMC_NOCONS;
}

static inline void set_bool(aval *r, bool v) {
    set_const(r, v);
    r->f = FMC_AF_ATT | FMC_AF_CON;
    if (v) r->nconj = 0; /* the empty conjunction is true */
    else r->ndisj = 0;   /* the empty disjunction is false */
}

static inline void set_range(aval *r, int64_t lo, int64_t hi, uint8_t f, uint8_t deps) {
    memset(r, 0, sizeof *r);
    r->lo = lo;
    r->hi = hi;
    r->f = f & (FMC_AF_ATT | FMC_AF_CON);
    r->deps = deps;
    r->nconj = r->ndisj = FMC_NOCONS;
    if (lo == hi) set_const(r, lo);
}

static inline bool is_single(const aval *x) {
    return x->lo == x->hi;
}

static inline uint8_t affine_deps(const ctx *C, __int128 a, __int128 c) {
    return (uint8_t)((a != 0 && C->Lq > 1 ? FMC_DEP_Q : 0) | (c != 0 && C->Lk > 1 ? FMC_DEP_KV : 0));
}

/* Range of a*q + c*kv + d over the box (its corners). */
static inline void affine_range(const ctx *C, __int128 a, __int128 c, __int128 d, __int128 *lo,
                         __int128 *hi) {
    __int128 qa = a * C->box->q0, qb = a * C->box->q1, ka = c * C->box->k0, kb = c * C->box->k1;
    *lo = (qa < qb ? qa : qb) + (ka < kb ? ka : kb) + d;
    *hi = (qa > qb ? qa : qb) + (ka > kb ? ka : kb) + d;
}

/* Whether a*q + c*kv takes every integer between its extremes (design
 * note: a unit coefficient whose index spans at least the other one). */
static inline bool affine_contiguous(const ctx *C, int64_t a, int64_t c) {
    int64_t ae = C->Lq > 1 ? a : 0, ce = C->Lk > 1 ? c : 0;
    if (ae == 0 && ce == 0) return true;
    if (ae == 0) return ce == 1 || ce == -1;
    if (ce == 0) return ae == 1 || ae == -1;
    if ((ce == 1 || ce == -1) && C->Lk >= (ae < 0 ? -ae : ae)) return true;
    if ((ae == 1 || ae == -1) && C->Lq >= (ce < 0 ? -ce : ce)) return true;
    return false;
}

/* Makes r the exact affine value a*q + c*kv + d when it fits; false
 * (r untouched) otherwise. */
static inline bool set_affine(const ctx *C, aval *r, __int128 a, __int128 c, __int128 d) {
    if (!fits(a, COEF_LIMIT) || !fits(c, COEF_LIMIT) || !fits(d, COEF_LIMIT)) return false;
    __int128 lo, hi;
    affine_range(C, a, c, d, &lo, &hi);
    if (lo < INT64_MIN || hi > INT64_MAX) return false;
    memset(r, 0, sizeof *r);
    r->lo = (int64_t)lo;
    r->hi = (int64_t)hi;
    r->a = (int64_t)a;
    r->c = (int64_t)c;
    r->d = (int64_t)d;
    r->f = FMC_AF_ATT | FMC_AF_AFF;
    if (affine_contiguous(C, r->a, r->c)) r->f |= FMC_AF_CON;
    r->deps = affine_deps(C, a, c);
    r->nconj = r->ndisj = FMC_NOCONS;
    if (lo == hi) set_const(r, r->lo);
    return true;
}

static inline bool separable(const aval *x, const aval *y) {
    return (x->deps & y->deps) == 0;
}

/* Facts kept by a combination f(x, y) that is monotone in each argument
 * (so its extremes are at corners of the two ranges): attained when both
 * are attained and they vary independently. */
static inline uint8_t corner_flags(const aval *x, const aval *y) {
    if (is_single(x)) return y->f & FMC_AF_ATT;
    if (is_single(y)) return x->f & FMC_AF_ATT;
    return separable(x, y) && (x->f & y->f & FMC_AF_ATT) ? FMC_AF_ATT : 0;
}

/* Integer operations over the box (absint_int.c). Those returning bool
 * return whether some point of the box could break a safety rule. */
bool fmc_ab_addsub(const ctx *C, aval *r, const aval *x, const aval *y, bool sub);
bool fmc_ab_neg(const ctx *C, aval *r, const aval *x);
bool fmc_ab_mul(const ctx *C, aval *r, const aval *x, const aval *y);
bool fmc_ab_div(const ctx *C, aval *r, const aval *x, const aval *y);
bool fmc_ab_mod(const ctx *C, aval *r, const aval *x, const aval *y);
void fmc_ab_minmax(aval *r, const aval *x, const aval *y, bool is_max);
bool fmc_ab_abs(const ctx *C, aval *r, const aval *x);
bool fmc_ab_load(const ctx *C, aval *r, const fmc_insn *x);
void fmc_ab_var(const ctx *C, aval *r, int64_t var);

#endif
