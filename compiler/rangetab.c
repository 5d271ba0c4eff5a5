/* Range tables of input arrays: min and max over any index range of a row
 * (the last dimension), built in one pass per build.
 *
 * Every row keeps the min and max of each block of RT_BLOCK_BYTES bytes of
 * the array (32 int32 or 128 uint8 elements: the raw part of a query then
 * scans the same few cache lines whatever the width, and a byte array's
 * tables stay a sixteenth of it rather than a quarter). Above
 * the blocks, a one-row array (a 1-D input: document ids, tree tables) gets
 * a sparse table over its blocks, so any range costs O(block); a
 * many-row array (a dense 2-D or 4-D mask) gets only one more level, the
 * min and max of each RT_SUPER blocks, because a sparse table per row would
 * cost twice the array itself (log2 of the row's block count levels of two
 * int32 per block) while a query then scans at most 2 * RT_SUPER blocks
 * plus a row's length / (block * RT_SUPER) superblocks. */
/* The build reads every element of the inputs once; a dense import's
 * array is hundreds of MiB, so its byte loops below must vectorise, which
 * GCC's -O2 does only for loops that need no epilogue. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <stdlib.h>
#include <string.h>

#include "compiler/absint.h"

#define RT_BLOCK_BYTES 128
#define RT_SUPER 32

typedef struct rt_input {
    const int32_t *data; /* an int32 input's array, or */
    const uint8_t *bytes; /* a byte input's */
    int64_t blk;      /* elements per block */
    int64_t rows, len;
    int64_t nb;       /* blocks per row */
    int levels;       /* one-row arrays: sparse table levels over blocks; else 1 */
    int64_t ns;       /* many-row arrays: superblocks per row; else 0 */
    int32_t *mn, *mx; /* blocks: [row][level][nb] */
    int32_t *smn, *smx; /* superblocks: [row][ns] */
    uint8_t *mono;    /* per row */
    int32_t gmin, gmax;
} rt_input;

struct fmc_rtab {
    size_t n;
    rt_input *in;
};

void fmc_rtab_free(fmc_rtab *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->in[i].mn);
        free(t->in[i].mx);
        free(t->in[i].smn);
        free(t->in[i].smx);
        free(t->in[i].mono);
    }
    free(t->in);
    free(t);
}

/* Min and max of x[lo..hi] folded into *a, *b (an empty range leaves them). */
static inline void scan(const int32_t *mn, const int32_t *mx, int64_t lo, int64_t hi, int32_t *a,
                        int32_t *b) {
    for (int64_t i = lo; i <= hi; i++) {
        *a = mn[i] < *a ? mn[i] : *a;
        *b = mx[i] > *b ? mx[i] : *b;
    }
}

/* Min and max of the array's row `row` over [lo..hi] folded into *a, *b. */
static void scan_raw(const rt_input *r, int64_t row, int64_t lo, int64_t hi, int32_t *a,
                     int32_t *b) {
    if (r->data) {
        const int32_t *x = r->data + row * r->len;
        scan(x, x, lo, hi, a, b);
        return;
    }
    if (lo > hi) return;
    /* In byte lanes, then folded in. */
    const uint8_t *x = r->bytes + row * r->len;
    uint8_t lo8 = x[lo], hi8 = x[lo];
    for (int64_t i = lo + 1; i <= hi; i++) {
        lo8 = x[i] < lo8 ? x[i] : lo8;
        hi8 = x[i] > hi8 ? x[i] : hi8;
    }
    *a = lo8 < *a ? lo8 : *a;
    *b = hi8 > *b ? hi8 : *b;
}

static int32_t raw_at(const rt_input *r, int64_t row, int64_t i) {
    return r->data ? r->data[row * r->len + i] : r->bytes[row * r->len + i];
}

/* Whether consecutive elements of the row differ by 0 or +1 only, or by 0
 * or -1 only. */
