/* BlockMask build benchmark.
 *
 * For each standard example mask at Q_LEN = KV_LEN in {4096, 32768,
 * 131072} with 128 x 128 tiles: build time (best of several runs), tiles
 * by class, point evaluations, the bytes of the lists and the build's peak
 * memory (resident-set growth, measured in a child process); beside it the dense path (evaluate the predicate at
 * every position with the row evaluator, then reduce to tiles, as
 * PyTorch's create_block_mask does) where it finishes in reasonable time,
 * and the ratio of the two measured in the same run.
 *
 *   bench/blockmask [--quick] [--dense-max N] [--masks DIR]
 *
 * --quick: 4096 and 32768 only, dense at 4096 only. --masks defaults to
 * examples/masks (run from the repository root). Run it pinned to one
 * core (taskset -c 0). Times are the thread's CPU time (the code is
 * single-threaded), so other load on the machine does not inflate them. */
#define _GNU_SOURCE /* fork, pipe, malloc_trim (bench/peak_memory.h) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/peak_memory.h"
#include "compiler/blockmask.h"
#include "compiler/eval.h"
#include "compiler/ir.h"
#include "dsl/ast.h"


/* CPU time of this thread: everything here is single-threaded, and on a
 * machine shared with other work wall time would count their time too. */
static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint64_t rng_state = 12345;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n ids for `docs` documents of random lengths (at least one token each). */
static void fill_docs(int32_t *x, int64_t n, int64_t docs) {
    int64_t *cuts = malloc((size_t)(docs + 1) * sizeof *cuts);
    cuts[0] = 0;
    for (int64_t d = 1; d < docs; d++) cuts[d] = (int64_t)(rng_next() % (uint64_t)n);
    cuts[docs] = n;
    for (int64_t i = 1; i < docs; i++) /* insertion sort: docs is small */
        for (int64_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            int64_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    for (int64_t d = 0; d < docs; d++)
        for (int64_t i = cuts[d]; i < cuts[d + 1]; i++) x[i] = (int32_t)d;
    free(cuts);
}

static void fill_input(const char *name, int32_t *x, int64_t n, int64_t len) {
    if (!strcmp(name, "doc") || !strcmp(name, "q_req") || !strcmp(name, "kv_req") ||
        !strcmp(name, "set_id")) {
        fill_docs(x, n, 100);
        if (!strcmp(name, "set_id"))
            for (int64_t i = n - n / 8; i < n; i++) x[i] = -1;
    } else if (!strcmp(name, "q_pos") || !strcmp(name, "kv_pos")) {
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        fill_docs(ids, n, 100);
        for (int64_t i = 0, p = 0; i < n; i++) {
            p = i > 0 && ids[i] == ids[i - 1] ? p + 1 : 0;
            x[i] = (int32_t)p;
        }
        free(ids);
    } else if (!strcmp(name, "enter") || !strcmp(name, "leave")) {
        /* A random tree numbered in preorder (subtrees are contiguous), at
         * most 16 levels deep: enter[i] = i, leave[i] = its last descendant. */
        bool leave = !strcmp(name, "leave");
        int64_t path[16];
        int depth = 0;
        for (int64_t i = 0; i < n; i++) {
            if (depth > 0) {
                int keep = 1 + (int)(rng_next() % (uint64_t)depth); /* ancestors kept */
                if (depth == 16 && keep == 16) keep = 15;
                while (depth > keep) {
                    depth--;
                    if (leave) x[path[depth]] = (int32_t)(i - 1);
                }
            }
            path[depth++] = i;
            x[i] = (int32_t)i;
        }
        while (depth > 0) x[path[--depth]] = (int32_t)(n - 1);
        if (!leave)
            for (int64_t i = 0; i < n; i++) x[i] = (int32_t)i;
    } else {
        for (int64_t i = 0; i < n; i++) x[i] = (int32_t)(len - len / 8);
    }
}

typedef struct loaded {
    fmd_program *ast;
    fmc_program *p;
} loaded;

static bool load(const char *dir, const char *name, loaded *l) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.mask", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fmd_diags d;
    fmd_diags_init(&d);
    l->ast = fmd_parse(fmd_source_new(path, buf, n), &d);
    l->p = l->ast && fmd_check(l->ast, &d) ? fmc_lower(l->ast, NULL, &d) : NULL;
    if (!l->p) fmd_diags_render(&d, stderr, false);
    fmd_diags_clear(&d);
    return l->p != NULL;
}

