/* jit_mask: a mask built from a string at run time, end to end.
 *
 * Builds a sliding-window-with-sinks mask from text assembled at run time,
 * binds its params, builds the BlockMask, prints the tile picture and the
 * statistics, runs attention on random data on the best device (a CUDA GPU
 * when one is usable, else the CPU) and prints the largest error against a
 * plain dense reference computed here. */
#include <flexmask.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SEQ = 1024, HEADS = 4, KV_HEADS = 2, DIM = 64, BLOCK = 64 };

static void die(const char *what, fm_status st, fm_diagnostics *diags) {
    char *text = fm_diagnostics_format(diags, false);
    fprintf(stderr, "jit_mask: %s: %s\n%s", what, fm_status_string(st), text ? text : "");
    fm_free(text);
    exit(1);
}

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static void print_picture(const fm_blockmask *bm, const fm_blockmask_info *info) {
    printf("tiles (rows: query blocks, columns: key blocks; # full, + partial, . empty)\n");
    for (int64_t i = 0; i < info->num_q_blocks; i++) {
        char line[512];
        int64_t n = info->num_kv_blocks < 500 ? info->num_kv_blocks : 500;
        memset(line, '.', (size_t)n);
        line[n] = '\0';
        const int32_t *full, *partial;
        int64_t nf, np;
        fm_blockmask_row(bm, 0, 0, i, &full, &nf, &partial, &np);
        for (int64_t k = 0; k < nf; k++)
            if (full[k] < n) line[full[k]] = '#';
        for (int64_t k = 0; k < np; k++)
            if (partial[k] < n) line[partial[k]] = '+';
        printf("  %4lld  %s\n", (long long)(i * info->block_q), line);
    }
}

/* Dense float64 attention for one (b, h, q) row, evaluating the mask at
 * every position: slow and obviously right. */
static double row_error(const fm_blockmask *bm, const float *Q, const float *K, const float *V,
                        const float *out, int h, int q) {
    int kvh = h / (HEADS / KV_HEADS);
    double scores[SEQ], mx = -INFINITY, sum = 0, acc[DIM] = {0};
    for (int kv = 0; kv < SEQ; kv++) {
        bool keep = false;
        fm_blockmask_eval(bm, 0, h, q, kv, &keep);
        scores[kv] = -INFINITY;
        if (!keep) continue;
        double s = 0;
        for (int d = 0; d < DIM; d++)
            s += (double)Q[((size_t)h * SEQ + q) * DIM + d] * K[((size_t)kvh * SEQ + kv) * DIM + d];
        scores[kv] = s / sqrt((double)DIM);
        if (scores[kv] > mx) mx = scores[kv];
    }
    for (int kv = 0; kv < SEQ; kv++) {
        if (scores[kv] == -INFINITY) continue;
        double p = exp(scores[kv] - mx);
        sum += p;
        for (int d = 0; d < DIM; d++) acc[d] += p * V[((size_t)kvh * SEQ + kv) * DIM + d];
    }
    double err = 0;
    for (int d = 0; d < DIM; d++) {
        double ref = sum > 0 ? acc[d] / sum : 0.0;
        double e = fabs(ref - out[((size_t)h * SEQ + q) * DIM + d]);
        if (e > err) err = e;
    }
    return err;
}

