/* Fuzz target: the BlockMask build against brute force.
 *
 * The bytes drive everything: a mask program (usually drawn from the
 * grammar generator the property tests use, tests/mask_gen.h, with each
 * choice taken from the next fuzz byte, so most inputs are valid programs;
 * sometimes raw source text), a small shape and block sizes, param values
 * (including the extremes of int64), input arrays (of the declared
 * dimensions, or deliberately one off) and a memory budget. The program is
 * built through the public API, then checked against an evaluation of every
 * point of the shape:
 *   - the build succeeds iff no point breaks a safety rule (and the
 *     bindings fit);
 *   - every tile is classified exactly (empty / full / partial as the
 *     language page defines them), rows and columns agree, the statistics
 *     add up, and a broadcast slice really is the same for every batch/head.
 * Any disagreement is a __builtin_trap(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compiler/eval.h"
#include "runtime/api/api_internal.h"
#include "fuzz/fuzz_util.h"

/* ---- the byte stream ---- */

static uint64_t take_u64(void) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | take();
    return v;
}

/* mask_gen.h draws its choices through these: here they read fuzz bytes
 * (0 once the bytes run out, which picks leaves and ends the program). */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#include "mask_gen.h"
#pragma clang diagnostic pop

uint64_t tu_rng_next(tu_rng *r) {
    (void)r;
    return take_u64();
}

int64_t tu_rng_range(tu_rng *r, int64_t lo, int64_t hi) {
    (void)r;
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    uint64_t x = span <= 256 ? take() : (uint64_t)take() << 8 | take();
    return (int64_t)((uint64_t)lo + (span ? x % span : x));
}

static int64_t small_len(int64_t max) {
    /* Mostly short sequences (fast runs), sometimes up to max. */
    unsigned a = take();
    if (a < 200) return 1 + a % 40;
    return 1 + (int64_t)((a << 8 | take()) % (unsigned)max);
}

static int64_t param_value(void) {
    static const int64_t special[] = {0, 1, -1, 2, 3, 7, 64, 128, 255, 256, 1000,
                                      INT32_MAX, INT32_MIN, (int64_t)1 << 32, INT64_MAX,
                                      INT64_MIN, INT64_MAX - 1, INT64_MIN + 1};
    unsigned k = take();
    if (k < 128) return (int64_t)(k % 40) - 8;
    if (k < 200) return special[k % (sizeof special / sizeof special[0])];
    return (int64_t)take_u64();
}

static void fill_input(int32_t *x, int64_t n) {
    unsigned kind = take() % 5;
    int32_t cur = 0;
    for (int64_t i = 0; i < n; i++) {
        unsigned v = take();
        switch (kind) {
        case 0: x[i] = (int32_t)(v % 6); break;
        case 1: /* document ids: non-decreasing */
            if (v & 1) cur++;
            x[i] = cur;
            break;
        case 2: x[i] = (int32_t)(v % 80) - 3; break;
        case 3: x[i] = (int32_t)(v << 24 | v << 16 | take() << 8 | take()); break;
        default: x[i] = v & 1 ? INT32_MAX - (int32_t)(v >> 1) : INT32_MIN + (int32_t)(v >> 1); break;
        }
    }
}

static void oops(const char *what, fm_diagnostics *diags, const char *src) {
    fprintf(stderr, "fuzz_blockmask: %s\n--- program\n%s\n", what, src ? src : "(null)");
    char *t = fm_diagnostics_format(diags, false);
    if (t) fprintf(stderr, "--- diagnostics\n%s", t);
    fm_free(t);
    __builtin_trap();
}

#define MAX_POINTS 40000
#define MAX_INPUT 200000

typedef struct run {
    const char *src;
    fm_diagnostics *diags;
    fm_shape s;
    int64_t bq, bkv;
    const fmc_program *p;
    fmc_env env;
    uint8_t *truth; /* [batch][heads][q][kv] */
} run;

/* Evaluates every point, row by row with the vectorised evaluator, and a
 * sample of points again with the point evaluator (the two must agree).
 * Returns false at the first violation. */
static bool brute_force(run *r, fmc_violation *v) {
    int64_t *regs = malloc((r->p->count + 1) * sizeof *regs);
    void *scratch = malloc(fmc_row_scratch_bytes(r->p, r->s.kv_len) + 16);
    if (!regs || !scratch) abort();
    uint8_t *row = r->truth;
    bool ok = true;
    for (int64_t b = 0; b < r->s.batch && ok; b++)
        for (int64_t h = 0; h < r->s.heads && ok; h++)
            for (int64_t q = 0; q < r->s.q_len && ok; q++, row += r->s.kv_len) {
                ok = fmc_eval_row(r->p, &r->env, b, h, q, 0, r->s.kv_len, row, scratch, v);
                for (int64_t kv = (q * 5 + b + h) % 11; ok && kv < r->s.kv_len; kv += 11) {
                    bool val = false;
                    fmc_violation pv;
                    if (!fmc_eval_point(r->p, &r->env, b, h, q, kv, regs, &val, &pv) ||
                        val != (row[kv] != 0))
                        oops("the point and row evaluators disagree", r->diags, r->src);
                }
            }
    free(regs);
    free(scratch);
    return ok;
}

