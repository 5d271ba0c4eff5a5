/* The BlockMask against brute force.
 *
 * Property test: random mask programs (tests/mask_gen.h), random shapes
 * (lengths not multiples of the blocks, several batches and heads), random
 * block sizes and input arrays. For each case the mask is evaluated at
 * every point; the BlockMask must classify every tile exactly as the
 * brute-force classification does, the build must fail exactly when some
 * point breaks a safety rule, the row evaluator must agree with the point
 * evaluator, and the abstract interpreter, over random boxes, must never
 * claim all-true / all-false / proven-mixed / safe wrongly. Plus the
 * standard example masks at several shapes and the cases the issue says
 * need zero point evaluations. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mask_gen.h"
#include "testutil.h"

#include "compiler/absint.h"
#include "compiler/blockmask.h"
#include "compiler/eval.h"
#include "compiler/ir.h"
#include "dsl/ast.h"

typedef struct compiled {
    fmd_program *ast;
    fmc_program *p;
} compiled;

static bool g_zero_divisor; /* the last compile failed only for a constant zero divisor */

static bool compile(const char *src, const char *mask, compiled *c, bool quiet) {
    fmd_diags d;
    fmd_diags_init(&d);
    c->p = NULL;
    c->ast = fmd_parse(fmd_source_new("gen.mask", src, strlen(src)), &d);
    if (c->ast && fmd_check(c->ast, &d) && d.errors == 0) c->p = fmc_lower(c->ast, mask, &d);
    g_zero_divisor = !c->p && d.errors > 0;
    for (size_t i = 0; i < d.count; i++)
        if (d.items[i].severity == FMD_ERROR && !strstr(d.items[i].message, "by zero"))
            g_zero_divisor = false;
    if (!c->p && !quiet && !g_zero_divisor) {
        fprintf(stderr, "cannot compile:\n%s\n", src);
        fmd_diags_render(&d, stderr, false);
    }
    fmd_diags_clear(&d);
    return c->p != NULL;
}

static void compiled_free(compiled *c) {
    fmc_program_free(c->p);
    fmd_program_free(c->ast);
}

/* Concrete values for a program: params at their defaults, inputs filled. */
typedef struct world {
    fmc_env env;
    int64_t params[16];
    int32_t *arrays[8];
    const int32_t *ins[8];
    int64_t dims[8][FMD_MAX_RANK];
} world;

static void world_bind(world *w, const fmc_program *p, tu_rng *r, int64_t B, int64_t H, int64_t Q,
                       int64_t KV) {
    memset(w, 0, sizeof *w);
    w->env.batch = B;
    w->env.heads = H;
    w->env.q_len = Q;
    w->env.kv_len = KV;
    assert_true(p->nparams <= 16 && p->ninputs <= 8);
    for (size_t i = 0; i < p->nparams; i++) w->params[i] = p->params[i].default_value;
    w->env.params = w->params;
    for (size_t i = 0; i < p->ninputs; i++) {
        int64_t n = 1;
        for (size_t k = 0; k < p->inputs[i].rank; k++) {
            w->dims[i][k] = fmc_dim_value(&p->inputs[i].dims[k], &w->env);
            n *= w->dims[i][k];
        }
        w->arrays[i] = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
        mg_fill(r, w->arrays[i], n);
        w->ins[i] = w->arrays[i];
    }
    w->env.inputs = w->ins;
    w->env.input_dims = (const int64_t(*)[FMD_MAX_RANK])w->dims;
}

static void world_free(world *w) {
    for (int i = 0; i < 8; i++) free(w->arrays[i]);
}

#define AT(b, h, q, kv) ((((b) * env->heads + (h)) * env->q_len + (q)) * env->kv_len + (kv))

