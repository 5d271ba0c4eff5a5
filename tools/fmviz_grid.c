/* Summarising a BlockMask slice into cells, from its row lists only, so
 * the cost follows the non-empty tiles plus the cells drawn. */
#define _POSIX_C_SOURCE 200809L /* stat */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/fmviz.h"

int64_t fmv_tile_rows(const fm_blockmask_info *in, int64_t qb) {
    int64_t start = qb * in->block_q, end = start + in->block_q;
    return (end > in->shape.q_len ? in->shape.q_len : end) - start;
}

int64_t fmv_tile_cols(const fm_blockmask_info *in, int64_t kvb) {
    int64_t start = kvb * in->block_kv, end = start + in->block_kv;
    return (end > in->shape.kv_len ? in->shape.kv_len : end) - start;
}

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

/* The smallest round factor >= f (1-2-3-4-5-6-8 times a power of ten, or
 * a power of two), so that the axis labels of a downsampled grid stay
 * readable. */
static int64_t round_factor(int64_t f) {
    if (f <= 1) return 1;
    int64_t best = 1;
    while (best < f && best <= INT64_MAX / 2)
        best *= 2;
    if (best < f) return f;
    static const int64_t m[] = {1, 2, 3, 4, 5, 6, 8, 10};
    for (int64_t t = 1; t <= f && t <= INT64_MAX / 10; t *= 10)
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
            if (m[i] * t >= f && m[i] * t < best) best = m[i] * t;
    return best;
}

uint8_t fmv_cell_class(int64_t full, int64_t partial, int64_t empty) {
    int present = (full > 0) + (partial > 0) + (empty > 0);
    uint8_t k = partial >= full && partial >= empty ? FMV_PARTIAL
                : full >= empty                    ? FMV_FULL
                                                   : FMV_EMPTY;
    return present > 1 ? (uint8_t)(k | FMV_MIXED) : k;
}

bool fmv_grid_build(const fmviz *v, int64_t b, int64_t h, int64_t max_rows, int64_t max_cols,
                    bool same_factor, fmv_grid *g) {
    const fm_blockmask_info *in = &v->info;
    memset(g, 0, sizeof *g);
    if (max_rows < 1) max_rows = 1;
    if (max_cols < 1) max_cols = 1;
    g->fq = round_factor(ceil_div(in->num_q_blocks, max_rows));
    g->fkv = round_factor(ceil_div(in->num_kv_blocks, max_cols));
    if (same_factor) g->fq = g->fkv = g->fq > g->fkv ? g->fq : g->fkv;
    g->rows = ceil_div(in->num_q_blocks, g->fq);
    g->cols = ceil_div(in->num_kv_blocks, g->fkv);
    g->cell = malloc((size_t)(g->rows * g->cols));
    int64_t *full = calloc((size_t)g->cols, sizeof *full);
    int64_t *partial = calloc((size_t)g->cols, sizeof *partial);
    if (!g->cell || !full || !partial) {
        free(full);
        free(partial);
        fmv_grid_free(g);
        return false;
    }
    for (int64_t r = 0; r < g->rows; r++) {
        int64_t q0 = r * g->fq, q1 = q0 + g->fq;
        if (q1 > in->num_q_blocks) q1 = in->num_q_blocks;
        memset(full, 0, (size_t)g->cols * sizeof *full);
        memset(partial, 0, (size_t)g->cols * sizeof *partial);
        for (int64_t qb = q0; qb < q1; qb++) {
            const int32_t *fl, *pl;
            int64_t nf = 0, np = 0;
            if (fm_blockmask_row(v->s.blockmask, b, h, qb, &fl, &nf, &pl, &np) != FM_OK)
                nf = np = 0;
            for (int64_t k = 0; k < nf; k++)
                full[fl[k] / g->fkv]++;
            for (int64_t k = 0; k < np; k++)
                partial[pl[k] / g->fkv]++;
        }
        for (int64_t c = 0; c < g->cols; c++) {
            int64_t k0 = c * g->fkv, k1 = k0 + g->fkv;
            if (k1 > in->num_kv_blocks) k1 = in->num_kv_blocks;
            int64_t tiles = (q1 - q0) * (k1 - k0);
            g->cell[r * g->cols + c] = fmv_cell_class(full[c], partial[c], tiles - full[c] - partial[c]);
        }
    }
    free(full);
    free(partial);
    return true;
}