static bool row_step_monotone(const rt_input *r, int64_t row) {
    bool up = true, down = true;
    if (r->data) {
        const int32_t *x = r->data + row * r->len;
        for (int64_t i = 1; i < r->len; i++) {
            int64_t d = (int64_t)x[i] - x[i - 1];
            up &= d == 0 || d == 1;
            down &= d == 0 || d == -1;
        }
    } else {
        /* Byte lanes, and a stop once both fail (most rows of a dense
         * mask fail within a few hundred elements). */
        const uint8_t *x = r->bytes + row * r->len;
        uint8_t u = 1, dn = 1;
        for (int64_t s = 1; s < r->len && (u | dn); s += 256) {
            int64_t e = s + 256 < r->len ? s + 256 : r->len;
            for (int64_t i = s; i < e; i++) {
                uint8_t p = x[i - 1], c = x[i];
                u &= (uint8_t)(c >= p) & (uint8_t)((uint8_t)(c - p) <= 1);
                dn &= (uint8_t)(p >= c) & (uint8_t)((uint8_t)(p - c) <= 1);
            }
        }
        up = u, down = dn;
    }
    return up || down;
}

/* Min and max of each group of `group` consecutive entries of (mn, mx),
 * n entries in all, into (gmn, gmx). */
static void reduce(const int32_t *mn, const int32_t *mx, int64_t n, int64_t group, int32_t *gmn,
                   int32_t *gmx) {
    for (int64_t s = 0, g = 0; s < n; s += group, g++) {
        int64_t e = s + group < n ? s + group : n;
        int32_t lo = mn[s], hi = mx[s];
        scan(mn, mx, s + 1, e - 1, &lo, &hi);
        gmn[g] = lo;
        gmx[g] = hi;
    }
}

static bool build_one(rt_input *r, const fmc_program *p, const fmc_env *env, size_t slot) {
    const int64_t *dims = env->input_dims[slot];
    size_t rank = p->inputs[slot].rank;
    int64_t total = 1;
    for (size_t k = 0; k < rank; k++) total *= dims[k];
    if (fmc_input_is_bytes(&p->inputs[slot])) r->bytes = env->bytes[slot];
    else r->data = env->inputs[slot];
    r->blk = RT_BLOCK_BYTES / (int64_t)fmc_input_elem_size(&p->inputs[slot]);
    r->len = dims[rank - 1];
    r->rows = r->len > 0 ? total / r->len : 0;
    r->gmin = 0;
    r->gmax = 0;
    if (total <= 0) return true;
    r->nb = (r->len + r->blk - 1) / r->blk;
    r->levels = 1;
    if (r->rows == 1)
        while (((int64_t)1 << r->levels) <= r->nb) r->levels++;
    else
        r->ns = (r->nb + RT_SUPER - 1) / RT_SUPER;
    size_t per_row = (size_t)r->levels * (size_t)r->nb;
    r->mn = malloc((size_t)r->rows * per_row * sizeof *r->mn);
    r->mx = malloc((size_t)r->rows * per_row * sizeof *r->mx);
    r->mono = malloc((size_t)r->rows);
    if (!r->mn || !r->mx || !r->mono) return false;
    if (r->ns) {
        r->smn = malloc((size_t)r->rows * (size_t)r->ns * sizeof *r->smn);
        r->smx = malloc((size_t)r->rows * (size_t)r->ns * sizeof *r->smx);
        if (!r->smn || !r->smx) return false;
    }
    r->gmin = INT32_MAX;
    r->gmax = INT32_MIN;
    for (int64_t row = 0; row < r->rows; row++) {
        int32_t *mn = r->mn + row * per_row, *mx = r->mx + row * per_row;
        r->mono[row] = row_step_monotone(r, row);
        for (int64_t s = 0, b = 0; s < r->len; s += r->blk, b++) {
            int64_t e = s + r->blk < r->len ? s + r->blk : r->len;
            mn[b] = mx[b] = raw_at(r, row, s);
            scan_raw(r, row, s + 1, e - 1, &mn[b], &mx[b]);
        }
        for (int64_t b = 0; b < r->nb; b++) {
            if (mn[b] < r->gmin) r->gmin = mn[b];
            if (mx[b] > r->gmax) r->gmax = mx[b];
        }
        if (r->ns)
            reduce(mn, mx, r->nb, RT_SUPER, r->smn + row * r->ns, r->smx + row * r->ns);
        for (int l = 1; l < r->levels; l++) {
            int64_t w = (int64_t)1 << (l - 1);
            int32_t *pm = mn + (size_t)(l - 1) * r->nb, *px = mx + (size_t)(l - 1) * r->nb;
            int32_t *cm = mn + (size_t)l * r->nb, *cx = mx + (size_t)l * r->nb;
            for (int64_t b = 0; b + 2 * w <= r->nb; b++) {
                cm[b] = pm[b] < pm[b + w] ? pm[b] : pm[b + w];
                cx[b] = px[b] > px[b + w] ? px[b] : px[b + w];
            }
        }
    }
    return true;
}