/* Every point: 0 false, 1 true, 2 breaks a rule. */
static uint8_t *brute(const fmc_program *p, const fmc_env *env, bool *any_violation,
                      bool *fits32) {
    size_t n = (size_t)(env->batch * env->heads * env->q_len * env->kv_len);
    uint8_t *v = malloc(n);
    int64_t *regs = malloc((p->count + 1) * sizeof *regs);
    *any_violation = false;
    *fits32 = true;
    for (int64_t b = 0; b < env->batch; b++)
        for (int64_t h = 0; h < env->heads; h++)
            for (int64_t q = 0; q < env->q_len; q++)
                for (int64_t kv = 0; kv < env->kv_len; kv++) {
                    bool val;
                    fmc_violation viol;
                    if (!fmc_eval_point(p, env, b, h, q, kv, regs, &val, &viol)) {
                        v[AT(b, h, q, kv)] = 2;
                        *any_violation = true;
                        continue;
                    }
                    v[AT(b, h, q, kv)] = val;
                    for (size_t i = 0; i < p->count; i++)
                        if (p->insns[i].type == FMD_TYPE_INT &&
                            (regs[i] < INT32_MIN || regs[i] > INT32_MAX))
                            *fits32 = false;
                }
    free(regs);
    return v;
}

static const char *g_src; /* the case being checked, printed on failure */
static char g_shape[256];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "case %s\n%s\n", g_shape, g_src ? g_src : "");                         \
            fail_msg(__VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

static void check_rows(const fmc_program *p, const fmc_env *env, const uint8_t *pts) {
    int64_t n = env->kv_len;
    void *scratch = malloc(fmc_row_scratch_bytes(p, n));
    uint8_t *out = malloc((size_t)n);
    for (int64_t b = 0; b < env->batch; b++)
        for (int64_t h = 0; h < env->heads; h++)
            for (int64_t q = 0; q < env->q_len; q++) {
                fmc_violation v;
                bool ok = fmc_eval_row(p, env, b, h, q, 0, n, out, scratch, &v);
                int64_t first_bad = -1;
                for (int64_t kv = 0; kv < n && first_bad < 0; kv++)
                    if (pts[AT(b, h, q, kv)] == 2) first_bad = kv;
                CHECK(ok == (first_bad < 0), "eval_row ok=%d but first violation at kv=%lld (q=%lld)",
                      ok, (long long)first_bad, (long long)q);
                if (!ok) {
                    CHECK(v.kv == first_bad && v.q == q && v.b == b && v.h == h,
                          "eval_row names kv=%lld, expected %lld", (long long)v.kv,
                          (long long)first_bad);
                    continue;
                }
                for (int64_t kv = 0; kv < n; kv++)
                    CHECK(out[kv] == pts[AT(b, h, q, kv)], "eval_row differs at q=%lld kv=%lld",
                          (long long)q, (long long)kv);
            }
    free(scratch);
    free(out);
}

static bool in_list(const fmc_bm_lists *l, int64_t r, int64_t x) {
    for (int64_t e = l->off[r]; e < l->off[r + 1]; e++)
        if (l->idx[e] == x) return true;
    return false;
}

static void check_sorted(const fmc_bm_lists *l, int64_t nrows) {
    for (int64_t r = 0; r < nrows; r++)
        for (int64_t e = l->off[r] + 1; e < l->off[r + 1]; e++)
            CHECK(l->idx[e - 1] < l->idx[e], "list of row %lld not ascending", (long long)r);
}

/* Builds and compares tile by tile. */
static fmc_blockmask *check_build(const fmc_program *p, const fmc_env *env, const uint8_t *pts,
                                  bool violation, int64_t bq, int64_t bkv) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmc_build_status st;
    fmc_blockmask *m = fmc_blockmask_build(p, env, bq, bkv, 0, &d, &st);
    if (violation) {
        CHECK(!m && st == FMC_BUILD_SAFETY && d.errors > 0,
              "brute force found a violation but the build gave status %d", (int)st);
        fmd_diags_clear(&d);
        return NULL;
    }
    if (!m) fmd_diags_render(&d, stderr, false);
    CHECK(m != NULL, "build failed with status %d but no point breaks a rule", (int)st);
    fmd_diags_clear(&d);
    CHECK(m->bcast_batch == !p->reads_batch && m->bcast_heads == !p->reads_heads, "broadcast");
    int64_t full = 0, partial = 0, empty = 0, truth = 0;
    int64_t slices = m->stored_batch * m->stored_heads;
    check_sorted(&m->full, slices * m->nqb);
    check_sorted(&m->partial, slices * m->nqb);
    check_sorted(&m->t_full, slices * m->nkvb);
    check_sorted(&m->t_partial, slices * m->nkvb);
    for (int64_t b = 0; b < env->batch; b++)
        for (int64_t h = 0; h < env->heads; h++)
            for (int64_t i = 0; i < m->nqb; i++)
                for (int64_t j = 0; j < m->nkvb; j++) {
                    int64_t t = 0, f = 0;
                    int64_t q1 = (i + 1) * bq < env->q_len ? (i + 1) * bq : env->q_len;
                    int64_t k1 = (j + 1) * bkv < env->kv_len ? (j + 1) * bkv : env->kv_len;
                    for (int64_t q = i * bq; q < q1; q++)
                        for (int64_t kv = j * bkv; kv < k1; kv++) {
                            if (pts[AT(b, h, q, kv)]) t++;
                            else f++;
                        }
                    truth += t;
                    bool clipped = (i + 1) * bq > env->q_len || (j + 1) * bkv > env->kv_len;
                    int want = t == 0 ? 0 : (f == 0 && !clipped) ? 2 : 1;
                    int64_t r = fmc_bm_row(m, b, h, i);
                    bool isf = in_list(&m->full, r, j), isp = in_list(&m->partial, r, j);
                    CHECK(!(isf && isp), "tile in both lists");
                    int got = isf ? 2 : isp ? 1 : 0;
                    CHECK(got == want,
                          "tile b=%lld h=%lld (%lld, %lld): BlockMask says %s, brute force %s",
                          (long long)b, (long long)h, (long long)i, (long long)j,
                          got == 2 ? "full" : got ? "partial" : "empty",
                          want == 2 ? "full" : want ? "partial" : "empty");
                    int64_t sb = m->bcast_batch ? 0 : b, sh = m->bcast_heads ? 0 : h;
                    int64_t tr = (sb * m->stored_heads + sh) * m->nkvb + j;
                    CHECK(in_list(&m->t_full, tr, i) == isf && in_list(&m->t_partial, tr, i) == isp,
                          "transpose disagrees at (%lld, %lld)", (long long)i, (long long)j);
                    full += want == 2;
                    partial += want == 1;
                    empty += want == 0;
                }
    CHECK(m->stats.full == full && m->stats.partial == partial && m->stats.empty == empty,
          "stats %lld/%lld/%lld, expected %lld/%lld/%lld", (long long)m->stats.full,
          (long long)m->stats.partial, (long long)m->stats.empty, (long long)full,
          (long long)partial, (long long)empty);
    if (m->stats.true_positions >= 0)
        CHECK(m->stats.true_positions == truth, "true positions %lld, expected %lld",
              (long long)m->stats.true_positions, (long long)truth);
    CHECK(fmc_blockmask_count_true(m) == truth, "count_true %lld, expected %lld",
          (long long)m->stats.true_positions, (long long)truth);
    return m;
}