int main(void) {
    /* The mask text is made at run time, as an application would. */
    char text[256];
    snprintf(text, sizeof text,
             "param window;\nparam sinks = 4;\nlet causal = kv <= q;\n"
             "mask %s = causal && (q - kv < window || kv < sinks);\n",
             "sliding_with_sinks");
    fm_diagnostics *diags = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_bindings *bind = NULL;
    fm_blockmask *bm = NULL;
    fm_status st;
    if ((st = fm_compile_string("jit_mask", text, strlen(text), diags, &prog)) != FM_OK)
        die("compile", st, diags);
    if ((st = fm_mask_select(prog, NULL, diags, &mask)) != FM_OK) die("select", st, diags);
    if ((st = fm_bindings_create(mask, &bind)) != FM_OK) die("bindings", st, diags);
    if ((st = fm_bindings_set_param(bind, "window", 192, diags)) != FM_OK)
        die("param", st, diags);
    fm_shape shape = {1, HEADS, SEQ, SEQ};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = BLOCK, .block_kv = BLOCK};
    if ((st = fm_blockmask_build(mask, bind, shape, &opts, diags, &bm)) != FM_OK)
        die("build", st, diags);

    fm_blockmask_info info;
    fm_blockmask_get_info(bm, &info);
    printf("mask '%s' from a run-time string, window 192, 4 sinks, %d x %d positions, "
           "%d x %d blocks\n",
           fm_mask_name(mask), SEQ, SEQ, BLOCK, BLOCK);
    print_picture(bm, &info);
    int64_t tiles = info.full_tiles + info.partial_tiles + info.empty_tiles;
    printf("tiles: %lld full, %lld partial, %lld empty (over %d heads); "
           "%lld point evaluations in the build\n",
           (long long)info.full_tiles, (long long)info.partial_tiles,
           (long long)info.empty_tiles, HEADS, (long long)info.evaluations);
    printf("work skipped against dense attention: %.1f%%\n",
           100.0 * (double)info.empty_tiles / (double)tiles);

    size_t nq = (size_t)HEADS * SEQ * DIM, nkv = (size_t)KV_HEADS * SEQ * DIM;
    float *Q = malloc(nq * sizeof *Q), *K = malloc(nkv * sizeof *K);
    float *V = malloc(nkv * sizeof *V), *O = malloc(nq * sizeof *O);
    if (!Q || !K || !V || !O) return 1;
    unsigned seed = 42;
    for (size_t i = 0; i < nq; i++) Q[i] = frand(&seed);
    for (size_t i = 0; i < nkv; i++) K[i] = frand(&seed), V[i] = frand(&seed);
    fm_attention_args args = {.struct_size = sizeof(fm_attention_args), 
        .mask = bm,
        .q = fm_tensor_contiguous(Q, FM_FLOAT32, 1, HEADS, SEQ, DIM),
        .k = fm_tensor_contiguous(K, FM_FLOAT32, 1, KV_HEADS, SEQ, DIM),
        .v = fm_tensor_contiguous(V, FM_FLOAT32, 1, KV_HEADS, SEQ, DIM),
        .out = fm_tensor_contiguous(O, FM_FLOAT32, 1, HEADS, SEQ, DIM),
    };
    fm_device *dev = NULL;
    if ((st = fm_device_open(FM_DEVICE_AUTO, diags, &dev)) != FM_OK) die("device", st, diags);
    bool on_gpu = fm_device_get_kind(dev) == FM_DEVICE_CUDA;
    if (on_gpu) printf("device: %s\n", fm_device_name(dev));
    else printf("device: %s (%s)\n", fm_device_name(dev), fm_device_reason(dev));
    if ((st = fm_device_attention(dev, &args, diags)) != FM_OK) die("attention", st, diags);
    fm_device_free(dev);

    /* Check a spread of rows (all of them takes a while with a dense reference). */
    double worst = 0;
    for (int h = 0; h < HEADS; h++)
        for (int q = 0; q < SEQ; q += 7) {
            double e = row_error(bm, Q, K, V, O, h, q);
            if (e > worst) worst = e;
        }
    /* The GPU computes in float16 (float32 inputs are rounded), the CPU in
     * float32: each gets the tolerance its arithmetic allows. */
    double tolerance = on_gpu ? 1e-2 : 1e-4;
    printf("attention on the %s (GQA %d query heads over %d kv heads, D=%d): "
           "max abs error against a float64 dense reference: %.3g (tolerance %g)\n",
           on_gpu ? "GPU" : "CPU", HEADS, KV_HEADS, DIM, worst, tolerance);
    free(Q);
    free(K);
    free(V);
    free(O);
    fm_blockmask_free(bm);
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_program_free(prog);
    fm_diagnostics_free(diags);
    return worst < tolerance ? 0 : 1;
}
