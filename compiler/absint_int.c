/* Abstract integer operations over a box: ranges with the facts that make
 * comparisons exact (attained, contiguous, affine, dependence), computed
 * for the total versions of the operations (saturating, 0 for a zero
 * divisor, indices clamped), plus whether the real operation could break a
 * safety rule somewhere in the box. */
#include "compiler/absint_internal.h"

/* ---- integer operations -------------------------------------------------------------- */

bool fmc_ab_addsub(const ctx *C, aval *r, const aval *x, const aval *y, bool sub) {
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

bool fmc_ab_neg(const ctx *C, aval *r, const aval *x) {
    bool fault = x->lo == INT64_MIN;
    if ((x->f & FMC_AF_AFF) && set_affine(C, r, -(__int128)x->a, -(__int128)x->c, -(__int128)x->d))
        return fault;
    set_range(r, sat(-(__int128)x->hi), sat(-(__int128)x->lo), x->f, x->deps);
    return fault;
}

bool fmc_ab_mul(const ctx *C, aval *r, const aval *x, const aval *y) {
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

/* Floor division over a divisor range that excludes 0: extremes at corners. */
static void div_corners(int64_t xl, int64_t xh, int64_t dl, int64_t dh, __int128 *lo,
                        __int128 *hi) {
    __int128 v[4] = {fmd_floordiv128(xl, dl), fmd_floordiv128(xl, dh), fmd_floordiv128(xh, dl),
                     fmd_floordiv128(xh, dh)};
    *lo = *hi = v[0];
    for (int i = 1; i < 4; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

bool fmc_ab_div(const ctx *C, aval *r, const aval *x, const aval *y) {
    bool has_zero = y->lo <= 0 && y->hi >= 0;
    bool min_neg1 = x->lo == INT64_MIN && y->lo <= -1 && y->hi >= -1;
    if (is_single(y)) {
        int64_t k = y->lo;
        if (k == 0) {
            set_const(r, 0);
            return true;
        }
        if ((x->f & FMC_AF_AFF) && x->a % k == 0 && x->c % k == 0 && !min_neg1 &&
            set_affine(C, r, x->a / k, x->c / k, fmd_floordiv128(x->d, k)))
            return false;
        __int128 a = fmd_floordiv128(x->lo, k), b = fmd_floordiv128(x->hi, k);
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

bool fmc_ab_mod(const ctx *C, aval *r, const aval *x, const aval *y) {
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
        __int128 pl = fmd_floordiv128(x->lo, m), ph = fmd_floordiv128(x->hi, m);
        if (pl == ph) { /* one period: a shift of x */
            __int128 s = pl * m;
            if ((x->f & FMC_AF_AFF) && set_affine(C, r, x->a, x->c, (__int128)x->d - s))
                return false;
            set_range(r, (int64_t)(x->lo - s), (int64_t)(x->hi - s), x->f, x->deps);
            return false;
        }
        int64_t lo = m > 0 ? 0 : m + 1, hi = m > 0 ? m - 1 : 0;
        uint8_t f = 0;
        __int128 am = m > 0 ? (__int128)m : -(__int128)m; /* m may be INT64_MIN */
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

void fmc_ab_minmax(aval *r, const aval *x, const aval *y, bool is_max) {
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

bool fmc_ab_abs(const ctx *C, aval *r, const aval *x) {
    if (x->lo >= 0) {
        *r = *x;
        return false;
    }
    if (x->hi <= 0) return fmc_ab_neg(C, r, x);
    __int128 m = -(__int128)x->lo > x->hi ? -(__int128)x->lo : x->hi;
    set_range(r, 0, sat(m), (x->f & FMC_AF_CON) ? FMC_AF_ATT | FMC_AF_CON : 0, x->deps);
    return x->lo == INT64_MIN;
}

/* A read: index ranges clamped into the array (the total version). */
bool fmc_ab_load(const ctx *C, aval *r, const fmc_insn *x) {
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


void fmc_ab_var(const ctx *C, aval *r, int64_t var) {
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

