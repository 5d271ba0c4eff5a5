/* Range tables of input arrays: min and max over any index range of a row
 * (the last dimension) in O(block) time, built in one pass per build. */
#include <stdlib.h>
#include <string.h>

#include "compiler/absint.h"

#define RT_BLOCK 32

typedef struct rt_input {
    const int32_t *data;
    int64_t rows, len;
    int64_t nb;   /* blocks per row */
    int levels;   /* sparse table levels over blocks */
    int32_t *mn, *mx; /* [row][level][nb] */
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
        free(t->in[i].mono);
    }
    free(t->in);
    free(t);
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
    while (((int64_t)1 << r->levels) <= r->nb) r->levels++;
    size_t per_row = (size_t)r->levels * (size_t)r->nb;
    r->mn = malloc((size_t)r->rows * per_row * sizeof *r->mn);
    r->mx = malloc((size_t)r->rows * per_row * sizeof *r->mx);
    r->mono = malloc((size_t)r->rows);
    if (!r->mn || !r->mx || !r->mono) return false;
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
        for (int64_t b = 0; b < r->nb; b++) {
            int64_t s = b * RT_BLOCK, e = s + RT_BLOCK < r->len ? s + RT_BLOCK : r->len;
            int32_t lo = x[s], hi = x[s];
            for (int64_t i = s + 1; i < e; i++) {
                lo = x[i] < lo ? x[i] : lo;
                hi = x[i] > hi ? x[i] : hi;
            }
            mn[b] = lo;
            mx[b] = hi;
            if (lo < r->gmin) r->gmin = lo;
            if (hi > r->gmax) r->gmax = hi;
        }
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

void fmc_rtab_query(const fmc_rtab *t, size_t slot, int64_t row, int64_t lo, int64_t hi,
                    int32_t *mn, int32_t *mx) {
    const rt_input *r = &t->in[slot];
    const int32_t *x = r->data + row * r->len;
    int32_t a = x[lo], b = x[lo];
    if (hi - lo < 2 * RT_BLOCK) {
        for (int64_t i = lo + 1; i <= hi; i++) {
            a = x[i] < a ? x[i] : a;
            b = x[i] > b ? x[i] : b;
        }
        *mn = a;
        *mx = b;
        return;
    }
    int64_t bl = (lo + RT_BLOCK - 1) / RT_BLOCK, bh = (hi + 1) / RT_BLOCK - 1;
    for (int64_t i = lo; i < bl * RT_BLOCK; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    for (int64_t i = (bh + 1) * RT_BLOCK; i <= hi; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    if (bl <= bh) {
        size_t per_row = (size_t)r->levels * (size_t)r->nb;
        int64_t n = bh - bl + 1;
        int l = 0;
        while (((int64_t)2 << l) <= n) l++;
        const int32_t *m = r->mn + row * per_row + (size_t)l * r->nb;
        const int32_t *M = r->mx + row * per_row + (size_t)l * r->nb;
        int64_t o = bh - ((int64_t)1 << l) + 1;
        int32_t m1 = m[bl] < m[o] ? m[bl] : m[o], M1 = M[bl] > M[o] ? M[bl] : M[o];
        a = m1 < a ? m1 : a;
        b = M1 > b ? M1 : b;
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
