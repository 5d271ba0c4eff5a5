/* bench/dense_import: fm_blockmask_from_dense on dense boolean masks of the
 * sizes models hand around (the bridge for code that builds [B, H, Q, KV]
 * masks today): time per import (best of three), the peak memory the
 * import adds on top of the caller's array (measured in a child process),
 * the tiles and the point evaluations the build needed.
 *
 *   dense_import [--quick]
 *
 * --quick: the 4096 cases only. */
#define _GNU_SOURCE /* fork, pipe, malloc_trim (bench/peak_memory.h) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/peak_memory.h"
#include "flexmask.h"

typedef struct dense_case {
    const char *name, *what;
    int64_t heads, s;
} dense_case;

static const dense_case cases[] = {
    {"causal+document", "causal within packed documents of ~700 tokens", 1, 4096},
    {"per_head_window", "causal, window 128*(h+1) for head h", 8, 4096},
    {"random", "each position true with probability 1/2", 1, 4096},
    {"causal+document", "causal within packed documents of ~700 tokens", 1, 8192},
    {"per_head_window", "causal, window 128*(h+1) for head h", 8, 8192},
    {"random", "each position true with probability 1/2", 1, 8192},
};

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint8_t *make_mask(const dense_case *c) {
    int64_t s = c->s, n = c->heads * s * s;
    uint8_t *m = malloc((size_t)n);
    int32_t *doc = malloc((size_t)s * sizeof *doc);
    if (!m || !doc) {
        free(m);
        free(doc);
        return NULL;
    }
    uint64_t rng = 42;
    int32_t id = 0;
    for (int64_t i = 0; i < s; i++) doc[i] = id += rng_next(&rng) % 700 == 0;
    for (int64_t h = 0; h < c->heads; h++)
        for (int64_t q = 0; q < s; q++) {
            uint8_t *row = m + (h * s + q) * s;
            for (int64_t kv = 0; kv < s; kv++) {
                if (!strcmp(c->name, "causal+document")) row[kv] = kv <= q && doc[q] == doc[kv];
                else if (!strcmp(c->name, "per_head_window")) row[kv] = kv <= q && q - kv < 128 * (h + 1);
                else row[kv] = rng_next(&rng) & 1;
            }
        }
    free(doc);
    return m;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static fm_status import(const uint8_t *m, const dense_case *c, fm_blockmask **out) {
    int64_t dims[4] = {1, c->heads, c->s, c->s};
    fm_diagnostics *d = fm_diagnostics_create();
    fm_status st = fm_blockmask_from_dense(m, FM_DENSE_BOOL, 4, dims, NULL, NULL, d, out);
    if (st != FM_OK) fprintf(stderr, "dense_import: %s: %s\n", c->name, fm_status_string(st));
    fm_diagnostics_free(d);
    return st;
}

typedef struct import_call {
    const uint8_t *m;
    const dense_case *c;
} import_call;

static bool run_import(void *ctx) {
    const import_call *x = ctx;
    fm_blockmask *bm = NULL;
    return import(x->m, x->c, &bm) == FM_OK; /* the child exits: nothing to free */
}

/* The import's peak resident growth (KiB; -1 if unknown). */
static long import_peak_kib(const uint8_t *m, const dense_case *c) {
    import_call x = {m, c};
    return bench_peak_kib(run_import, &x);
}

int main(int argc, char **argv) {
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    printf("| mask | shape [B, H, S, S] | mask MiB | import ms | peak MiB over the mask | "
           "full | partial | empty | point evals |\n|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const dense_case *c = &cases[i];
        if (quick && c->s > 4096) continue;
        uint8_t *m = make_mask(c);
        if (!m) {
            fprintf(stderr, "dense_import: out of memory for %s\n", c->name);
            return 1;
        }
        double best = -1;
        fm_blockmask_info info = {0};
        for (int rep = 0; rep < 3; rep++) {
            fm_blockmask *bm = NULL;
            double t0 = now_ms();
            if (import(m, c, &bm) != FM_OK) return 1;
            double t = now_ms() - t0;
            if (best < 0 || t < best) best = t;
            fm_blockmask_get_info(bm, &info);
            fm_blockmask_free(bm);
        }
        long peak = import_peak_kib(m, c);
        printf("| %s | [1, %lld, %lld, %lld] | %.0f | %.0f | %.0f | %lld | %lld | %lld | %lld |\n",
               c->name, (long long)c->heads, (long long)c->s, (long long)c->s,
               (double)(c->heads * c->s * c->s) / (1 << 20), best, peak < 0 ? -1.0 : peak / 1024.0,
               (long long)info.full_tiles, (long long)info.partial_tiles,
               (long long)info.empty_tiles, (long long)info.evaluations);
        fflush(stdout);
        free(m);
    }
    return 0;
}