void fmv_grid_free(fmv_grid *g) {
    free(g->cell);
    g->cell = NULL;
}

/* Mixed cells are a paler shade of their majority's colour (the empty
 * one a darker grey, since empty is nearly white already). */
const uint8_t fmv_palette[FMV_PX_COUNT][3] = {
    [FMV_PX_EMPTY] = {236, 236, 236},
    [FMV_PX_PARTIAL] = {245, 166, 35},
    [FMV_PX_FULL] = {34, 139, 84},
    [FMV_PX_MIXED_EMPTY] = {196, 196, 196},
    [FMV_PX_MIXED_PARTIAL] = {250, 210, 140},
    [FMV_PX_MIXED_FULL] = {140, 200, 165},
    [FMV_PX_TRUE_PARTIAL] = {204, 96, 0},
    [FMV_PX_FALSE_PARTIAL] = {255, 233, 184},
    [FMV_PX_WRONG] = {220, 0, 40},
};

bool fmv_tile_classes(const fmviz *v, int64_t b, int64_t h, int64_t qb, uint8_t *cls) {
    const int32_t *fl, *pl;
    int64_t nf, np;
    memset(cls, FMV_EMPTY, (size_t)v->info.num_kv_blocks);
    if (fm_blockmask_row(v->s.blockmask, b, h, qb, &fl, &nf, &pl, &np) != FM_OK) return false;
    for (int64_t k = 0; k < nf; k++)
        cls[fl[k]] = FMV_FULL;
    for (int64_t k = 0; k < np; k++)
        cls[pl[k]] = FMV_PARTIAL;
    return true;
}

bool fmv_position_classes(const fmviz *v, int64_t b, int64_t h, int64_t q, const uint8_t *tile_cls,
                          uint8_t *out) {
    static const uint8_t px[3][2] = {
        [FMV_EMPTY] = {FMV_PX_EMPTY, FMV_PX_WRONG},
        [FMV_PARTIAL] = {FMV_PX_FALSE_PARTIAL, FMV_PX_TRUE_PARTIAL},
        [FMV_FULL] = {FMV_PX_WRONG, FMV_PX_FULL},
    };
    for (int64_t kv = 0; kv < v->info.shape.kv_len; kv++) {
        bool val;
        if (fm_blockmask_eval(v->s.blockmask, b, h, q, kv, &val) != FM_OK) return false;
        out[kv] = px[tile_cls[kv / v->info.block_kv]][val];
    }
    return true;
}

int64_t fmv_panels(const fmviz *v) {
    int64_t n = v->stored_batch * v->stored_heads;
    return n < v->heads_shown ? n : v->heads_shown;
}

void fmv_print_wrapped(const fmviz *v, int indent, const char *text) {
    int width = v->term_width > indent + 10 ? v->term_width : indent + 10;
    int col = 0;
    const char *p = text;
    while (*p) {
        const char *w = p;
        while (*w == ' ')
            w++;
        if (!*w) break;
        const char *e = w;
        while (*e && *e != ' ')
            e++;
        /* Display width: count UTF-8 lead bytes only. */
        int len = 0;
        for (const char *c = w; c < e; c++)
            len += ((unsigned char)*c & 0xC0) != 0x80;
        if (col > 0 && col + 1 + len > width) {
            printf("\n%*s", indent, "");
            col = indent;
        } else if (col > 0) {
            putchar(' ');
            col++;
        }
        fwrite(w, 1, (size_t)(e - w), stdout);
        col += len;
        p = e;
    }
    putchar('\n');
}