typedef struct bound {
    fmc_env env;
    int64_t params[64];
    int32_t *arrays[16];
    const int32_t *ins[16];
    int64_t dims[16][FMD_MAX_RANK];
} bound;

static void bind(bound *b, const fmc_program *p, int64_t len) {
    memset(b, 0, sizeof *b);
    b->env.batch = 1;
    b->env.heads = 1;
    b->env.q_len = len;
    b->env.kv_len = len;
    for (size_t i = 0; i < p->nparams && i < 64; i++) b->params[i] = p->params[i].default_value;
    b->env.params = b->params;
    for (size_t i = 0; i < p->ninputs && i < 16; i++) {
        int64_t n = 1;
        for (size_t k = 0; k < p->inputs[i].rank; k++) {
            b->dims[i][k] = fmc_dim_value(&p->inputs[i].dims[k], &b->env);
            n *= b->dims[i][k];
        }
        b->arrays[i] = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
        fill_input(p->inputs[i].name, b->arrays[i], n, len);
        b->ins[i] = b->arrays[i];
    }
    b->env.inputs = b->ins;
    b->env.input_dims = (const int64_t(*)[FMD_MAX_RANK])b->dims;
}

static void unbind(bound *b) {
    for (int i = 0; i < 16; i++) free(b->arrays[i]);
}

typedef struct build_call {
    const fmc_program *p;
    const fmc_env *env;
    int64_t block;
} build_call;

static bool run_build(void *ctx) {
    const build_call *c = ctx;
    fmd_diags d;
    fmd_diags_init(&d);
    fmc_build_status st;
    fmc_blockmask *m = fmc_blockmask_build(c->p, c->env, c->block, c->block, 0, &d, &st);
    return m != NULL; /* the child exits: nothing to free */
}

/* Peak memory of one build (KiB, -1 where Linux's /proc interface is missing). */
static long build_peak_kib(const fmc_program *p, const fmc_env *env, int64_t block) {
    build_call c = {p, env, block};
    return bench_peak_kib(run_build, &c);
}

/* The dense path: every position, then a reduction to tile classes. */
static double dense(const fmc_program *p, const fmc_env *env, int64_t block, int64_t *full,
                    int64_t *partial) {
    int64_t L = env->kv_len, nkb = (L + block - 1) / block;
    uint8_t *row = malloc((size_t)L);
    int64_t *cnt = calloc((size_t)nkb, sizeof *cnt);
    void *scratch = malloc(fmc_row_scratch_bytes(p, 4096));
    double t0 = now_ms();
    *full = *partial = 0;
    for (int64_t q0 = 0; q0 < env->q_len; q0 += block) {
        int64_t q1 = q0 + block < env->q_len ? q0 + block : env->q_len;
        memset(cnt, 0, (size_t)nkb * sizeof *cnt);
        for (int64_t q = q0; q < q1; q++) {
            for (int64_t k = 0; k < L; k += 4096) {
                int64_t n = L - k < 4096 ? L - k : 4096;
                fmc_violation v;
                if (!fmc_eval_row(p, env, 0, 0, q, k, n, row + k, scratch, &v)) {
                    fprintf(stderr, "dense path: violation\n");
                    exit(1);
                }
            }
            for (int64_t kb = 0; kb < nkb; kb++) {
                int64_t s = kb * block, e = s + block < L ? s + block : L, c = 0;
                for (int64_t k = s; k < e; k++) c += row[k];
                cnt[kb] += c;
            }
        }
        for (int64_t kb = 0; kb < nkb; kb++) {
            int64_t w = (kb + 1) * block < L ? block : L - kb * block;
            if (cnt[kb] == 0) continue;
            if (cnt[kb] == (q1 - q0) * w && w == block && q1 - q0 == block) (*full)++;
            else (*partial)++;
        }
    }
    double ms = now_ms() - t0;
    free(row);
    free(cnt);
    free(scratch);
    return ms;
}