/* The analysis over random boxes: every claim it makes must hold. */
static void check_boxes(const fmc_program *p, const fmc_env *env, const uint8_t *pts, tu_rng *r,
                        int n) {
    fmc_rtab *tabs = fmc_rtab_build(p, env);
    fmc_absint A;
    assert_true(tabs && fmc_absint_init(&A, p, env, tabs));
    for (int it = 0; it < n; it++) {
        fmc_box box;
        box.b0 = tu_rng_range(r, 0, env->batch - 1);
        box.b1 = tu_rng_range(r, 0, 3) ? box.b0 : tu_rng_range(r, box.b0, env->batch - 1);
        box.h0 = tu_rng_range(r, 0, env->heads - 1);
        box.h1 = tu_rng_range(r, 0, 3) ? box.h0 : tu_rng_range(r, box.h0, env->heads - 1);
        box.q0 = tu_rng_range(r, 0, env->q_len - 1);
        box.q1 = tu_rng_range(r, box.q0, env->q_len - 1);
        box.k0 = tu_rng_range(r, 0, env->kv_len - 1);
        box.k1 = tu_rng_range(r, box.k0, env->kv_len - 1);
        fmc_abs_answer a = fmc_absint_eval(&A, &box, true);
        int64_t t = 0, f = 0, bad = 0;
        for (int64_t b = box.b0; b <= box.b1; b++)
            for (int64_t h = box.h0; h <= box.h1; h++)
                for (int64_t q = box.q0; q <= box.q1; q++)
                    for (int64_t kv = box.k0; kv <= box.k1; kv++) {
                        uint8_t x = pts[AT(b, h, q, kv)];
                        t += x == 1;
                        f += x == 0;
                        bad += x == 2;
                    }
        if (!a.safe) continue;
        CHECK(bad == 0, "analysis calls box b[%lld,%lld] h[%lld,%lld] q[%lld,%lld] kv[%lld,%lld] "
                        "safe but %lld points break a rule",
              (long long)box.b0, (long long)box.b1, (long long)box.h0, (long long)box.h1,
              (long long)box.q0, (long long)box.q1, (long long)box.k0, (long long)box.k1,
              (long long)bad);
        const char *what = a.cls == FMC_ABS_TRUE ? "all-true" : a.cls == FMC_ABS_FALSE ? "all-false" : "proven mixed";
        bool ok = a.cls == FMC_ABS_TRUE ? f == 0 : a.cls == FMC_ABS_FALSE ? t == 0 : (!a.exact || (t > 0 && f > 0));
        CHECK(ok, "analysis calls box b[%lld,%lld] h[%lld,%lld] q[%lld,%lld] kv[%lld,%lld] %s but "
                  "it has %lld true and %lld false points",
              (long long)box.b0, (long long)box.b1, (long long)box.h0, (long long)box.h1,
              (long long)box.q0, (long long)box.q1, (long long)box.k0, (long long)box.k1, what,
              (long long)t, (long long)f);
        if (a.ntrue >= 0)
            CHECK(a.ntrue == t, "analysis counts %lld true points, brute force %lld",
                  (long long)a.ntrue, (long long)t);
    }
    fmc_absint_free(&A);
    fmc_rtab_free(tabs);
}

