/* bench/gpu: the CUDA forward kernel alone (tensors already on the GPU,
 * the kernel compiled beforehand), timed with CUDA events, for causal,
 * sliding window (window 1024), document (documents of S/4, S/8, S/16,
 * S/16 and S/2 tokens), prefix LM (prefix S/4) and full, at S in {1024,
 * 4096, 16384, 32768} and D in {64, 128}, bf16, batch 1, 16 heads.
 * TFLOP/s counts 4*D flops per true (query, key) position only, so sparse
 * masks are not credited for skipped work.
 *
 *   gpu [--csv] [--s S]... [--d D]... [--mask NAME]... [--iters N]
 *
 * --csv prints one line per run (mask,S,D,ms,tflops) for
 * bench/flex_compare.py. Without a usable GPU it says why and exits 0. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/api/api_internal.h"
#include "runtime/cpu/attention_convert.h"
#include "runtime/cuda/cuda_fwd.h"

typedef struct bench_mask {
    const char *name, *src;
} bench_mask;

/* The same definitions flex_compare.py builds with create_block_mask. */
static const bench_mask masks[] = {
    {"causal", "mask causal = kv <= q;"},
    {"sliding_window", "param window = 1024; mask sliding_window = kv <= q && q - kv < window;"},
    {"document", "input doc[KV_LEN]; mask document = kv <= q && doc[q] == doc[kv];"},
    {"prefix_lm", "param prefix; mask prefix_lm = kv < prefix || kv <= q;"},
    {"full", "mask full = true;"},
};

/* Document ids: lengths S/4, S/8, S/16, S/16, S/2 in that order. */
static void document_ids(int32_t *doc, int64_t S) {
    const int64_t lens[5] = {S / 4, S / 8, S / 16, S / 16, S / 2};
    int64_t pos = 0;
    for (int d = 0; d < 5; d++)
        for (int64_t i = 0; i < lens[d] && pos < S; i++) doc[pos++] = d;
    while (pos < S) doc[pos++] = 4;
}

static bool has(int n, char **list, const char *s) {
    if (!n) return true;
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return true;
    return false;
}

