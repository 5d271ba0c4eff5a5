/* The abstract interpreter: one forward pass over the instructions,
 * computing an fmc_aval per register over a box. See absint.h for the
 * domain and why it is sound; the comments here say which facts each rule
 * keeps and why they still hold. */
#include <stdlib.h>
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

static int64_t sat(__int128 v) {
    return fmc_sat128(v);
}

static bool fits(__int128 v, int64_t lim) {
    return v < lim && v > -lim;
}

static void set_const(aval *r, int64_t v) {
    memset(r, 0, sizeof *r);
    r->lo = r->hi = v;
    r->d = v;
    r->f = FMC_AF_ATT | FMC_AF_CON | FMC_AF_AFF;
    r->nconj = r->ndisj = FMC_NOCONS;
}

static void set_bool(aval *r, bool v) {
    set_const(r, v);
    r->f = FMC_AF_ATT | FMC_AF_CON;
    if (v) r->nconj = 0; /* the empty conjunction is true */
    else r->ndisj = 0;   /* the empty disjunction is false */
}

static void set_range(aval *r, int64_t lo, int64_t hi, uint8_t f, uint8_t deps) {
    memset(r, 0, sizeof *r);
    r->lo = lo;
    r->hi = hi;
    r->f = f & (FMC_AF_ATT | FMC_AF_CON);
    r->deps = deps;
    r->nconj = r->ndisj = FMC_NOCONS;
    if (lo == hi) set_const(r, lo);
}

static bool is_single(const aval *x) {
    return x->lo == x->hi;
}

static uint8_t affine_deps(const ctx *C, __int128 a, __int128 c) {
    return (uint8_t)((a != 0 && C->Lq > 1 ? FMC_DEP_Q : 0) | (c != 0 && C->Lk > 1 ? FMC_DEP_KV : 0));
}

/* Range of a*q + c*kv + d over the box (its corners). */
static void affine_range(const ctx *C, __int128 a, __int128 c, __int128 d, __int128 *lo,
                         __int128 *hi) {
    __int128 qa = a * C->box->q0, qb = a * C->box->q1, ka = c * C->box->k0, kb = c * C->box->k1;
    *lo = (qa < qb ? qa : qb) + (ka < kb ? ka : kb) + d;
    *hi = (qa > qb ? qa : qb) + (ka > kb ? ka : kb) + d;
}

/* Whether a*q + c*kv takes every integer between its extremes (design
 * note: a unit coefficient whose index spans at least the other one). */
