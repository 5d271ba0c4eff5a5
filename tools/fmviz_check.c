/* --check: the mask evaluated at every position of every batch and head,
 * reduced tile by tile and compared with the BlockMask. Also checks that
 * the stored lists are ascending and in range, that the transpose agrees
 * with the rows, and that the tile counts agree with the info.
 *
 * The check never uses the tile analysis it checks: every tile's class
 * comes from evaluating its positions with the vectorised row evaluator
 * (rows of tiles spread over the cores with OpenMP). That evaluator also
 * settles the build's undecided tiles, so the first position of every
 * tile is evaluated again with the point evaluator, and a disagreement is
 * reported as a bug rather than trusted. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexmask_tools.h"
#include "tools/fmviz.h"

#define MAX_REPORTED 50
#define CHUNK 2048 /* positions per row evaluation: its scratch stays in cache */
#define BATCH 64   /* rows of tiles evaluated in parallel between reports */

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

/* Per thread: the row evaluator's scratch and one chunk of values. */
typedef struct worker {
    fmt_row_eval *eval;
    uint8_t *row;
    int64_t *ntrue;  /* per kv block of the tile row: true positions seen */
    uint8_t *mixed;  /* per kv block: both values seen, nothing left to learn */
} worker;

/* Evaluates tile row qb of (b, h) into cls[kv block]. Positions of a tile
 * already known to be partial are skipped: nothing can change its class.
 * Returns 0, 1 when an evaluation failed, 2 when the evaluators disagree. */
static int eval_tile_row(const fmviz *v, worker *w, int64_t b, int64_t h, int64_t qb,
                         uint8_t *cls) {
    const fm_blockmask_info *in = &v->info;
    int64_t nkv = in->num_kv_blocks, bkv = in->block_kv;
    int64_t q0 = qb * in->block_q, rows = fmv_tile_rows(in, qb);
    memset(w->ntrue, 0, (size_t)nkv * sizeof *w->ntrue);
    memset(w->mixed, 0, (size_t)nkv);
    for (int64_t q = q0; q < q0 + rows; q++) {
        int64_t done = q - q0; /* rows seen before this one */
        for (int64_t kvb = 0; kvb < nkv;) {
            if (w->mixed[kvb]) {
                kvb++;
                continue;
            }
            /* A run of undecided tiles, evaluated a chunk at a time. */
            int64_t end = kvb;
            while (end < nkv && !w->mixed[end] && (end - kvb + 1) * bkv <= CHUNK)
                end++;
            if (end == kvb) end = kvb + 1; /* one tile wider than a chunk */
            int64_t k0 = kvb * bkv, k1 = end * bkv;
            if (k1 > in->shape.kv_len) k1 = in->shape.kv_len;
            for (int64_t c0 = k0; c0 < k1; c0 += CHUNK) {
                int64_t n = k1 - c0 < CHUNK ? k1 - c0 : CHUNK;
                if (!fmt_row_eval_row(w->eval, b, h, q, c0, n, w->row)) return 1;
                for (int64_t j = 0; j < n;) {
                    int64_t blk = (c0 + j) / bkv, stop = (blk + 1) * bkv - c0;
                    if (stop > n) stop = n;
                    uint32_t t = 0;
                    const uint8_t *row = w->row;
#pragma omp simd reduction(+ : t)
                    for (int64_t x = j; x < stop; x++)
                        t += row[x];
                    if (q == q0 && (c0 + j) % bkv == 0) {
                        /* The tile's first position, by the other evaluator. */
                        bool val;
                        if (!fmt_row_eval_point(w->eval, b, h, q, c0 + j, &val)) return 1;
                        if (val != (w->row[j] != 0)) return 2;
                    }
                    w->ntrue[blk] += (int64_t)t;
                    j = stop;
                }
            }
            for (int64_t blk = kvb; blk < end; blk++) {
                int64_t seen = (done + 1) * fmv_tile_cols(in, blk);
                w->mixed[blk] = w->ntrue[blk] > 0 && w->ntrue[blk] < seen;
            }
            kvb = end;
        }
    }
    for (int64_t kvb = 0; kvb < nkv; kvb++) {
        int64_t cols = fmv_tile_cols(in, kvb);
        bool clipped = rows < in->block_q || cols < bkv;
        cls[kvb] = w->mixed[kvb] || (w->ntrue[kvb] > 0 && clipped) ? FMV_PARTIAL
                   : w->ntrue[kvb] == 0                           ? FMV_EMPTY
                                                                  : FMV_FULL;
    }
    return 0;
}

/* The first true and false points of a tile, for the report of a
 * mismatch (rare, so point by point). */