static void one_case(tu_rng *r, int guarded, int64_t *stats) {
    char *src = mg_program(r, guarded, NULL);
    g_src = src;
    compiled c;
    while (!compile(src, NULL, &c, false)) {
        /* The language rejects a divisor that folds to 0 even on a branch
         * never taken; draw another program. */
        if (!g_zero_divisor) fail_msg("generated program does not compile");
        fmd_program_free(c.ast);
        free(src);
        src = mg_program(r, guarded, NULL);
        g_src = src;
    }
    const fmc_program *p = c.p;
    int64_t B = tu_rng_range(r, 1, 2), H = tu_rng_range(r, 1, 3);
    int64_t Q = tu_rng_range(r, 1, 3) == 0 ? tu_rng_range(r, 1, 8) : tu_rng_range(r, 1, 48);
    int64_t KV = tu_rng_range(r, 0, 2) == 0 ? Q : tu_rng_range(r, 1, 48);
    int64_t bq = tu_rng_range(r, 1, 3) == 0 ? tu_rng_range(r, 1, 3) : tu_rng_range(r, 1, 17);
    int64_t bkv = tu_rng_range(r, 0, 1) ? bq : tu_rng_range(r, 1, 17);
    if (tu_rng_range(r, 0, 7) == 0) {
        /* Larger tiles: open tiles are settled by sub-box analysis. */
        B = H = 1;
        Q = tu_rng_range(r, 20, 130);
        KV = tu_rng_range(r, 0, 1) ? Q : tu_rng_range(r, 20, 130);
        bq = tu_rng_range(r, 16, 70);
        bkv = tu_rng_range(r, 16, 70);
    }
    snprintf(g_shape, sizeof g_shape, "B=%lld H=%lld Q=%lld KV=%lld block %lldx%lld",
             (long long)B, (long long)H, (long long)Q, (long long)KV, (long long)bq,
             (long long)bkv);
    world w;
    world_bind(&w, p, r, B, H, Q, KV);
    bool violation, fits32;
    uint8_t *pts = brute(p, &w.env, &violation, &fits32);
    check_rows(p, &w.env, pts);
    fmc_blockmask *m = check_build(p, &w.env, pts, violation, bq, bkv);
    check_boxes(p, &w.env, pts, r, 12);
    if (fmc_program_fits_int32(p, &w.env))
        CHECK(fits32, "fmc_program_fits_int32 is true but a value leaves int32");
    stats[0]++;
    stats[1] += violation;
    if (m) {
        stats[2] += m->stats.tiles_by_analysis;
        stats[3] += m->stats.tiles_by_points;
    }
    fmc_blockmask_free(m);
    free(pts);
    world_free(&w);
    compiled_free(&c);
    free(src);
    g_src = NULL;
}

