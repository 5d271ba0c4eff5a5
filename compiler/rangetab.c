/* Range tables of input arrays: min and max over any index range of a row
 * (the last dimension), built in one pass per build.
 *
 * Every row keeps the min and max of each block of RT_BLOCK elements. Above
 * the blocks, a one-row array (a 1-D input: document ids, tree tables) gets
 * a sparse table over its blocks, so any range costs O(RT_BLOCK); a
 * many-row array (a dense 2-D or 4-D mask) gets only one more level, the
 * min and max of each RT_SUPER blocks, because a sparse table per row would
 * cost twice the array itself (log2 of the row's block count levels of two
 * int32 per block) while a query then scans at most 2 * RT_SUPER blocks
 * plus a row's length / (RT_BLOCK * RT_SUPER) superblocks. */
#include <stdlib.h>
#include <string.h>

#include "compiler/absint.h"

#define RT_BLOCK 32
#define RT_SUPER 32

typedef struct rt_input {
    const int32_t *data;
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

static bool build_one(rt_input *r, const int32_t *data, const int64_t *dims, size_t rank) {
    int64_t total = 1;
    for (size_t k = 0; k < rank; k++) total *= dims[k];
    r->data = data;
    r->len = dims[rank - 1];
    r->rows = r->len > 0 ? total / r->len : 0;
    r->gmin = 0;
    r->gmax = 0;
    if (total <= 0) return true;
    r->nb = (r->len + RT_BLOCK - 1) / RT_BLOCK;
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
        const int32_t *x = data + row * r->len;
        int32_t *mn = r->mn + row * per_row, *mx = r->mx + row * per_row;
        bool up = true, down = true;
        for (int64_t i = 1; i < r->len; i++) {
            int64_t d = (int64_t)x[i] - x[i - 1];
            up &= d == 0 || d == 1;
            down &= d == 0 || d == -1;
        }
        r->mono[row] = up || down;
        reduce(x, x, r->len, RT_BLOCK, mn, mx);
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
        if (!build_one(&t->in[i], env->inputs[i], env->input_dims[i], p->inputs[i].rank)) {
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
    const int32_t *x = r->data + row * r->len;
    int32_t a = x[lo], b = x[lo];
    if (hi - lo < 2 * RT_BLOCK) {
        scan(x, x, lo + 1, hi, &a, &b);
    } else {
        int64_t bl = (lo + RT_BLOCK - 1) / RT_BLOCK, bh = (hi + 1) / RT_BLOCK - 1;
        scan(x, x, lo, bl * RT_BLOCK - 1, &a, &b);
        scan(x, x, (bh + 1) * RT_BLOCK, hi, &a, &b);
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