static const char *const masks[] = {
    "causal",          "causal_bottom_right", "sliding_window", "sliding_with_sinks",
    "prefix_lm",       "chunked_causal",      "dilated_sliding", "document",
    "batched_prefill", "tree",                "padding",         "decoder_self",
    "cross_attention", "per_head",            "set_padding",     "full"};

int main(int argc, char **argv) {
    bool quick = false;
    int64_t dense_max = 32768;
    const char *dir = "examples/masks"; /* run from the repository root */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--dense-max") && i + 1 < argc) dense_max = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--masks") && i + 1 < argc) dir = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--dense-max N] [--masks DIR]\n", argv[0]);
            return 2;
        }
    }
    if (quick && dense_max > 4096) dense_max = 4096;
    const int64_t sizes[] = {4096, 32768, 131072};
    int nsizes = quick ? 2 : 3;
    const int64_t block = 128;
    printf("| mask | S | build ms | full | partial | empty | point evals | lists KiB | build peak "
           "KiB | dense ms | dense / build |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
        loaded l;
        if (!load(dir, masks[i], &l)) {
            fprintf(stderr, "%s: cannot load, skipped\n", masks[i]);
            continue;
        }
        for (int s = 0; s < nsizes; s++) {
            int64_t S = sizes[s];
            bound b;
            /* Inputs depend on S alone, so a row reads the same in a
             * --quick run, alone or in the whole table. */
            rng_state = 12345u + (uint64_t)S;
            bind(&b, l.p, S);
            double best = 1e30;
            fmc_blockmask *keep = NULL;
            int runs = S >= 131072 ? 3 : 5;
            for (int r = 0; r < runs; r++) {
                fmd_diags d;
                fmd_diags_init(&d);
                fmc_build_status st;
                double t0 = now_ms();
                fmc_blockmask *m = fmc_blockmask_build(l.p, &b.env, block, block, 0, &d, &st);
                double ms = now_ms() - t0;
                if (!m) {
                    fmd_diags_render(&d, stderr, false);
                    return 1;
                }
                fmd_diags_clear(&d);
                if (ms < best) best = ms;
                if (keep) fmc_blockmask_free(keep);
                keep = m;
            }
            long rss = build_peak_kib(l.p, &b.env, block);
            char dense_ms[32] = "-", ratio[32] = "-";
            if (S <= dense_max) {
                int64_t df, dp;
                double dms = dense(l.p, &b.env, block, &df, &dp);
                if (df != keep->stats.full || dp != keep->stats.partial) {
                    fprintf(stderr, "%s at %lld: dense path disagrees (%lld/%lld vs %lld/%lld)\n",
                            masks[i], (long long)S, (long long)df, (long long)dp,
                            (long long)keep->stats.full, (long long)keep->stats.partial);
                    return 1;
                }
                snprintf(dense_ms, sizeof dense_ms, "%.0f", dms);
                snprintf(ratio, sizeof ratio, "%.0fx", dms / (best > 1e-3 ? best : 1e-3));
            }
            printf("| %s | %lld | %.2f | %lld | %lld | %lld | %lld | %lld | %ld | %s | %s |\n",
                   masks[i], (long long)S, best, (long long)keep->stats.full,
                   (long long)keep->stats.partial, (long long)keep->stats.empty,
                   (long long)keep->stats.evaluations, (long long)(keep->stats.bytes / 1024), rss,
                   dense_ms, ratio);
            fflush(stdout);
            fmc_blockmask_free(keep);
            unbind(&b);
        }
        fmc_program_free(l.p);
        fmd_program_free(l.ast);
    }
    return 0;
}