static void test_random_masks(void **state) {
    (void)state;
    int n = tu_sanitizer_run() ? 666 : 4000;
    tu_rng r = {20261122};
    int64_t stats[4] = {0};
    for (int i = 0; i < n; i++) one_case(&r, i % 3 == 0 ? 20 : 90, stats);
    printf("random masks: %lld cases, %lld refused for a violation, tiles by analysis %lld, "
           "by points %lld\n",
           (long long)stats[0], (long long)stats[1], (long long)stats[2], (long long)stats[3]);
    /* The generator must exercise both outcomes and both deciders. */
    assert_true(stats[1] > n / 50 && stats[1] < n / 2);
    assert_true(stats[2] > 0 && stats[3] > 0);
}

/* ---- standard masks --------------------------------------------------------- */

static char *read_mask(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/examples/masks/%s.mask", FM_SOURCE_DIR, name);
    return tu_read_file(path, NULL);
}

/* Meaningful data for the standard masks' inputs. */
static void fill_standard(tu_rng *r, const char *name, int32_t *x, int64_t n, int64_t kv_len) {
    if (!strcmp(name, "doc") || !strcmp(name, "q_req") || !strcmp(name, "kv_req") ||
        !strcmp(name, "set_id")) {
        int32_t cur = 0;
        for (int64_t i = 0; i < n; i++) {
            if (i > 0 && tu_rng_range(r, 0, 40) == 0) cur++;
            x[i] = cur;
        }
        if (!strcmp(name, "set_id"))
            for (int64_t i = n - n / 5; i < n; i++) x[i] = -1;
    } else if (!strcmp(name, "q_pos") || !strcmp(name, "kv_pos")) {
        for (int64_t i = 0; i < n; i++) x[i] = (int32_t)(i % 37);
    } else if (!strcmp(name, "enter") || !strcmp(name, "leave")) {
        /* Euler tour of a random tree where node i's parent precedes it:
         * enter[i] = i in a preorder numbering, leave[i] = last descendant. */
        for (int64_t i = 0; i < n; i++) x[i] = (int32_t)i;
        if (!strcmp(name, "leave")) {
            int32_t *parent = malloc((size_t)(n > 0 ? n : 1) * sizeof *parent);
            for (int64_t i = 0; i < n; i++) {
                parent[i] = i ? (int32_t)tu_rng_range(r, i > 3 ? i - 3 : 0, i - 1) : -1;
                x[i] = (int32_t)i;
            }
            /* In preorder with parents just before, a node's subtree is the
             * following run of nodes whose ancestor chain reaches it. */
            for (int64_t i = n - 1; i > 0; i--)
                if (x[i] > x[parent[i]]) x[parent[i]] = x[i];
            free(parent);
        }
    } else {
        for (int64_t i = 0; i < n; i++) x[i] = (int32_t)tu_rng_range(r, 0, kv_len);
    }
}

