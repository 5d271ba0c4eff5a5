/* What the scenario examples share: error exits, the tile picture, random
 * inputs and a plain dense float64 attention to check against. Everything
 * goes through the public API only, as an application would. */
#ifndef FM_EXAMPLES_EXAMPLE_UTIL_H
#define FM_EXAMPLES_EXAMPLE_UTIL_H

#include <flexmask.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints what went wrong (with the library's messages) and exits 1. */
static inline void ex_check(fm_status st, fm_diagnostics *diags, const char *what) {
    if (st == FM_OK) return;
    char *text = fm_diagnostics_format(diags, false);
    fprintf(stderr, "%s: %s\n%s", what, fm_status_string(st), text ? text : "");
    fm_free(text);
    exit(1);
}

/* The mask files ship in examples/masks, next to this folder. argv[1] may
 * name another folder (an installed copy). */
static inline void ex_mask_path(char *buf, size_t n, int argc, char **argv, const char *file) {
    if (argc > 1) {
        snprintf(buf, n, "%s/%s", argv[1], file);
        return;
    }
    const char *here = __FILE__; /* .../examples/c/example_util.h */
    const char *cut = strstr(here, "/c/example_util.h");
    int len = cut ? (int)(cut - here) : 0;
    snprintf(buf, n, "%.*s%smasks/%s", len, here, cut ? "/" : "examples/", file);
}

/* Compiles a mask file and selects its last mask. */
static inline fm_mask *ex_load_mask(const char *path, fm_diagnostics *diags) {
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    ex_check(fm_compile_file(path, diags, &prog), diags, path);
    ex_check(fm_mask_select(prog, NULL, diags, &mask), diags, path);
    fm_program_free(prog);
    return mask;
}

/* The fmviz-style picture of one (b, h) slice: a row per query block, a
 * column per key block; '#' full, '+' partial, '.' empty. */
static inline void ex_print_picture(const fm_blockmask *bm, int64_t b, int64_t h) {
    fm_blockmask_info info;
    fm_blockmask_get_info(bm, &info);
    printf("  BlockMask b=%lld h=%lld: %lld x %lld tiles of %lld x %lld  (# full, + partial, . "
           "empty)\n",
           (long long)b, (long long)h, (long long)info.num_q_blocks, (long long)info.num_kv_blocks,
           (long long)info.block_q, (long long)info.block_kv);
    for (int64_t i = 0; i < info.num_q_blocks; i++) {
        char line[256];
        int64_t n = info.num_kv_blocks < 200 ? info.num_kv_blocks : 200;
        memset(line, '.', (size_t)n);
        line[n] = '\0';
        const int32_t *full, *partial;
        int64_t nf, np;
        fm_blockmask_row(bm, b, h, i, &full, &nf, &partial, &np);
        for (int64_t k = 0; k < nf; k++)
            if (full[k] < n) line[full[k]] = '#';
        for (int64_t k = 0; k < np; k++)
            if (partial[k] < n) line[partial[k]] = '+';
        printf("  q %5lld  %s\n", (long long)(i * info.block_q), line);
    }
    printf("  tiles: %lld full, %lld partial, %lld empty (every batch and head)\n",
           (long long)info.full_tiles, (long long)info.partial_tiles, (long long)info.empty_tiles);
}

static inline float ex_rand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* A contiguous float32 [d0, d1, d2, d3] tensor of random values (caller
 * frees .data). */
static inline fm_tensor ex_random_tensor(unsigned *seed, int64_t d0, int64_t d1, int64_t d2,
                                         int64_t d3) {
    size_t n = (size_t)(d0 * d1 * d2 * d3);
    float *x = malloc(n * sizeof *x);
    if (!x) exit(1);
    for (size_t i = 0; i < n; i++)
        x[i] = ex_rand(seed);
    return fm_tensor_contiguous(x, FM_FLOAT32, d0, d1, d2, d3);
}

static inline fm_tensor ex_zero_tensor(int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    float *x = calloc((size_t)(d0 * d1 * d2 * d3), sizeof *x);
    if (!x) exit(1);
    return fm_tensor_contiguous(x, FM_FLOAT32, d0, d1, d2, d3);
}

static inline float ex_at(const fm_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return ((const float *)t->data)[i0 * t->strides[0] + i1 * t->strides[1] + i2 * t->strides[2] +
                                    i3 * t->strides[3]];
}

/* Largest |out - reference| over every element, where the reference is
 * softmax attention in float64 over exactly the positions where the mask
 * (fm_blockmask_eval) is true; rows with none are zero. q, k, v, out are
 * float32 with as many key/value heads as query heads. */
static inline double ex_max_error(const fm_blockmask *bm, const fm_tensor *q, const fm_tensor *k,
                                  const fm_tensor *v, const fm_tensor *out) {
    int64_t B = q->shape[0], H = q->shape[1], Q = q->shape[2], KV = k->shape[2], D = q->shape[3];
    double *score = malloc((size_t)KV * sizeof *score), *acc = malloc((size_t)D * sizeof *acc);
    if (!score || !acc) exit(1);
    double worst = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Q; i++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < KV; j++) {
                    bool keep = false;
                    fm_blockmask_eval(bm, b, h, i, j, &keep);
                    score[j] = -INFINITY;
                    if (!keep) continue;
                    double s = 0;
                    for (int64_t d = 0; d < D; d++)
                        s += (double)ex_at(q, b, h, i, d) * ex_at(k, b, h, j, d);
                    score[j] = s / sqrt((double)D);
                    if (score[j] > mx) mx = score[j];
                }
                for (int64_t d = 0; d < D; d++)
                    acc[d] = 0;
                for (int64_t j = 0; j < KV; j++) {
                    if (score[j] == -INFINITY) continue;
                    double p = exp(score[j] - mx);
                    sum += p;
                    for (int64_t d = 0; d < D; d++)
                        acc[d] += p * ex_at(v, b, h, j, d);
                }
                for (int64_t d = 0; d < D; d++) {
                    double ref = sum > 0 ? acc[d] / sum : 0.0;
                    double e = fabs(ref - ex_at(out, b, h, i, d));
                    if (e > worst) worst = e;
                }
            }
    free(score);
    free(acc);
    return worst;
}

/* Runs fm_attention_cpu and returns the max error against the reference. */
static inline double ex_attend_and_check(const fm_blockmask *bm, fm_tensor q, fm_tensor k,
                                         fm_tensor v, fm_tensor out, fm_diagnostics *diags) {
    fm_attention_args args = {.struct_size = sizeof(fm_attention_args)};
    args.mask = bm;
    args.q = q;
    args.k = k;
    args.v = v;
    args.out = out;
    ex_check(fm_attention_cpu(&args, diags), diags, "attention");
    return ex_max_error(bm, &q, &k, &v, &out);
}

/* Prints the error and says whether it is within the tolerance. */
static inline int ex_report(const char *what, double err) {
    bool ok = err <= 1e-4;
    printf("%s: max error against the dense float64 reference: %.3g (%s)\n", what, err,
           ok ? "ok, <= 1e-4" : "TOO LARGE");
    return ok ? 0 : 1;
}

#endif