int main(int argc, char **argv) {
    bool csv = false;
    int iters = 10;
    int64_t Ss[8] = {1024, 4096, 16384, 32768}, Ds[4] = {64, 128};
    int nS = 4, nD = 2, nS_user = 0, nD_user = 0, nmask = 0;
    char *mask_names[8];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv")) csv = true;
        else if (!strcmp(argv[i], "--s") && i + 1 < argc && nS_user < 8) Ss[nS_user++] = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--d") && i + 1 < argc && nD_user < 4) Ds[nD_user++] = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--mask") && i + 1 < argc && nmask < 8) mask_names[nmask++] = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gpu [--csv] [--s S]... [--d D]... [--mask NAME]... [--iters N]\n");
            return 2;
        }
    }
    if (nS_user) nS = nS_user;
    if (nD_user) nD = nD_user;
    char why[512];
    fmr_gpu *g = NULL;
    if (fmr_gpu_open(&g, why, sizeof why) != FM_OK) {
        printf("bench/gpu: skipped: %s\n", why);
        return 0;
    }
    const int64_t H = 16, B = 1;
    if (!csv) {
        printf("bench/gpu: %s; bf16, batch %lld, heads %lld, BlockMask 128x128, mean of %d "
               "launches\n", fmr_gpu_name(g), (long long)B, (long long)H, iters);
        printf("%-16s %7s %4s %10s %9s %8s %8s\n", "mask", "S", "D", "ms", "TFLOP/s", "density", "int32");
    } else {
        printf("mask,S,D,ms,tflops,true_positions\n");
    }
    int failures = 0;
    fmd_diags dg;
    fmd_diags_init(&dg);
    for (size_t mi = 0; mi < sizeof masks / sizeof masks[0]; mi++) {
        if (!has(nmask, mask_names, masks[mi].name)) continue;
        fm_program *prog;
        fm_mask *mask;
        if (fm_compile_string(masks[mi].name, masks[mi].src, strlen(masks[mi].src), NULL, &prog) ||
            fm_mask_select(prog, NULL, NULL, &mask)) {
            fprintf(stderr, "bench/gpu: mask %s does not compile\n", masks[mi].name);
            return 1;
        }
        for (int si = 0; si < nS; si++) {
            const int64_t S = Ss[si];
            fm_bindings *bind;
            fm_bindings_create(mask, &bind);
            int32_t *doc = NULL;
            if (!strcmp(masks[mi].name, "document")) {
                doc = malloc((size_t)S * 4);
                document_ids(doc, S);
                int64_t dims[1] = {S};
                fm_bindings_set_input(bind, "doc", doc, 1, dims, FM_BORROW, NULL);
            }
            if (!strcmp(masks[mi].name, "prefix_lm")) fm_bindings_set_param(bind, "prefix", S / 4, NULL);
            fm_shape sh = {B, H, S, S};
            fm_blockmask *bm;
            if (fm_blockmask_build(mask, bind, sh, NULL, NULL, &bm) != FM_OK) {
                fprintf(stderr, "bench/gpu: BlockMask build failed for %s S=%lld\n", masks[mi].name, (long long)S);
                failures++;
                free(doc);
                fm_bindings_free(bind);
                continue;
            }
            fm_blockmask_info info;
            fm_blockmask_get_info(bm, &info);
            fmr_gpu_mask *gm = NULL;
            if (fmr_gpu_mask_upload(g, bm->bm, &gm, &dg) != FM_OK) {
                fmd_diags_render(&dg, stderr, false);
                return 1;
            }
            for (int di = 0; di < nD; di++) {
                const int64_t D = Ds[di];
                size_t n = (size_t)(B * H * S * D);
                uint16_t *host = malloc(n * 2);
                uint64_t x = 88172645463325252ull;
                for (size_t i = 0; i < n; i++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    host[i] = fmr_f32_to_bf16((float)((double)(x >> 11) / 9007199254740992.0 * 2 - 1));
                }
                fmr_devptr q = 0, k = 0, v = 0, out = 0;
                fm_status st = FM_OK;
                if ((st = fmr_gpu_alloc(g, n * 2, &q, &dg)) || (st = fmr_gpu_alloc(g, n * 2, &k, &dg)) ||
                    (st = fmr_gpu_alloc(g, n * 2, &v, &dg)) || (st = fmr_gpu_alloc(g, n * 4, &out, &dg)) ||
                    (st = fmr_gpu_upload(g, q, host, n * 2, &dg)) || (st = fmr_gpu_upload(g, k, host, n * 2, &dg)) ||
                    (st = fmr_gpu_upload(g, v, host, n * 2, &dg))) {
                    fmd_diags_render(&dg, stderr, false);
                    return 1;
                }
                fmr_gpu_fwd_args a = {.q = q, .k = k, .v = v, .out = out,
                                      .q_strides = {H * S * D, S * D, D},
                                      .k_strides = {H * S * D, S * D, D},
                                      .v_strides = {H * S * D, S * D, D},
                                      .kv_heads = H, .head_dim = D, .bf16 = true};
                double ms = 0;
                st = fmr_gpu_time_forward(g, gm, &a, iters, &ms, &dg);
                if (st != FM_OK) {
                    fmd_diags_render(&dg, stderr, false);
                    fmd_diags_clear(&dg);
                    failures++;
                } else {
                    double flops = 4.0 * (double)D * (double)info.true_positions;
                    double tflops = flops / (ms * 1e-3) / 1e12;
                    double density = (double)info.true_positions / ((double)B * H * S * S);
                    if (csv)
                        printf("%s,%lld,%lld,%.4f,%.2f,%lld\n", masks[mi].name, (long long)S, (long long)D, ms,
                               tflops, (long long)info.true_positions);
                    else
                        printf("%-16s %7lld %4lld %10.3f %9.1f %8.3f %8s\n", masks[mi].name, (long long)S,
                               (long long)D, ms, tflops, density, fmr_gpu_mask_int32(gm) ? "yes" : "no");
                    fflush(stdout);
                }
                fmr_gpu_free(g, q), fmr_gpu_free(g, k), fmr_gpu_free(g, v), fmr_gpu_free(g, out);
                free(host);
            }
            fmr_gpu_mask_free(g, gm);
            fm_blockmask_free(bm);
            fm_bindings_free(bind);
            free(doc);
        }
        fm_mask_free(mask);
        fm_program_free(prog);
    }
    fmr_gpu_close(g);
    return failures ? 1 : 0;
}