static const char *const standard[] = {
    "full",          "causal",      "causal_bottom_right", "sliding_window",
    "sliding_with_sinks", "prefix_lm", "chunked_causal",   "dilated_sliding",
    "document",      "batched_prefill", "tree",           "padding",
    "decoder_self",  "cross_attention", "per_head",        "set_padding"};

static void test_standard_masks(void **state) {
    (void)state;
    tu_rng r = {7};
    const int64_t shapes[][5] = {/* B H Q KV block */
                                 {1, 1, 1, 1, 128},     {1, 1, 300, 300, 64},
                                 {2, 3, 130, 130, 16},  {1, 2, 515, 515, 128},
                                 {1, 1, 200, 200, 7}};
    int nshapes = tu_sanitizer_run() ? 3 : 5;
    int tested = 0;
    for (size_t i = 0; i < sizeof standard / sizeof standard[0]; i++) {
        char *src = read_mask(standard[i]);
        if (!src) {
            printf("standard mask %s: not present yet, skipped\n", standard[i]);
            continue;
        }
        compiled c;
        assert_true(compile(src, NULL, &c, false));
        for (int s = 0; s < nshapes; s++) {
            g_src = src;
            snprintf(g_shape, sizeof g_shape, "%s B=%lld H=%lld Q=KV=%lld block %lld",
                     standard[i], (long long)shapes[s][0], (long long)shapes[s][1],
                     (long long)shapes[s][2], (long long)shapes[s][4]);
            world w;
            world_bind(&w, c.p, &r, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);
            for (size_t k = 0; k < c.p->ninputs; k++) {
                int64_t n = 1;
                for (size_t d = 0; d < c.p->inputs[k].rank; d++) n *= w.dims[k][d];
                fill_standard(&r, c.p->inputs[k].name, w.arrays[k], n, shapes[s][3]);
            }
            bool violation, fits32;
            uint8_t *pts = brute(c.p, &w.env, &violation, &fits32);
            CHECK(!violation, "standard mask breaks a safety rule");
            fmc_blockmask *m = check_build(c.p, &w.env, pts, false, shapes[s][4], shapes[s][4]);
            fmc_blockmask_free(m);
            free(pts);
            world_free(&w);
            tested++;
        }
        compiled_free(&c);
        free(src);
        g_src = NULL;
    }
    assert_true(tested > 0);
}

/* ---- zero evaluations --------------------------------------------------------- */

