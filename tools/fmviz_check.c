/* --check: the mask evaluated at every position of every batch and head,
 * reduced tile by tile and compared with the BlockMask. Also checks that
 * the stored lists are ascending and in range, that the transpose agrees
 * with the rows, and that the tile counts agree with the info. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fmviz.h"

#define MAX_REPORTED 50

static const char *const class_name[3] = {"empty", "partial", "full"};

typedef struct checker {
    const fmviz *v;
    int64_t mismatches;
    bool failed; /* an evaluation failed: a bug in the library */
    /* Test hook: FMVIZ_TEST_FLIP_TILE=b,h,q_block,kv_block makes the check
     * read that tile with a wrong class, so the tests can see a
     * misclassified tile reported (a correct library gives them none). */
    bool flip;
    int64_t flip_at[4];
} checker;

static void report(checker *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(checker *k, const char *fmt, ...) {
    if (k->mismatches++ >= MAX_REPORTED) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* The class of one tile by evaluating its positions; stops as soon as the
 * answer cannot change. *tq, *tkv: a true point, *fq, *fkv: a false one
 * (-1 when none was seen). */
static int tile_class(checker *k, int64_t b, int64_t h, int64_t qb, int64_t kvb, int64_t pt[2],
                      int64_t pf[2]) {
    const fm_blockmask_info *in = &k->v->info;
    const fm_blockmask *bm = k->v->s.blockmask;
    int64_t q0 = qb * in->block_q, q1 = q0 + fmv_tile_rows(in, qb);
    int64_t k0 = kvb * in->block_kv, k1 = k0 + fmv_tile_cols(in, kvb);
    bool clipped = q1 - q0 < in->block_q || k1 - k0 < in->block_kv;
    bool any_true = false, any_false = false;
    pt[0] = pt[1] = pf[0] = pf[1] = -1;
    for (int64_t q = q0; q < q1; q++) {
        for (int64_t kv = k0; kv < k1; kv++) {
            bool val;
            if (fm_blockmask_eval(bm, b, h, q, kv, &val) != FM_OK) {
                k->failed = true;
                return -1;
            }
            if (val && !any_true) {
                any_true = true;
                pt[0] = q;
                pt[1] = kv;
            } else if (!val && !any_false) {
                any_false = true;
                pf[0] = q;
                pf[1] = kv;
            }
        }
        if (any_true && (any_false || clipped)) return FMV_PARTIAL;
    }
    if (!any_true) return FMV_EMPTY;
    return any_false || clipped ? FMV_PARTIAL : FMV_FULL;
}

static bool mark_row(checker *k, uint8_t *cls, int64_t nkvb, const int32_t *list, int64_t n,
                     uint8_t value, int64_t b, int64_t h, int64_t qb) {
    bool ok = true;
    for (int64_t i = 0; i < n; i++) {
        if (list[i] < 0 || list[i] >= nkvb || (i && list[i] <= list[i - 1])) {
            report(k,
                   "bad list: b=%" PRId64 " h=%" PRId64 " q_block=%" PRId64
                   ": the %s list is not ascending within [0, %" PRId64 ") at entry %" PRId64
                   " (%d)\n",
                   b, h, qb, class_name[value], nkvb, i, list[i]);
            ok = false;
            continue;
        }
        if (cls[list[i]] != FMV_EMPTY) {
            report(k,
                   "bad list: b=%" PRId64 " h=%" PRId64 " q_block=%" PRId64
                   ": kv block %d is both full and partial\n",
                   b, h, qb, list[i]);
            ok = false;
        }
        cls[list[i]] = value;
    }
    return ok;
}

/* Compares one row of the BlockMask with the evaluated classes. */
static void check_row(checker *k, int64_t b, int64_t h, int64_t qb, uint8_t *cls, int64_t *counts) {
    const fm_blockmask_info *in = &k->v->info;
    const int32_t *fl = NULL, *pl = NULL;
    int64_t nf = 0, np = 0;
    memset(cls, FMV_EMPTY, (size_t)in->num_kv_blocks);
    if (fm_blockmask_row(k->v->s.blockmask, b, h, qb, &fl, &nf, &pl, &np) != FM_OK) {
        k->failed = true;
        return;
    }
    mark_row(k, cls, in->num_kv_blocks, fl, nf, FMV_FULL, b, h, qb);
    mark_row(k, cls, in->num_kv_blocks, pl, np, FMV_PARTIAL, b, h, qb);
    if (k->flip && k->flip_at[0] == b && k->flip_at[1] == h && k->flip_at[2] == qb &&
        k->flip_at[3] >= 0 && k->flip_at[3] < in->num_kv_blocks)
        cls[k->flip_at[3]] = cls[k->flip_at[3]] == FMV_EMPTY ? FMV_PARTIAL : FMV_EMPTY;
    for (int64_t kvb = 0; kvb < in->num_kv_blocks && !k->failed; kvb++) {
        int64_t pt[2], pf[2];
        int got = cls[kvb];
        counts[got]++;
        int want = tile_class(k, b, h, qb, kvb, pt, pf);
        if (want < 0 || want == got) continue;
        char why[160];
        if (want == FMV_EMPTY)
            snprintf(why, sizeof why, "false at every position");
        else if (want == FMV_FULL)
            snprintf(why, sizeof why, "true at every position");
        else if (pf[0] >= 0)
            snprintf(why, sizeof why,
                     "true at q=%" PRId64 ", kv=%" PRId64 ", false at q=%" PRId64 ", kv=%" PRId64,
                     pt[0], pt[1], pf[0], pf[1]);
        else
            snprintf(why, sizeof why, "clipped edge tile, true at q=%" PRId64 ", kv=%" PRId64,
                     pt[0], pt[1]);
        report(k,
               "mismatch: b=%" PRId64 " h=%" PRId64 " q_block=%" PRId64 " kv_block=%" PRId64
               " (q %" PRId64 "..%" PRId64 ", kv %" PRId64 "..%" PRId64
               "): the BlockMask says %s, the mask is %s (%s)\n",
               b, h, qb, kvb, qb * in->block_q, qb * in->block_q + fmv_tile_rows(in, qb) - 1,
               kvb * in->block_kv, kvb * in->block_kv + fmv_tile_cols(in, kvb) - 1, class_name[got],
               class_name[want], why);
    }
}

/* The transpose of stored slice (b, h) against its rows. */
static void check_columns(checker *k, int64_t b, int64_t h) {
    const fm_blockmask_info *in = &k->v->info;
    int64_t nq = in->num_q_blocks, nkv = in->num_kv_blocks;
    if (nq > 0 && nkv > ((int64_t)1 << 26) / nq) return; /* too large to hold densely */
    uint8_t *grid = calloc((size_t)(nq * nkv), 1);
    if (!grid) return;
    for (int64_t qb = 0; qb < nq; qb++) {
        const int32_t *fl, *pl;
        int64_t nf, np;
        if (fm_blockmask_row(k->v->s.blockmask, b, h, qb, &fl, &nf, &pl, &np) != FM_OK) continue;
        for (int64_t i = 0; i < nf; i++)
            if (fl[i] >= 0 && fl[i] < nkv) grid[qb * nkv + fl[i]] = FMV_FULL;
        for (int64_t i = 0; i < np; i++)
            if (pl[i] >= 0 && pl[i] < nkv) grid[qb * nkv + pl[i]] = FMV_PARTIAL;
    }
    uint8_t *col = malloc((size_t)nq);
    for (int64_t kvb = 0; col && kvb < nkv; kvb++) {
        const int32_t *fl, *pl;
        int64_t nf, np;
        if (fm_blockmask_column(k->v->s.blockmask, b, h, kvb, &fl, &nf, &pl, &np) != FM_OK) {
            report(k,
                   "transpose: kv block %" PRId64 " of b=%" PRId64 " h=%" PRId64
                   " cannot be read\n",
                   kvb, b, h);
            continue;
        }
        memset(col, FMV_EMPTY, (size_t)nq);
        bool bad = false;
        for (int64_t i = 0; i < nf; i++) {
            if (fl[i] < 0 || fl[i] >= nq || (i && fl[i] <= fl[i - 1]))
                bad = true;
            else
                col[fl[i]] = FMV_FULL;
        }
        for (int64_t i = 0; i < np; i++) {
            if (pl[i] < 0 || pl[i] >= nq || (i && pl[i] <= pl[i - 1]))
                bad = true;
            else
                col[pl[i]] = FMV_PARTIAL;
        }
        for (int64_t qb = 0; qb < nq && !bad; qb++)
            bad = col[qb] != grid[qb * nkv + kvb];
        if (bad)
            report(k,
                   "transpose: column kv_block=%" PRId64 " of b=%" PRId64 " h=%" PRId64
                   " does not match the rows\n",
                   kvb, b, h);
    }
    free(col);
    free(grid);
}

int fmviz_check(const fmviz *v) {
    const fm_blockmask_info *in = &v->info;
    checker k = {v, 0, false, false, {0, 0, 0, 0}};
    const char *flip = getenv("FMVIZ_TEST_FLIP_TILE");
    if (flip) {
        long long f[4];
        k.flip = sscanf(flip, "%lld,%lld,%lld,%lld", &f[0], &f[1], &f[2], &f[3]) == 4;
        for (int i = 0; i < 4; i++)
            k.flip_at[i] = k.flip ? f[i] : 0;
    }
    uint8_t *cls = malloc((size_t)in->num_kv_blocks);
    if (!cls) return fmcli_input_error(&v->c, NULL, "out of memory");
    int64_t counts[3] = {0, 0, 0};
    for (int64_t b = 0; b < in->shape.batch && !k.failed; b++)
        for (int64_t h = 0; h < in->shape.heads && !k.failed; h++)
            for (int64_t qb = 0; qb < in->num_q_blocks && !k.failed; qb++)
                check_row(&k, b, h, qb, cls, counts);
    free(cls);
    if (k.failed) {
        fflush(stdout);
        fmcli_error(&v->c, NULL, "the BlockMask could not be read or evaluated (a bug)");
        return 4;
    }
    for (int64_t b = 0; b < v->stored_batch; b++)
        for (int64_t h = 0; h < v->stored_heads; h++)
            check_columns(&k, b, h);
    if (counts[FMV_FULL] != in->full_tiles || counts[FMV_PARTIAL] != in->partial_tiles ||
        counts[FMV_EMPTY] != in->empty_tiles)
        report(&k,
               "statistics: the info counts %" PRId64 " full, %" PRId64 " partial, %" PRId64
               " empty tiles; the rows hold %" PRId64 ", %" PRId64 ", %" PRId64 "\n",
               in->full_tiles, in->partial_tiles, in->empty_tiles, counts[FMV_FULL],
               counts[FMV_PARTIAL], counts[FMV_EMPTY]);
    int64_t checked = in->shape.batch * in->shape.heads * in->num_q_blocks * in->num_kv_blocks;
    if (k.mismatches) {
        if (k.mismatches > MAX_REPORTED)
            printf("... and %" PRId64 " more\n", k.mismatches - MAX_REPORTED);
        printf("coverage FAILED: %" PRId64 " problems in %" PRId64 " tiles checked\n", k.mismatches,
               checked);
        return FMCLI_EXIT_MISMATCH;
    }
    printf("coverage ok: %" PRId64 " tiles checked\n", checked);
    return 0;
}