static bool truth_at(const run *r, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return r->truth[((b * r->s.heads + h) * r->s.q_len + q) * r->s.kv_len + kv];
}

/* What the language page says tile (b, h, i, j) is: 0 empty, 1 partial, 2 full. */
static int expected_class(const run *r, int64_t b, int64_t h, int64_t i, int64_t j) {
    int64_t q0 = i * r->bq, q1 = q0 + r->bq, k0 = j * r->bkv, k1 = k0 + r->bkv;
    bool clipped = q1 > r->s.q_len || k1 > r->s.kv_len;
    if (q1 > r->s.q_len) q1 = r->s.q_len;
    if (k1 > r->s.kv_len) k1 = r->s.kv_len;
    int64_t t = 0;
    for (int64_t q = q0; q < q1; q++)
        for (int64_t kv = k0; kv < k1; kv++) t += truth_at(r, b, h, q, kv);
    if (t == 0) return 0;
    return t == (q1 - q0) * (k1 - k0) && !clipped ? 2 : 1;
}

/* Marks the listed blocks in cls (1 partial, 2 full); false when a list is
 * not ascending, out of range or overlaps the other. */
static bool mark(int8_t *cls, int64_t n, const int32_t *list, int64_t count, int8_t c) {
    for (int64_t k = 0; k < count; k++) {
        if (list[k] < 0 || list[k] >= n || (k && list[k] <= list[k - 1]) || cls[list[k]]) return false;
        cls[list[k]] = c;
    }
    return true;
}