static fmc_blockmask *build_src(const char *src, compiled *c, world *w, int64_t len, int64_t block,
                                double *ms) {
    assert_true(compile(src, NULL, c, false));
    tu_rng r = {3};
    world_bind(w, c->p, &r, 1, 1, len, len);
    fmd_diags d;
    fmd_diags_init(&d);
    fmc_build_status st;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fmc_blockmask *m = fmc_blockmask_build(c->p, &w->env, block, block, 0, &d, &st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (ms) *ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (!m) fmd_diags_render(&d, stderr, false);
    fmd_diags_clear(&d);
    assert_non_null(m);
    return m;
}

static void test_zero_evaluations(void **state) {
    (void)state;
    static const char *const srcs[] = {
        "mask causal = kv <= q;",
        "mask bottom_right = kv <= q + KV_LEN - Q_LEN;",
        "param window = 1024; mask sliding = kv <= q && q - kv < window;",
        "param prefix = 2048; mask prefix_lm = kv < prefix || kv <= q;",
        "param chunk = 4096; mask chunked = kv <= q && q / chunk == kv / chunk;",
        "param w = 512; mask local = abs(q - kv) < w;",
        "mask full = true;",
    };
    for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
        compiled c;
        world w;
        double ms;
        fmc_blockmask *m = build_src(srcs[i], &c, &w, 131072, 128, &ms);
        printf("%-70s %8.2f ms, %lld partial, %lld regions\n", srcs[i], ms,
               (long long)m->stats.partial, (long long)m->stats.regions_decided);
        assert_int_equal(m->stats.evaluations, 0);
        assert_int_equal(m->stats.tiles_by_points, 0);
        assert_true(m->stats.true_positions >= 0);
        fmc_blockmask_free(m);
        world_free(&w);
        compiled_free(&c);
    }
}

/* Document masking decides exactly with step-monotone ids; with the causal
 * condition only the diagonal tiles a document boundary crosses are
 * settled by points, one row each. */
static void test_documents_exact(void **state) {
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
    compiled c;
    world w;
    assert_true(compile(causal ? "input doc[KV_LEN]; mask document = kv <= q && doc[q] == doc[kv];"
                               : "input doc[KV_LEN]; mask document = doc[q] == doc[kv];",
                        NULL, &c, false));
    tu_rng r = {11};
    world_bind(&w, c.p, &r, 1, 1, 65536, 65536);
    int32_t *doc = w.arrays[0];
    int32_t cur = 0;
    for (int64_t i = 0; i < 65536; i++) {
        if (i > 0 && tu_rng_range(&r, 0, 650) == 0) cur++;
        doc[i] = cur;
    }
    fmd_diags d;
    fmd_diags_init(&d);
    fmc_build_status st;
    fmc_blockmask *m = fmc_blockmask_build(c.p, &w.env, 128, 128, 0, &d, &st);
    assert_non_null(m);
    printf("documents (%d boundaries)%s: %lld evaluations\n", cur,
           causal ? ", causal" : "", (long long)m->stats.evaluations);
    if (causal) assert_true(m->stats.evaluations <= 128 * (int64_t)cur);
    else assert_int_equal(m->stats.evaluations, 0);
    fmc_blockmask_free(m);
    fmd_diags_clear(&d);
    world_free(&w);
    compiled_free(&c);
    }
}

/* A sliding window at a million tokens visits regions along the band only. */
static void test_million_tokens(void **state) {
    (void)state;
    compiled c;
    world w;
    double ms;
    fmc_blockmask *m =
        build_src("param window = 4096; mask s = kv <= q && q - kv < window;", &c, &w, 1 << 20, 128,
                  &ms);
    printf("sliding window at 2^20 tokens: %.1f ms, %lld regions decided\n", ms,
           (long long)m->stats.regions_decided);
    assert_int_equal(m->stats.evaluations, 0);
    /* 8192 x 8192 tiles exist; row i touches tiles i-32 .. i. */
    assert_true(m->stats.regions_decided < 600000);
    assert_int_equal(m->stats.full + m->stats.partial, 528 + (8192 - 32) * 33);
    fmc_blockmask_free(m);
    world_free(&w);
    compiled_free(&c);
}

/* Memory budget and bad arguments. */
static void test_limits(void **state) {
    (void)state;
    compiled c;
    world w;
    assert_true(compile("mask full = true;", NULL, &c, false));
    tu_rng r = {1};
    world_bind(&w, c.p, &r, 1, 1, 1 << 16, 1 << 16);
    fmd_diags d;
    fmd_diags_init(&d);
    fmc_build_status st;
    fmc_blockmask *m = fmc_blockmask_build(c.p, &w.env, 16, 16, 1 << 20, &d, &st);
    assert_null(m);
    assert_int_equal(st, FMC_BUILD_LIMIT);
    assert_true(d.errors > 0 && strstr(d.items[0].message, "memory budget"));
    fmd_diags_clear(&d);
    m = fmc_blockmask_build(c.p, &w.env, 0, 16, 0, &d, &st);
    assert_null(m);
    assert_int_equal(st, FMC_BUILD_INVALID);
    fmd_diags_clear(&d);
    world_free(&w);
    compiled_free(&c);
}