static bool affine_contiguous(const ctx *C, int64_t a, int64_t c) {
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
static bool set_affine(const ctx *C, aval *r, __int128 a, __int128 c, __int128 d) {
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

static bool separable(const aval *x, const aval *y) {
    return (x->deps & y->deps) == 0;
}

/* Facts kept by a combination f(x, y) that is monotone in each argument
 * (so its extremes are at corners of the two ranges): attained when both
 * are attained and they vary independently. */
static uint8_t corner_flags(const aval *x, const aval *y) {
    if (is_single(x)) return y->f & FMC_AF_ATT;
    if (is_single(y)) return x->f & FMC_AF_ATT;
    return separable(x, y) && (x->f & y->f & FMC_AF_ATT) ? FMC_AF_ATT : 0;
}

/* ---- constraint pool ------------------------------------------------------- */

static uint32_t pool_put(fmc_absint *A, const fmc_cons *cs, size_t n) {
    if (A->npool + n > A->poolcap) {
        size_t ncap = A->poolcap ? A->poolcap * 2 : 256;
        while (ncap < A->npool + n) ncap *= 2;
        fmc_cons *np = realloc(A->pool, ncap * sizeof *np);
        if (!np) {
            A->oom = true;
            return UINT32_MAX;
        }
        A->pool = np;
        A->poolcap = ncap;
    }
    uint32_t off = (uint32_t)A->npool;
    for (size_t i = 0; i < n; i++) A->pool[A->npool++] = cs[i];
    return off;
}

static fmc_cons negate(fmc_cons c) {
    fmc_cons r = {-c.a, -c.c, -c.d + 1};
    return r;
}

/* Stores a form (conjunction or disjunction) of n constraints. */
static void set_form(fmc_absint *A, uint32_t *off, uint8_t *cnt, const fmc_cons *cs, size_t n) {
    if (n > MAXC) {
        *cnt = FMC_NOCONS;
        return;
    }
    uint32_t o = pool_put(A, cs, n);
    if (o == UINT32_MAX) {
        *cnt = FMC_NOCONS;
        return;
    }
    *off = o;
    *cnt = (uint8_t)n;
}

/* ---- bools -------------------------------------------------------------------- */

static fmc_abs_class cls(const aval *x) {
    return x->lo == x->hi ? (x->lo ? FMC_ABS_TRUE : FMC_ABS_FALSE) : FMC_ABS_MIXED;
}

static void set_mixed(aval *r, bool exact, uint8_t deps) {
    memset(r, 0, sizeof *r);
    r->lo = 0;
    r->hi = 1;
    r->f = exact ? FMC_AF_ATT | FMC_AF_CON : 0;
    r->deps = deps;
    r->nconj = r->ndisj = FMC_NOCONS;
}

static void a_not(fmc_absint *A, aval *r, const aval *x) {
    if (cls(x) != FMC_ABS_MIXED) {
        set_bool(r, !x->lo);
        return;
    }
    set_mixed(r, x->f & FMC_AF_ATT, x->deps);
    fmc_cons tmp[MAXC];
    if (x->ndisj != FMC_NOCONS) {
        for (size_t i = 0; i < x->ndisj; i++) tmp[i] = negate(A->pool[x->disj + i]);
        set_form(A, &r->conj, &r->nconj, tmp, x->ndisj);
    }
    if (x->nconj != FMC_NOCONS) {
        for (size_t i = 0; i < x->nconj; i++) tmp[i] = negate(A->pool[x->conj + i]);
        set_form(A, &r->disj, &r->ndisj, tmp, x->nconj);
    }
}

/* x && y (or, with dual, x || y expressed through negations). */
static void a_and(const ctx *C, aval *r, const aval *x, const aval *y) {
    fmc_absint *A = C->A;
    fmc_abs_class cx = cls(x), cy = cls(y);
    if (cx == FMC_ABS_FALSE || cy == FMC_ABS_FALSE) {
        set_bool(r, false);
        return;
    }
    if (cx == FMC_ABS_TRUE) {
        *r = *y;
        return;
    }
    if (cy == FMC_ABS_TRUE) {
        *r = *x;
        return;
    }
    bool ex = x->f & FMC_AF_ATT, ey = y->f & FMC_AF_ATT;
    uint8_t deps = x->deps | y->deps;
    bool exact = ex && ey && separable(x, y);
    fmc_cons tmp[2 * MAXC];
    size_t n = 0;
    bool have = x->nconj != FMC_NOCONS && y->nconj != FMC_NOCONS && x->nconj + y->nconj <= MAXC;
    if (have) {
        for (size_t i = 0; i < x->nconj; i++) tmp[n++] = A->pool[x->conj + i];
        for (size_t i = 0; i < y->nconj; i++) tmp[n++] = A->pool[y->conj + i];
        int f = fmc_feasible(tmp, n, C->box);
        if (f == 0) {
            set_bool(r, false);
            return;
        }
        /* A point with both true exists; one with the result false exists
         * when either operand is proven mixed. */
        if (f == 1 && (ex || ey)) exact = true;
    }
    set_mixed(r, exact, deps);
    if (have) set_form(A, &r->conj, &r->nconj, tmp, n);
}

static void a_or(const ctx *C, aval *r, const aval *x, const aval *y) {
    aval nx, ny, t;
    a_not(C->A, &nx, x);
    a_not(C->A, &ny, y);
    a_and(C, &t, &nx, &ny);
    a_not(C->A, r, &t);
}

/* ---- comparisons ----------------------------------------------------------------- */

typedef enum { CMP_LT, CMP_LE, CMP_EQ, CMP_NE } cmp_op;

static void cmp_from_diff(const ctx *C, aval *r, cmp_op op, __int128 lo, __int128 hi,
                          bool lt_exact, bool eq_exact, uint8_t deps) {
    switch (op) {
    case CMP_LT:
        if (hi < 0) set_bool(r, true);
        else if (lo >= 0) set_bool(r, false);
        else set_mixed(r, lt_exact, deps);
        return;
    case CMP_LE:
        if (hi <= 0) set_bool(r, true);
        else if (lo > 0) set_bool(r, false);
        else set_mixed(r, lt_exact, deps);
        return;
    case CMP_EQ:
    case CMP_NE: {
        bool eq_true = lo == 0 && hi == 0, eq_false = lo > 0 || hi < 0;
        if (eq_true || eq_false) set_bool(r, (op == CMP_EQ) == eq_true);
        else set_mixed(r, eq_exact, deps);
        return;
    }
    }
}

static void a_cmp(const ctx *C, aval *r, cmp_op op, const aval *x, const aval *y, bool booleans) {
    fmc_absint *A = C->A;
    if (booleans) {
        /* b == true is b; b == false is !b. */
        const aval *d = is_single(y) ? y : is_single(x) ? x : NULL;
        const aval *o = d == y ? x : y;
        if (d) {
            bool keep = (d->lo != 0) == (op == CMP_EQ);
            if (keep) *r = *o;
            else a_not(A, r, o);
            return;
        }
    }
    if ((x->f & y->f & FMC_AF_AFF) && !booleans) {
        __int128 a = (__int128)x->a - y->a, c = (__int128)x->c - y->c, d = (__int128)x->d - y->d;
        if (fits(a, COEF_LIMIT) && fits(c, COEF_LIMIT) && fits(d, COEF_LIMIT)) {
            __int128 lo, hi;
            affine_range(C, a, c, d, &lo, &hi);
            uint8_t deps = affine_deps(C, a, c);
            fmc_cons e = {(int64_t)a, (int64_t)c, (int64_t)d};
            bool eq_exact = affine_contiguous(C, e.a, e.c);
            fmc_cons eqc[2] = {e, {-e.a, -e.c, -e.d}};
            if ((op == CMP_EQ || op == CMP_NE) && !eq_exact && lo <= 0 && hi >= 0 && lo < hi) {
                int f = fmc_feasible(eqc, 2, C->box);
                if (f == 0) {
                    set_bool(r, op == CMP_NE);
                    return;
                }
                eq_exact = f == 1;
            }
            cmp_from_diff(C, r, op, lo, hi, true, eq_exact, deps);
            if (cls(r) != FMC_ABS_MIXED) return;
            if (op == CMP_LT || op == CMP_LE) {
                fmc_cons k = e;
                if (op == CMP_LT) k.d += 1;
                set_form(A, &r->conj, &r->nconj, &k, 1);
                set_form(A, &r->disj, &r->ndisj, &k, 1);
            } else if (op == CMP_EQ) {
                set_form(A, &r->conj, &r->nconj, eqc, 2);
            } else {
                fmc_cons ne[2] = {negate(eqc[1]), negate(eqc[0])};
                set_form(A, &r->disj, &r->ndisj, ne, 2);
            }
            return;
        }
    }
    __int128 lo = (__int128)x->lo - y->hi, hi = (__int128)x->hi - y->lo;
    uint8_t deps = x->deps | y->deps;
    bool indep = is_single(x) || is_single(y) || separable(x, y);
    bool lt_exact = indep && (x->f & y->f & FMC_AF_ATT);
    bool eq_exact = false;
    if (indep) {
        if (x->f & y->f & FMC_AF_CON) eq_exact = true;
        else if (is_single(x) && (y->f & FMC_AF_ATT) && (x->lo == y->lo || x->lo == y->hi))
            eq_exact = true;
        else if (is_single(y) && (x->f & FMC_AF_ATT) && (y->lo == x->lo || y->lo == x->hi))
            eq_exact = true;
    }
    cmp_from_diff(C, r, op, lo, hi, lt_exact, eq_exact, deps);
}

/* ---- integer operations -------------------------------------------------------------- */

static bool a_addsub(const ctx *C, aval *r, const aval *x, const aval *y, bool sub) {
    __int128 lo = sub ? (__int128)x->lo - y->hi : (__int128)x->lo + y->lo;
    __int128 hi = sub ? (__int128)x->hi - y->lo : (__int128)x->hi + y->hi;
    if (x->f & y->f & FMC_AF_AFF) {
        __int128 s = sub ? -1 : 1;
        if (set_affine(C, r, (__int128)x->a + s * y->a, (__int128)x->c + s * y->c,
                       (__int128)x->d + s * y->d))
            return false; /* exact range in int64: no point overflows */
    }
    bool fault = lo < INT64_MIN || hi > INT64_MAX;
    uint8_t f;
    if (is_single(y)) f = x->f;
    else if (is_single(x)) f = y->f;
    else f = separable(x, y) ? (x->f & y->f) : 0;
    set_range(r, sat(lo), sat(hi), f, x->deps | y->deps);
    return fault;
}

static bool a_neg(const ctx *C, aval *r, const aval *x) {
    bool fault = x->lo == INT64_MIN;
    if ((x->f & FMC_AF_AFF) && set_affine(C, r, -(__int128)x->a, -(__int128)x->c, -(__int128)x->d))
        return fault;
    set_range(r, sat(-(__int128)x->hi), sat(-(__int128)x->lo), x->f, x->deps);
    return fault;
}

static bool a_mul(const ctx *C, aval *r, const aval *x, const aval *y) {
    if (is_single(x)) {
        const aval *t = x;
        x = y;
        y = t;
    }
    __int128 p[4] = {(__int128)x->lo * y->lo, (__int128)x->lo * y->hi, (__int128)x->hi * y->lo,
                     (__int128)x->hi * y->hi};
    __int128 lo = p[0], hi = p[0];
    for (int i = 1; i < 4; i++) {
        lo = p[i] < lo ? p[i] : lo;
        hi = p[i] > hi ? p[i] : hi;
    }
    bool fault = lo < INT64_MIN || hi > INT64_MAX;
    if (is_single(y)) {
        __int128 k = y->lo;
        if (k == 0) {
            set_const(r, 0);
            return false;
        }
        if ((x->f & FMC_AF_AFF) && !fault && set_affine(C, r, k * x->a, k * x->c, k * x->d))
            return false;
        uint8_t f = x->f & FMC_AF_ATT;
        if ((k == 1 || k == -1) && (x->f & FMC_AF_CON)) f |= FMC_AF_CON;
        set_range(r, sat(lo), sat(hi), f, x->deps);
        return fault;
    }
    set_range(r, sat(lo), sat(hi), corner_flags(x, y), x->deps | y->deps);
    return fault;
}

static __int128 fdiv128(__int128 n, __int128 d) {
    __int128 q = n / d;
    if ((n % d != 0) && ((n < 0) != (d < 0))) q--;
    return q;
}

/* Floor division over a divisor range that excludes 0: extremes at corners. */
static void div_corners(int64_t xl, int64_t xh, int64_t dl, int64_t dh, __int128 *lo,
                        __int128 *hi) {
    __int128 v[4] = {fdiv128(xl, dl), fdiv128(xl, dh), fdiv128(xh, dl), fdiv128(xh, dh)};
    *lo = *hi = v[0];
    for (int i = 1; i < 4; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

static bool a_div(const ctx *C, aval *r, const aval *x, const aval *y) {
    bool has_zero = y->lo <= 0 && y->hi >= 0;
    bool min_neg1 = x->lo == INT64_MIN && y->lo <= -1 && y->hi >= -1;
    if (is_single(y)) {
        int64_t k = y->lo;
        if (k == 0) {
            set_const(r, 0);
            return true;
        }
        if ((x->f & FMC_AF_AFF) && x->a % k == 0 && x->c % k == 0 && !min_neg1 &&
            set_affine(C, r, x->a / k, x->c / k, fdiv128(x->d, k)))
            return false;
        __int128 a = fdiv128(x->lo, k), b = fdiv128(x->hi, k);
        set_range(r, sat(a < b ? a : b), sat(a < b ? b : a), x->f, x->deps);
        return min_neg1;
    }
    __int128 lo = 0, hi = 0;
    bool first = true;
    if (y->lo < 0) {
        __int128 l, h;
        div_corners(x->lo, x->hi, y->lo, y->hi < -1 ? y->hi : -1, &l, &h);
        lo = l;
        hi = h;
        first = false;
    }
    if (y->hi > 0) {
        __int128 l, h;
        div_corners(x->lo, x->hi, y->lo > 1 ? y->lo : 1, y->hi, &l, &h);
        if (first || l < lo) lo = l;
        if (first || h > hi) hi = h;
    }
    if (has_zero) { /* the total version gives 0 for a zero divisor */
        if (lo > 0) lo = 0;
        if (hi < 0) hi = 0;
    }
    set_range(r, sat(lo), sat(hi), has_zero ? 0 : corner_flags(x, y), x->deps | y->deps);
    return has_zero || min_neg1;
}

static bool a_mod(const ctx *C, aval *r, const aval *x, const aval *y) {
    if (is_single(y)) {
        int64_t m = y->lo;
        if (m == 0) {
            set_const(r, 0);
            return true;
        }
        if (m == 1 || m == -1) {
            set_const(r, 0);
            return false;
        }
        __int128 pl = fdiv128(x->lo, m), ph = fdiv128(x->hi, m);
        if (pl == ph) { /* one period: a shift of x */
            __int128 s = pl * m;
            if ((x->f & FMC_AF_AFF) && set_affine(C, r, x->a, x->c, (__int128)x->d - s))
                return false;
            set_range(r, (int64_t)(x->lo - s), (int64_t)(x->hi - s), x->f, x->deps);
            return false;
        }
        int64_t lo = m > 0 ? 0 : m + 1, hi = m > 0 ? m - 1 : 0;
        uint8_t f = 0;
        int64_t am = m > 0 ? m : -m;
        if (x->f & FMC_AF_CON) {
            /* Crossing a multiple of m takes both ends of the period. */
            f = FMC_AF_ATT;
            if ((__int128)x->hi - x->lo + 1 >= am) f |= FMC_AF_CON;
        }
        set_range(r, lo, hi, f, x->deps);
        return false;
    }
    bool has_zero = y->lo <= 0 && y->hi >= 0;
    int64_t lo = y->lo < 0 ? y->lo + 1 : 0, hi = y->hi > 0 ? y->hi - 1 : 0;
    if (x->lo >= 0 && y->lo > 0 && x->hi < hi) hi = x->hi;
    if (x->hi <= 0 && y->hi < 0 && x->lo > lo) lo = x->lo;
    set_range(r, lo, hi, 0, x->deps | y->deps);
    return has_zero;
}

static void a_minmax(aval *r, const aval *x, const aval *y, bool is_max) {
    if (x->hi <= y->lo) {
        *r = is_max ? *y : *x;
        return;
    }
    if (y->hi <= x->lo) {
        *r = is_max ? *x : *y;
        return;
    }
    int64_t lo = is_max ? (x->lo > y->lo ? x->lo : y->lo) : (x->lo < y->lo ? x->lo : y->lo);
    int64_t hi = is_max ? (x->hi > y->hi ? x->hi : y->hi) : (x->hi < y->hi ? x->hi : y->hi);
    uint8_t f = separable(x, y) ? (x->f & y->f & (FMC_AF_ATT | FMC_AF_CON)) : 0;
    set_range(r, lo, hi, f, x->deps | y->deps);
}

static bool a_abs(const ctx *C, aval *r, const aval *x) {
    if (x->lo >= 0) {
        *r = *x;
        return false;
    }
    if (x->hi <= 0) return a_neg(C, r, x);
    __int128 m = -(__int128)x->lo > x->hi ? -(__int128)x->lo : x->hi;
    set_range(r, 0, sat(m), (x->f & FMC_AF_CON) ? FMC_AF_ATT | FMC_AF_CON : 0, x->deps);
    return x->lo == INT64_MIN;
}

/* A read: index ranges clamped into the array (the total version). */
static bool a_load(const ctx *C, aval *r, const fmc_insn *x) {
    const fmc_absint *A = C->A;
    size_t slot = (size_t)x->imm;
    const int64_t *dims = A->env->input_dims[slot];
    int n = x->nargs;
    bool fault = false, empty = false;
    int64_t lo[FMD_MAX_RANK], hi[FMD_MAX_RANK];
    uint8_t deps = 0;
    for (int k = 0; k < n; k++) {
        const aval *ix = &A->v[x->args[k]];
        if (dims[k] <= 0) {
            empty = true;
            continue;
        }
        fault |= ix->lo < 0 || ix->hi >= dims[k];
        lo[k] = ix->lo < 0 ? 0 : ix->lo >= dims[k] ? dims[k] - 1 : ix->lo;
        hi[k] = ix->hi < 0 ? 0 : ix->hi >= dims[k] ? dims[k] - 1 : ix->hi;
        if (lo[k] < hi[k]) deps |= ix->deps;
    }
    if (empty) {
        set_const(r, 0);
        return true;
    }
    /* Rows of the last dimension that the read can touch. */
    __int128 nrows = 1;
    for (int k = 0; k + 1 < n; k++) nrows *= hi[k] - lo[k] + 1;
    int last = n - 1;
    int32_t mn, mx;
    if (nrows == 1) {
        int64_t row = 0;
        for (int k = 0; k + 1 < n; k++) row = row * dims[k] + lo[k];
        fmc_rtab_query(A->tabs, slot, row, lo[last], hi[last], &mn, &mx);
        const aval *il = &A->v[x->args[last]];
        uint8_t f = 0;
        if (il->f & FMC_AF_CON) {
            /* Every index in the clamped range is read, so the extremes are
             * taken; a step-monotone row then takes every value between. */
            f = FMC_AF_ATT;
            if (fmc_rtab_row_monotone(A->tabs, slot, row)) f |= FMC_AF_CON;
        }
        set_range(r, mn, mx, f, deps);
        return fault;
    }
    if (nrows <= LOAD_ROWS) {
        int64_t idx[FMD_MAX_RANK];
        for (int k = 0; k + 1 < n; k++) idx[k] = lo[k];
        int64_t gmn = INT64_MAX, gmx = INT64_MIN;
        for (;;) {
            int64_t row = 0;
            for (int k = 0; k + 1 < n; k++) row = row * dims[k] + idx[k];
            fmc_rtab_query(A->tabs, slot, row, lo[last], hi[last], &mn, &mx);
            gmn = mn < gmn ? mn : gmn;
            gmx = mx > gmx ? mx : gmx;
            int k = n - 2;
            while (k >= 0 && idx[k] == hi[k]) {
                idx[k] = lo[k];
                k--;
            }
            if (k < 0) break;
            idx[k]++;
        }
        set_range(r, gmn, gmx, 0, deps);
        return fault;
    }
    fmc_rtab_global(A->tabs, slot, &mn, &mx);
    set_range(r, mn, mx, 0, deps);
    return fault;
}

/* ---- safety under a guard -------------------------------------------------------------- */

/* Whether every point where guard g holds keeps cons-violation `bad`
 * (a conjunction) unsatisfiable: uses the guard's exact conjunctive form. */
static bool guard_excludes(const ctx *C, int32_t g, const fmc_cons *bad, size_t nbad) {
    const fmc_absint *A = C->A;
    fmc_cons tmp[MAXC + 2];
    size_t n = 0;
    if (g >= 0) {
        const aval *gv = &A->v[g];
        if (gv->nconj == FMC_NOCONS || gv->nconj + nbad > MAXC + 2) return false;
        for (size_t i = 0; i < gv->nconj; i++) tmp[n++] = A->pool[gv->conj + i];
    }
    for (size_t i = 0; i < nbad; i++) tmp[n++] = bad[i];
    return fmc_feasible(tmp, n, C->box) == 0;
}

/* Retries a possible fault of a read or a division where the guard is
 * undecided: the guard's constraints may exclude every bad point. */
static bool refine_fault(const ctx *C, const fmc_insn *x) {
    const fmc_absint *A = C->A;
    if (x->op == FMC_OP_LOAD) {
        const int64_t *dims = A->env->input_dims[x->imm];
        for (int k = 0; k < x->nargs; k++) {
            const aval *ix = &A->v[x->args[k]];
            if (ix->lo >= 0 && ix->hi < dims[k]) continue;
            /* A constant index keeps its value as d unbounded (set_const):
             * d + 1 and dim - d below must not overflow. */
            if (!(ix->f & FMC_AF_AFF) || !fits(ix->d, COEF_LIMIT) || dims[k] <= 0 ||
                dims[k] > COEF_LIMIT)
                return false;
            fmc_cons below = {ix->a, ix->c, (int64_t)ix->d + 1};       /* i <= -1 */
            fmc_cons above = {-ix->a, -ix->c, dims[k] - ix->d};       /* i >= dim */
            if (ix->lo < 0 && !guard_excludes(C, x->guard, &below, 1)) return false;
            if (ix->hi >= dims[k] && !guard_excludes(C, x->guard, &above, 1)) return false;
        }
        return true;
    }
    if (x->op == FMC_OP_DIV || x->op == FMC_OP_MOD) {
        const aval *n = &A->v[x->args[0]], *d = &A->v[x->args[1]];
        if (x->op == FMC_OP_DIV && n->lo == INT64_MIN && d->lo <= -1 && d->hi >= -1) return false;
        if (d->lo > 0 || d->hi < 0) return true;
        if (!(d->f & FMC_AF_AFF)) return false;
        fmc_cons zero[2] = {{d->a, d->c, d->d}, {-d->a, -d->c, -d->d}};
        return guard_excludes(C, x->guard, zero, 2);
    }
    return false;
}

/* ---- the pass ------------------------------------------------------------------------------ */

static void a_var(const ctx *C, aval *r, int64_t var) {
    const fmc_box *b = C->box;
    const fmc_env *e = C->A->env;
    switch ((fmd_builtin_var)var) {
    case FMD_VAR_Q: set_affine(C, r, 1, 0, 0); return;
    case FMD_VAR_KV: set_affine(C, r, 0, 1, 0); return;
    case FMD_VAR_B:
        set_range(r, b->b0, b->b1, FMC_AF_ATT | FMC_AF_CON, b->b0 < b->b1 ? FMC_DEP_B : 0);
        return;
    case FMD_VAR_H:
        set_range(r, b->h0, b->h1, FMC_AF_ATT | FMC_AF_CON, b->h0 < b->h1 ? FMC_DEP_H : 0);
        return;
    case FMD_VAR_Q_LEN: set_const(r, e->q_len); return;
    case FMD_VAR_KV_LEN: set_const(r, e->kv_len); return;
    case FMD_VAR_BATCH: set_const(r, e->batch); return;
    case FMD_VAR_HEADS: set_const(r, e->heads); return;
    default: set_const(r, 0); return;
    }
}

bool fmc_absint_init(fmc_absint *a, const fmc_program *p, const fmc_env *env,
                     const fmc_rtab *tabs) {
    memset(a, 0, sizeof *a);
    a->p = p;
    a->env = env;
    a->tabs = tabs;
    a->v = malloc((p->count + 1) * sizeof *a->v);
    return a->v != NULL;
}

void fmc_absint_free(fmc_absint *a) {
    free(a->v);
    free(a->pool);
    memset(a, 0, sizeof *a);
}

fmc_abs_class fmc_absint_class(const fmc_absint *a, int32_t r) {
    return cls(&a->v[r]);
}

fmc_abs_answer fmc_absint_eval(fmc_absint *A, const fmc_box *box, bool count) {
    const fmc_program *p = A->p;
    ctx C = {A, box, box->q1 - box->q0 + 1, box->k1 - box->k0 + 1};
    A->box = *box;
    A->npool = 0;
    A->unsafe = false;
    A->oom = false;
    for (size_t i = 0; i < p->count; i++) {
        const fmc_insn *x = &p->insns[i];
        aval *r = &A->v[i];
        fmc_abs_class g = x->guard >= 0 ? cls(&A->v[x->guard]) : FMC_ABS_TRUE;
        if (g == FMC_ABS_FALSE) {
            /* Not evaluated anywhere in the box: its value is never used. */
            if (x->type == FMD_TYPE_BOOL) set_bool(r, false);
            else set_const(r, 0);
            continue;
        }
        const aval *a0 = x->nargs > 0 && x->op != FMC_OP_VAR && x->op != FMC_OP_CONST &&
                                 x->op != FMC_OP_PARAM
                             ? &A->v[x->args[0]]
                             : NULL;
        const aval *a1 = a0 && x->nargs > 1 ? &A->v[x->args[1]] : NULL;
        bool fault = false;
        switch ((fmc_op)x->op) {
        case FMC_OP_CONST:
            if (x->type == FMD_TYPE_BOOL) set_bool(r, x->imm != 0);
            else set_const(r, x->imm);
            break;
        case FMC_OP_VAR: a_var(&C, r, x->imm); break;
        case FMC_OP_PARAM: set_const(r, A->env->params[x->imm]); break;
        case FMC_OP_NEG: fault = a_neg(&C, r, a0); break;
        case FMC_OP_ABS: fault = a_abs(&C, r, a0); break;
        case FMC_OP_ADD: fault = a_addsub(&C, r, a0, a1, false); break;
        case FMC_OP_SUB: fault = a_addsub(&C, r, a0, a1, true); break;
        case FMC_OP_MUL: fault = a_mul(&C, r, a0, a1); break;
        case FMC_OP_DIV: fault = a_div(&C, r, a0, a1); break;
        case FMC_OP_MOD: fault = a_mod(&C, r, a0, a1); break;
        case FMC_OP_MIN: a_minmax(r, a0, a1, false); break;
        case FMC_OP_MAX: a_minmax(r, a0, a1, true); break;
        case FMC_OP_EQ:
        case FMC_OP_NE:
        case FMC_OP_LT:
        case FMC_OP_LE: {
            cmp_op op = x->op == FMC_OP_EQ   ? CMP_EQ
                        : x->op == FMC_OP_NE ? CMP_NE
                        : x->op == FMC_OP_LT ? CMP_LT
                                             : CMP_LE;
            a_cmp(&C, r, op, a0, a1, p->insns[x->args[0]].type == FMD_TYPE_BOOL);
            break;
        }
        case FMC_OP_NOT: a_not(A, r, a0); break;
        case FMC_OP_AND: a_and(&C, r, a0, a1); break;
        case FMC_OP_OR: a_or(&C, r, a0, a1); break;
        case FMC_OP_SELECT: {
            const aval *c = a0, *t = a1, *e = &A->v[x->args[2]];
            fmc_abs_class cc = cls(c);
            if (cc == FMC_ABS_TRUE) *r = *t;
            else if (cc == FMC_ABS_FALSE) *r = *e;
            else if (x->type == FMD_TYPE_BOOL && is_single(t) && is_single(e)) {
                if (t->lo == e->lo) set_bool(r, t->lo != 0);
                else if (t->lo) *r = *c;
                else a_not(A, r, c);
            } else {
                set_range(r, t->lo < e->lo ? t->lo : e->lo, t->hi > e->hi ? t->hi : e->hi, 0,
                          c->deps | t->deps | e->deps);
            }
            break;
        }
        case FMC_OP_LOAD: fault = a_load(&C, r, x); break;
        default: set_const(r, 0); break;
        }
        if (fault && !refine_fault(&C, x)) A->unsafe = true;
    }
    fmc_abs_answer ans = {FMC_ABS_MIXED, false, !A->unsafe && !A->oom, -1};
    if (p->count == 0) {
        ans.cls = FMC_ABS_FALSE;
        return ans;
    }
    const aval *res = &A->v[p->result];
    ans.cls = cls(res);
    ans.exact = ans.cls != FMC_ABS_MIXED || (res->f & FMC_AF_ATT);
    if (count) {
        __int128 area = (__int128)C.Lq * C.Lk;
        if (ans.cls == FMC_ABS_TRUE) ans.ntrue = sat(area);
        else if (ans.cls == FMC_ABS_FALSE) ans.ntrue = 0;
        else if (res->nconj != FMC_NOCONS)
            ans.ntrue = fmc_count_feasible(A->pool + res->conj, res->nconj, box);
        else if (res->ndisj != FMC_NOCONS) {
            fmc_cons tmp[MAXC];
            for (size_t i = 0; i < res->ndisj; i++) tmp[i] = negate(A->pool[res->disj + i]);
            int64_t f = fmc_count_feasible(tmp, res->ndisj, box);
            ans.ntrue = f < 0 ? -1 : sat(area - f);
        }
        /* b and h ranges multiply the count; only single slices are counted. */
        if (box->b0 != box->b1 || box->h0 != box->h1) ans.ntrue = -1;
    }
    return ans;
}

/* ---- 32-bit arithmetic check --------------------------------------------------------------- */

bool fmc_program_fits_int32(const fmc_program *p, const fmc_env *env) {
    if (env->batch < 1 || env->heads < 1 || env->q_len < 1 || env->kv_len < 1) return false;
    fmc_rtab *t = fmc_rtab_build(p, env);
    if (!t) return false;
    fmc_absint A;
    bool ok = fmc_absint_init(&A, p, env, t);
    if (ok) {
        fmc_box box = {0, env->batch - 1, 0, env->heads - 1, 0, env->q_len - 1, 0, env->kv_len - 1};
        fmc_absint_eval(&A, &box, false);
        ok = !A.oom;
        for (size_t i = 0; ok && i < p->count; i++) {
            const fmc_insn *x = &p->insns[i];
            if (x->type != FMD_TYPE_INT) continue;
            if (x->guard >= 0 && cls(&A.v[x->guard]) == FMC_ABS_FALSE) continue;
            ok = A.v[i].lo >= INT32_MIN && A.v[i].hi <= INT32_MAX;
        }
        /* Shape values and params are stored as 32-bit values too. */
        ok = ok && env->q_len <= INT32_MAX && env->kv_len <= INT32_MAX &&
             env->batch <= INT32_MAX && env->heads <= INT32_MAX;
    }
    fmc_absint_free(&A);
    fmc_rtab_free(t);
    return ok;
}