static void check_tiles(run *r, const fm_blockmask *bm) {
    fm_blockmask_info info;
    if (fm_blockmask_get_info(bm, &info) != FM_OK) oops("get_info failed", r->diags, r->src);
    int64_t nqb = (r->s.q_len + r->bq - 1) / r->bq, nkvb = (r->s.kv_len + r->bkv - 1) / r->bkv;
    if (info.num_q_blocks != nqb || info.num_kv_blocks != nkvb)
        oops("wrong block counts", r->diags, r->src);
    int64_t counts[3] = {0, 0, 0}, trues = 0;
    int64_t n = nqb > nkvb ? nqb : nkvb;
    int8_t *cls = malloc((size_t)n), *col = malloc((size_t)n);
    int8_t *grid = malloc((size_t)(nqb * nkvb));
    if (!cls || !col || !grid) abort();
    for (int64_t b = 0; b < r->s.batch; b++)
        for (int64_t h = 0; h < r->s.heads; h++) {
            for (int64_t i = 0; i < nqb; i++) {
                const int32_t *full, *part;
                int64_t nf, np;
                if (fm_blockmask_row(bm, b, h, i, &full, &nf, &part, &np) != FM_OK)
                    oops("row failed", r->diags, r->src);
                memset(cls, 0, (size_t)nkvb);
                if (!mark(cls, nkvb, full, nf, 2) || !mark(cls, nkvb, part, np, 1))
                    oops("row lists malformed", r->diags, r->src);
                for (int64_t j = 0; j < nkvb; j++) {
                    int e = expected_class(r, b, h, i, j);
                    if (cls[j] != e) {
                        fprintf(stderr, "tile b=%lld h=%lld i=%lld j=%lld is %d, expected %d\n",
                                (long long)b, (long long)h, (long long)i, (long long)j, cls[j], e);
                        oops("misclassified tile", r->diags, r->src);
                    }
                    grid[i * nkvb + j] = cls[j];
                    counts[e]++;
                }
            }
            for (int64_t j = 0; j < nkvb; j++) {
                const int32_t *full, *part;
                int64_t nf, np;
                if (fm_blockmask_column(bm, b, h, j, &full, &nf, &part, &np) != FM_OK)
                    oops("column failed", r->diags, r->src);
                memset(col, 0, (size_t)nqb);
                if (!mark(col, nqb, full, nf, 2) || !mark(col, nqb, part, np, 1))
                    oops("column lists malformed", r->diags, r->src);
                for (int64_t i = 0; i < nqb; i++)
                    if (col[i] != grid[i * nkvb + j]) oops("column disagrees with rows", r->diags, r->src);
            }
            for (int64_t q = 0; q < r->s.q_len; q++)
                for (int64_t kv = 0; kv < r->s.kv_len; kv++) {
                    bool t = truth_at(r, b, h, q, kv), got = !t;
                    trues += t;
                    /* The public evaluator on a sample of points (it is the
                       same evaluator as the brute force's; this checks the
                       BlockMask's copy of params and inputs). */
                    if ((q * 7 + kv) % 13 == 0 &&
                        (fm_blockmask_eval(bm, b, h, q, kv, &got) != FM_OK || got != t))
                        oops("fm_blockmask_eval disagrees", r->diags, r->src);
                    if (info.broadcast_batch && t != truth_at(r, 0, h, q, kv))
                        oops("broadcast over batch, but the mask depends on b", r->diags, r->src);
                    if (info.broadcast_heads && t != truth_at(r, b, 0, q, kv))
                        oops("broadcast over heads, but the mask depends on h", r->diags, r->src);
                }
        }
    int64_t counted = -1;
    if (info.true_positions == -1 && (fm_blockmask_count_true(bm, &counted) != FM_OK || counted != trues))
        oops("fm_blockmask_count_true disagrees with brute force", r->diags, r->src);
    if (info.empty_tiles != counts[0] || info.partial_tiles != counts[1] ||
        info.full_tiles != counts[2] ||
        (info.true_positions != trues && info.true_positions != -1 /* not counted */)) {
        fprintf(stderr, "info: empty %lld partial %lld full %lld true %lld; counted %lld %lld %lld %lld\n",
                (long long)info.empty_tiles, (long long)info.partial_tiles,
                (long long)info.full_tiles, (long long)info.true_positions, (long long)counts[0],
                (long long)counts[1], (long long)counts[2], (long long)trues);
        oops("statistics do not add up", r->diags, r->src);
    }
    free(cls);
    free(col);
    free(grid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g_p = data;
    g_n = size;
    unsigned mode = take();
    char *src = NULL;
    if (mode % 8 == 0) {
        /* Raw text up to a NUL byte. */
        size_t len = 0;
        while (len < g_n && len < 4096 && g_p[len]) len++;
        src = malloc(len + 1);
        if (!src) return 0;
        memcpy(src, g_p, len);
        src[len] = '\0';
        g_p += len;
        g_n -= len;
        take();
    } else {
        tu_rng rng = {0};
        src = mg_program(&rng, (int)(take() % 101), NULL);
    }
    fm_diagnostics *diags = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_bindings *bind = NULL;
    fm_blockmask *bm = NULL;
    int32_t *arrays[FMD_MAX_RANK * 4] = {0};
    int64_t *params = NULL;
    const int32_t **inputs = NULL;
    int64_t(*dims)[FMD_MAX_RANK] = NULL;
    run r = {.src = src, .diags = diags};
    if (!diags || fm_compile_string("fuzz.mask", src, strlen(src), diags, &prog) != FM_OK) goto done;
    size_t nm = fm_program_mask_count(prog);
    const char *name = take() % 4 == 0 ? fm_program_mask_name(prog, take() % nm) : NULL;
    if (fm_mask_select(prog, name, diags, &mask) != FM_OK) oops("select failed", diags, src);
    if (fm_bindings_create(mask, &bind) != FM_OK) goto done;

    r.s.batch = 1 + take() % 3;
    r.s.heads = 1 + take() % 3;
    r.s.q_len = small_len(300);
    r.s.kv_len = take() % 4 == 0 ? r.s.q_len : small_len(300);
    while (r.s.batch * r.s.heads * r.s.q_len * r.s.kv_len > MAX_POINTS) {
        if (r.s.q_len > r.s.kv_len) r.s.q_len = (r.s.q_len + 1) / 2;
        else r.s.kv_len = (r.s.kv_len + 1) / 2;
    }
    r.bq = 1 + take() % 64;
    r.bkv = take() % 3 == 0 ? r.bq : 1 + take() % 64;
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = r.bq, .block_kv = r.bkv};
    unsigned budget = take();
    if (budget >= 224) opts.memory_budget = 8 * (int64_t)(budget - 223) * (1 + take());

    const fmc_program *p = mask->shared->program;
    r.p = p;
    params = calloc(p->nparams + 1, sizeof *params);
    inputs = calloc(p->ninputs + 1, sizeof *inputs);
    dims = calloc(p->ninputs + 1, sizeof *dims);
    if (!params || !inputs || !dims) goto done;
    for (size_t i = 0; i < p->nparams; i++) {
        params[i] = p->params[i].default_value;
        if (!p->params[i].has_default || take() % 2) {
            params[i] = param_value();
            if (fm_bindings_set_param(bind, p->params[i].name, params[i], diags) != FM_OK)
                oops("set_param refused a reachable param", diags, src);
        }
    }
    r.env = (fmc_env){r.s.batch, r.s.heads, r.s.q_len, r.s.kv_len, params, inputs,
                      (const int64_t(*)[FMD_MAX_RANK])dims, NULL};
    bool bad_binding = false;
    for (size_t i = 0; i < p->ninputs && i < sizeof arrays / sizeof arrays[0]; i++) {
        const fmc_input_info *in = &p->inputs[i];
        int64_t count = 1;
        for (size_t k = 0; k < in->rank; k++) {
            dims[i][k] = fmc_dim_value(&in->dims[k], &r.env);
            if (dims[i][k] < 0 || dims[i][k] > MAX_INPUT) goto done; /* not worth a build */
            count *= dims[i][k];
            if (count > MAX_INPUT) goto done;
        }
        int64_t bound[FMD_MAX_RANK];
        memcpy(bound, dims[i], sizeof bound);
        unsigned wrong = take();
        if (wrong >= 250) { /* one dimension off by one: a binding error */
            size_t k = wrong % in->rank;
            bound[k] += bound[k] > 0 && wrong % 2 ? -1 : 1;
            bad_binding = true;
        }
        int64_t bcount = 1;
        for (size_t k = 0; k < in->rank; k++) bcount *= bound[k];
        arrays[i] = malloc((size_t)(bcount > count ? bcount : count) * sizeof(int32_t) + 4);
        if (!arrays[i]) goto done;
        fill_input(arrays[i], bcount > count ? bcount : count);
        inputs[i] = arrays[i];
        if (fm_bindings_set_input(bind, in->name, arrays[i], in->rank, bound,
                                  take() % 2 ? FM_COPY : FM_BORROW, diags) != FM_OK)
            oops("set_input refused a reachable input", diags, src);
    }
    if (p->ninputs > sizeof arrays / sizeof arrays[0]) goto done;

    if (getenv("FM_FUZZ_VERBOSE")) {
        fprintf(stderr, "--- program\n%s--- shape %lld %lld %lld %lld, blocks %lld %lld, budget %lld%s\n",
                src, (long long)r.s.batch, (long long)r.s.heads, (long long)r.s.q_len,
                (long long)r.s.kv_len, (long long)r.bq, (long long)r.bkv,
                (long long)opts.memory_budget, bad_binding ? ", a wrong binding" : "");
        for (size_t i = 0; i < p->nparams; i++)
            fprintf(stderr, "param %s = %lld\n", p->params[i].name, (long long)params[i]);
        for (size_t i = 0; i < p->ninputs && i < sizeof arrays / sizeof arrays[0]; i++) {
            int64_t n = 1;
            for (size_t k = 0; k < p->inputs[i].rank; k++) n *= dims[i][k];
            fprintf(stderr, "input %s (%lld values):", p->inputs[i].name, (long long)n);
            for (int64_t k = 0; k < n && k < 64; k++) fprintf(stderr, " %d", arrays[i][k]);
            fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
        }
    }
    clock_t t0 = clock();
    fm_status st = fm_blockmask_build(mask, bind, r.s, &opts, diags, &bm);
    double build_ms = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
    if (getenv("FM_FUZZ_VERBOSE"))
        fprintf(stderr, "build: %s in %.1f ms\n", fm_status_string(st), build_ms);
    if (bad_binding) {
        if (st != FM_ERR_BINDING) oops("an input of the wrong size was not refused", diags, src);
        goto done;
    }
    if (st == FM_ERR_BINDING) oops("a binding error with every binding right", diags, src);
    if (st == FM_ERR_LIMIT) {
        if (!opts.memory_budget) oops("a limit hit by a tiny shape", diags, src);
        goto done;
    }
    if (st != FM_OK && st != FM_ERR_SAFETY) oops("unexpected status", diags, src);
    r.truth = malloc((size_t)(r.s.batch * r.s.heads * r.s.q_len * r.s.kv_len));
    if (!r.truth) abort();
    fmc_violation v;
    bool safe = brute_force(&r, &v);
    if (st == FM_ERR_SAFETY && safe) oops("refused, but no point breaks a rule", diags, src);
    if (st == FM_OK && !safe) {
        fprintf(stderr, "violation at b=%lld h=%lld q=%lld kv=%lld kind %d\n", (long long)v.b,
                (long long)v.h, (long long)v.q, (long long)v.kv, (int)v.kind);
        oops("built, but a point breaks a rule", diags, src);
    }
    if (st == FM_OK) {
        fm_blockmask_info info;
        fm_blockmask_get_info(bm, &info);
        if (opts.memory_budget && info.bytes > opts.memory_budget)
            oops("storage exceeds the memory budget", diags, src);
        check_tiles(&r, bm);
    }
done:
    free(r.truth);
    fm_blockmask_free(bm); /* before the arrays: it may borrow them */
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    free(params);
    free(inputs);
    free(dims);
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_program_free(prog);
    fm_diagnostics_free(diags);
    free(src);
    return 0;
}