/* Shapes and values at the edges of int64: no overflow, no hang, and the
 * right answer (run under UBSan in the sanitizer build). */
static void test_extreme_shapes(void **state) {
    (void)state;
    const int64_t big = (int64_t)1 << 62;
    static const struct {
        const char *src;
        int64_t B, H, Q, KV, bq, bkv, param;
        fmc_build_status want;
    } cases[] = {
        {"param w = 1; mask m = kv <= q && q - kv < w;", 1, 1, (int64_t)1 << 62, (int64_t)1 << 62,
         (int64_t)1 << 60, (int64_t)1 << 60, INT64_MAX, FMC_BUILD_OK},
        {"param w = 1; mask m = kv <= q;", 1, 1, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX, 0,
         FMC_BUILD_OK},
        {"param w = 1; mask m = abs(q - kv) < w;", 1, 1, (int64_t)1 << 62, (int64_t)1 << 62,
         (int64_t)1 << 61, (int64_t)3 << 59, 5, FMC_BUILD_OK},
        {"param w = 1; mask m = q * 3 > kv;", 1, 1, (int64_t)1 << 62, 1000, (int64_t)1 << 61,
         1000, 0, FMC_BUILD_SAFETY},
        {"param w = 1; mask m = q + kv >= w;", 1, 1, INT64_MAX, INT64_MAX, (int64_t)1 << 62,
         (int64_t)1 << 62, 0, FMC_BUILD_SAFETY},
        {"param w = 1; mask m = kv % w == 0;", 1, 1, 1000, 1000, 7, 9, 0, FMC_BUILD_SAFETY},
        {"param w = 1; mask m = w > 0;", (int64_t)1 << 40, (int64_t)1 << 20, 1000, 1000, 100, 100,
         1, FMC_BUILD_OK},
        {"param w = 1; mask m = b + h < w;", (int64_t)1 << 40, 3, 1000, 1000, 100, 100, 1,
         FMC_BUILD_LIMIT},
    };
    (void)big;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        compiled c;
        assert_true(compile(cases[i].src, NULL, &c, false));
        int64_t params[1] = {cases[i].param};
        fmc_env env = {cases[i].B, cases[i].H, cases[i].Q, cases[i].KV, params, NULL, NULL, NULL};
        fmd_diags d;
        fmd_diags_init(&d);
        fmc_build_status st;
        fmc_blockmask *m =
            fmc_blockmask_build(c.p, &env, cases[i].bq, cases[i].bkv, 0, &d, &st);
        if (st != cases[i].want) {
            fmd_diags_render(&d, stderr, false);
            fail_msg("case %zu (%s): status %d, expected %d", i, cases[i].src, (int)st,
                     (int)cases[i].want);
        }
        if (m) {
            assert_true(m->stats.evaluations < 100000);
            assert_true(m->stats.full >= 0 && m->stats.partial >= 0 && m->stats.empty >= 0);
        } else {
            assert_true(d.errors > 0);
        }
        fmc_blockmask_free(m);
        fmd_diags_clear(&d);
        compiled_free(&c);
    }
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_masks),     cmocka_unit_test(test_standard_masks),
        cmocka_unit_test(test_zero_evaluations), cmocka_unit_test(test_documents_exact),
        cmocka_unit_test(test_million_tokens),   cmocka_unit_test(test_limits),
        cmocka_unit_test(test_extreme_shapes),
    };
    return TU_RUN(tests, argc, argv);
}