fmc_rtab *fmc_rtab_build(const fmc_program *p, const fmc_env *env) {
    fmc_rtab *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n = p->ninputs;
    t->in = calloc(t->n + 1, sizeof *t->in);
    if (!t->in) {
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!build_one(&t->in[i], p, env, i)) {
            fmc_rtab_free(t);
            return NULL;
        }
    }
    return t;
}

/* Min and max over the whole blocks bl..bh of a row. */
static void query_blocks(const rt_input *r, int64_t row, int64_t bl, int64_t bh, int32_t *a,
                         int32_t *b) {
    size_t per_row = (size_t)r->levels * (size_t)r->nb;
    const int32_t *mn = r->mn + row * per_row, *mx = r->mx + row * per_row;
    int64_t n = bh - bl + 1;
    if (r->levels > 1) {
        int l = 0;
        while (((int64_t)2 << l) <= n) l++;
        const int32_t *m = mn + (size_t)l * r->nb, *M = mx + (size_t)l * r->nb;
        int64_t o = bh - ((int64_t)1 << l) + 1;
        scan(m, M, bl, bl, a, b);
        scan(m, M, o, o, a, b);
        return;
    }
    if (!r->ns || n < 2 * RT_SUPER) {
        scan(mn, mx, bl, bh, a, b);
        return;
    }
    int64_t sl = (bl + RT_SUPER - 1) / RT_SUPER, sh = (bh + 1) / RT_SUPER - 1;
    scan(mn, mx, bl, sl * RT_SUPER - 1, a, b);
    scan(mn, mx, (sh + 1) * RT_SUPER, bh, a, b);
    scan(r->smn + row * r->ns, r->smx + row * r->ns, sl, sh, a, b);
}

void fmc_rtab_query(const fmc_rtab *t, size_t slot, int64_t row, int64_t lo, int64_t hi,
                    int32_t *mn, int32_t *mx) {
    const rt_input *r = &t->in[slot];
    int64_t blk = r->blk;
    int32_t a = raw_at(r, row, lo), b = a;
    if (hi - lo < 2 * blk) {
        scan_raw(r, row, lo + 1, hi, &a, &b);
    } else {
        int64_t bl = (lo + blk - 1) / blk, bh = (hi + 1) / blk - 1;
        scan_raw(r, row, lo, bl * blk - 1, &a, &b);
        scan_raw(r, row, (bh + 1) * blk, hi, &a, &b);
        query_blocks(r, row, bl, bh, &a, &b);
    }
    *mn = a;
    *mx = b;
}

bool fmc_rtab_row_monotone(const fmc_rtab *t, size_t slot, int64_t row) {
    return t->in[slot].mono && t->in[slot].mono[row];
}

void fmc_rtab_global(const fmc_rtab *t, size_t slot, int32_t *mn, int32_t *mx) {
    *mn = t->in[slot].gmin;
    *mx = t->in[slot].gmax;
}