static void witnesses(const fmviz *v, int64_t b, int64_t h, int64_t qb, int64_t kvb, int64_t pt[2],
                      int64_t pf[2]) {
    const fm_blockmask_info *in = &v->info;
    int64_t q0 = qb * in->block_q, q1 = q0 + fmv_tile_rows(in, qb);
    int64_t k0 = kvb * in->block_kv, k1 = k0 + fmv_tile_cols(in, kvb);
    pt[0] = pt[1] = pf[0] = pf[1] = -1;
    for (int64_t q = q0; q < q1 && (pt[0] < 0 || pf[0] < 0); q++)
        for (int64_t kv = k0; kv < k1; kv++) {
            bool val;
            if (fm_blockmask_eval(v->s.blockmask, b, h, q, kv, &val) != FM_OK) return;
            int64_t *p = val ? pt : pf;
            if (p[0] < 0) {
                p[0] = q;
                p[1] = kv;
            }
        }
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

/* Compares one row of the BlockMask with the evaluated classes want[]. */
static void check_row(checker *k, int64_t b, int64_t h, int64_t qb, const uint8_t *want,
                      uint8_t *cls, int64_t *counts) {
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
    for (int64_t kvb = 0; kvb < in->num_kv_blocks; kvb++) {
        int got = cls[kvb];
        counts[got]++;
        if (want[kvb] == got) continue;
        int64_t pt[2], pf[2];
        witnesses(k->v, b, h, qb, kvb, pt, pf);
        char why[160];
        if (want[kvb] == FMV_EMPTY)
            snprintf(why, sizeof why, "false at every position");
        else if (want[kvb] == FMV_FULL)
            snprintf(why, sizeof why, "true at every position");
        else if (pf[0] >= 0 && pt[0] >= 0)
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
               class_name[want[kvb]], why);
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

static void worker_free(worker *w) {
    fmt_row_eval_free(w->eval);
    free(w->row);
    free(w->ntrue);
    free(w->mixed);
}

static bool worker_init(worker *w, const fm_blockmask *bm, int64_t nkv) {
    w->eval = fmt_row_eval_create(bm, CHUNK);
    w->row = malloc(CHUNK);
    w->ntrue = malloc((size_t)nkv * sizeof *w->ntrue);
    w->mixed = malloc((size_t)nkv);
    return w->eval && w->row && w->ntrue && w->mixed;
}

/* Evaluates rows [r0, r1) of tile rows (b, h, qb in that order) into
 * want, one row of num_kv_blocks classes each, on every core. Returns
 * 0, or eval_tile_row's failure code. */
static int eval_batch(const fmviz *v, int64_t r0, int64_t r1, uint8_t *want) {
    const fm_blockmask_info *in = &v->info;
    int64_t nq = in->num_q_blocks, nkv = in->num_kv_blocks;
    int status = 0;
#pragma omp parallel
    {
        worker w = {0};
        int mine = worker_init(&w, v->s.blockmask, nkv) ? 0 : 3;
#pragma omp for schedule(dynamic, 1)
        for (int64_t r = r0; r < r1; r++) {
            if (mine) continue;
            int64_t qb = r % nq, bh = r / nq;
            mine = eval_tile_row(v, &w, bh / in->shape.heads, bh % in->shape.heads, qb,
                                 want + (r - r0) * nkv);
        }
        worker_free(&w);
        if (mine) {
#pragma omp critical
            if (!status || mine < status) status = mine;
        }
    }
    return status;
}

int fmviz_check(const fmviz *v) {
    const fm_blockmask_info *in = &v->info;
    /* Every position of every batch and head, at most (a tile shown to be
     * partial is not evaluated further). */
    double positions = (double)in->shape.batch * (double)in->shape.heads *
                       (double)in->shape.q_len * (double)in->shape.kv_len;
    if (v->c.max_evaluations > 0 && positions > (double)v->c.max_evaluations)
        return fmcli_input_error(&v->c,
                                 "the check never trusts the analysis, so it evaluates every "
                                 "position; raise the bound or check a smaller shape",
                                 "--check evaluates the mask at up to %.0f positions, more than "
                                 "the evaluation bound of %" PRId64,
                                 positions, v->c.max_evaluations);
    checker k = {v, 0, false, false, {0, 0, 0, 0}};
    const char *flip = getenv("FMVIZ_TEST_FLIP_TILE");
    if (flip) {
        long long f[4];
        k.flip = sscanf(flip, "%lld,%lld,%lld,%lld", &f[0], &f[1], &f[2], &f[3]) == 4;
        for (int i = 0; i < 4; i++)
            k.flip_at[i] = k.flip ? f[i] : 0;
    }
    int64_t nq = in->num_q_blocks, nkv = in->num_kv_blocks;
    int64_t total_rows = in->shape.batch * in->shape.heads * nq;
    uint8_t *cls = malloc((size_t)nkv);
    uint8_t *want = malloc((size_t)(BATCH * nkv));
    if (!cls || !want) {
        free(cls);
        free(want);
        return fmcli_input_error(&v->c, NULL, "out of memory");
    }
    int64_t counts[3] = {0, 0, 0};
    int status = 0;
    for (int64_t r0 = 0; r0 < total_rows && !status && !k.failed; r0 += BATCH) {
        int64_t r1 = r0 + BATCH < total_rows ? r0 + BATCH : total_rows;
        status = eval_batch(v, r0, r1, want);
        for (int64_t r = r0; r < r1 && !status && !k.failed; r++) {
            int64_t bh = r / nq;
            check_row(&k, bh / in->shape.heads, bh % in->shape.heads, r % nq, want + (r - r0) * nkv,
                      cls, counts);
        }
    }
    free(cls);
    free(want);
    if (status == 3) return fmcli_input_error(&v->c, NULL, "out of memory");
    if (status == 2) {
        fflush(stdout);
        fmcli_error(&v->c, NULL,
                    "the point and row evaluators disagree on this mask (a bug in the library)");
        return 4;
    }
    if (status || k.failed) {
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
    int64_t checked = total_rows * nkv;
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
