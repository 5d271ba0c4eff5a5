/* CPU attention forward over BlockMasks of the standard masks, against the
 * same run with the full mask, beside the machine's measured fp32 FMA rate.
 *
 *   attention_cpu [--quick] [--size S] [--dim D] [--threads N] [--reps N] [--markdown]
 *
 * --quick: S=2048, D=64 only. --size S, --dim D: only that S (D), e.g. to
 * re-measure one configuration. --threads: OpenMP threads (default:
 * OpenMP's default). --reps: best of N runs per configuration (default 2).
 * --markdown: print the table as Markdown (as in docs/performance.md).
 *
 * GFLOP/s counts 4 * D flops per true (q, kv) position (Q K^T and P V, one
 * multiply and one add each), so skipped tiles earn nothing: a mask that
 * skips work shows its saving as a shorter time at a similar rate. The FMA
 * rate is a loop of twelve independent 8-wide FMA chains per thread on
 * every thread, which is what the FMA units can sustain; the attention rate
 * is given as a fraction of it. Masks are built through the public API
 * (compile, select, bind, build), as a user would. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "flexmask.h"

static const char mask_source[] = "param window = 1024;\n"
                                  "input doc[KV_LEN];\n"
                                  "mask full = true;\n"
                                  "mask causal = kv <= q;\n"
                                  "mask sliding_window = kv <= q && q - kv < window;\n"
                                  "mask document = kv <= q && doc[q] == doc[kv];\n";

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- the FMA rate ---- */

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static double fma_chains(long iters) {
    /* Twelve independent accumulators: more than FMA latency (4) times the
     * number of FMA pipes (2), so the loop is throughput-bound. */
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    __m256 c0 = _mm256_set1_ps(0.10f), c1 = _mm256_set1_ps(0.11f), c2 = _mm256_set1_ps(0.12f);
    __m256 c3 = _mm256_set1_ps(0.13f), c4 = _mm256_set1_ps(0.14f), c5 = _mm256_set1_ps(0.15f);
    __m256 c6 = _mm256_set1_ps(0.16f), c7 = _mm256_set1_ps(0.17f), c8 = _mm256_set1_ps(0.18f);
    __m256 c9 = _mm256_set1_ps(0.19f), c10 = _mm256_set1_ps(0.20f), c11 = _mm256_set1_ps(0.21f);
    for (long i = 0; i < iters; i++) {
        c0 = _mm256_fmadd_ps(c0, a, b);
        c1 = _mm256_fmadd_ps(c1, a, b);
        c2 = _mm256_fmadd_ps(c2, a, b);
        c3 = _mm256_fmadd_ps(c3, a, b);
        c4 = _mm256_fmadd_ps(c4, a, b);
        c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b);
        c7 = _mm256_fmadd_ps(c7, a, b);
        c8 = _mm256_fmadd_ps(c8, a, b);
        c9 = _mm256_fmadd_ps(c9, a, b);
        c10 = _mm256_fmadd_ps(c10, a, b);
        c11 = _mm256_fmadd_ps(c11, a, b);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0]; /* consumed by the caller so the loop is not dropped */
}

/* GFLOP/s of the FMA loop on nthreads threads (best of reps), or 0 when
 * the CPU has no AVX2/FMA. */
static double fma_peak(int nthreads, int reps) {
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0.0;
    const long iters = 40000000;
    double best = 0.0, sink = 0.0;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
#pragma omp parallel num_threads(nthreads) reduction(+ : sink)
        sink += fma_chains(iters);
        double g = (double)iters * 12 * 16 * nthreads / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    if (sink == 42.0) printf(" ");
    return best;
}
#else
static double fma_peak(int nthreads, int reps) {
    (void)nthreads;
    (void)reps;
    return 0.0;
}
#endif

/* ---- one measured configuration ---- */

typedef struct result {
    double seconds, gflops;
    int64_t full, partial, empty, true_positions;
} result;

static void die_diags(const char *what, fm_status st, fm_diagnostics *d) {
    char *text = fm_diagnostics_format(d, false);
    fprintf(stderr, "attention_cpu: %s failed: %s\n%s", what, fm_status_string(st),
            text ? text : "");
    fm_free(text);
    exit(1);
}

/* True positions of the BlockMask: full tiles by area, partial tiles by
 * evaluating them (slices stored once count for every batch and head). */
static int64_t count_true(const fm_blockmask *bm, const fm_blockmask_info *info) {
    int64_t total = 0;
    int64_t nb = info->broadcast_batch ? 1 : info->shape.batch;
    int64_t nh = info->broadcast_heads ? 1 : info->shape.heads;
    int64_t mult = (info->broadcast_batch ? info->shape.batch : 1) *
                   (info->broadcast_heads ? info->shape.heads : 1);
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < nh; h++)
            for (int64_t qb = 0; qb < info->num_q_blocks; qb++) {
                const int32_t *full, *partial;
                int64_t nf, np;
                fm_blockmask_row(bm, b, h, qb, &full, &nf, &partial, &np);
                int64_t q0 = qb * info->block_q, q1 = q0 + info->block_q;
                if (q1 > info->shape.q_len) q1 = info->shape.q_len;
                total += mult * nf * (q1 - q0) * info->block_kv; /* full tiles are never clipped */
                for (int64_t i = 0; i < np; i++) {
                    int64_t k0 = partial[i] * info->block_kv, k1 = k0 + info->block_kv;
                    if (k1 > info->shape.kv_len) k1 = info->shape.kv_len;
                    for (int64_t q = q0; q < q1; q++)
                        for (int64_t kv = k0; kv < k1; kv++) {
                            bool v = false;
                            fm_blockmask_eval(bm, b, h, q, kv, &v);
                            total += v ? mult : 0;
                        }
                }
            }
    return total;
}

static result measure(fm_program *prog, const char *name, int64_t S, int64_t D, int64_t heads,
                      const int32_t *doc, int threads, int reps, float *q, float *k, float *v,
                      float *out) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_mask *mask;
    fm_status st = fm_mask_select(prog, name, d, &mask);
    if (st != FM_OK) die_diags("fm_mask_select", st, d);
    fm_bindings *bind;
    if ((st = fm_bindings_create(mask, &bind)) != FM_OK) die_diags("fm_bindings_create", st, d);
    if (strcmp(name, "document") == 0) {
        int64_t dims[1] = {S};
        st = fm_bindings_set_input(bind, "doc", doc, 1, dims, FM_BORROW, d);
        if (st != FM_OK) die_diags("fm_bindings_set_input", st, d);
    }
    fm_shape shape = {1, heads, S, S};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 128, .block_kv = 128};
    fm_blockmask *bm;
    if ((st = fm_blockmask_build(mask, bind, shape, &opts, d, &bm)) != FM_OK)
        die_diags("fm_blockmask_build", st, d);
    fm_blockmask_info info;
    fm_blockmask_get_info(bm, &info);

    fm_attention_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.mask = bm;
    a.q = fm_tensor_contiguous(q, FM_FLOAT32, 1, heads, S, D);
    a.k = fm_tensor_contiguous(k, FM_FLOAT32, 1, heads, S, D);
    a.v = fm_tensor_contiguous(v, FM_FLOAT32, 1, heads, S, D);
    a.out = fm_tensor_contiguous(out, FM_FLOAT32, 1, heads, S, D);
    a.num_threads = threads;
    result r;
    memset(&r, 0, sizeof r);
    r.seconds = INFINITY;
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        if ((st = fm_attention_cpu(&a, d)) != FM_OK) die_diags("fm_attention_cpu", st, d);
        double t = now() - t0;
        if (t < r.seconds) r.seconds = t;
    }
    r.full = info.full_tiles;
    r.partial = info.partial_tiles;
    r.empty = info.empty_tiles;
    r.true_positions = count_true(bm, &info);
    r.gflops = 4.0 * (double)D * (double)r.true_positions / r.seconds / 1e9;
    fm_blockmask_free(bm);
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_diagnostics_free(d);
    return r;
}

static void usage(void) {
    fprintf(stderr, "usage: attention_cpu [--quick] [--size S] [--dim D] [--threads N] [--reps N] "
                    "[--markdown]\n");
    exit(2);
}

/* The system load average, to tell a quiet measurement from a busy one. */
static void read_loadavg(char *buf, size_t n) {
    snprintf(buf, n, "n/a");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, n, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

typedef struct row {
    const char *mask;
    int64_t S, D;
    result r;
    double full_seconds;
    double near_peak; /* the FMA rate measured just before and after (the better) */
} row;

int main(int argc, char **argv) {
    bool quick = false, markdown = false;
    int threads = 0, reps = 2;
    int64_t only_S = 0, only_D = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--markdown") == 0) {
            markdown = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads < 1) usage();
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            only_S = atoll(argv[++i]);
            if (only_S < 1) usage();
        } else if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc) {
            only_D = atoll(argv[++i]);
            if (only_D < 1) usage();
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1) usage();
        } else {
            usage();
        }
    }
    int nthreads = threads > 0 ? threads : omp_get_max_threads();
    /* The machine may be shared: the FMA rate is measured at the start and
     * again just before and after every configuration. The best of all is
     * taken as the hardware's rate (noise only ever lowers a measurement);
     * the better of the two next to a configuration gives a second fraction
     * that shows what the other load on the machine left at that time. */
    double peak = fma_peak(nthreads, 3);

    const int64_t heads = 8;
    const int64_t all_S[] = {2048, 8192, 16384}, all_D[] = {64, 128};
    const int64_t quick_S[] = {2048}, quick_D[] = {64};
    const int64_t *Ss = quick ? quick_S : all_S, *Ds = quick ? quick_D : all_D;
    size_t nS = quick ? 1 : 3, nD = quick ? 1 : 2;
    if (only_S) {
        Ss = &only_S;
        nS = 1;
    }
    if (only_D) {
        Ds = &only_D;
        nD = 1;
    }
    char load_before[64];
    read_loadavg(load_before, sizeof load_before);
    const char *masks[] = {"full", "causal", "sliding_window", "document"};
    row rows[3 * 2 * 4];
    size_t nrows = 0;

    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *prog;
    fm_status st = fm_compile_string("bench.mask", mask_source, strlen(mask_source), d, &prog);
    if (st != FM_OK) die_diags("fm_compile_string", st, d);

    for (size_t si = 0; si < nS; si++) {
        int64_t S = Ss[si];
        int32_t *doc = malloc((size_t)S * sizeof *doc);
        if (!doc) {
            fprintf(stderr, "attention_cpu: out of memory\n");
            return 1;
        }
        /* Packed documents of 512 to 4096 tokens (a fixed LCG, so every run
         * measures the same layout). */
        uint64_t lcg = 12345;
        int32_t id = 0;
        for (int64_t i = 0; i < S;) {
            lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
            int64_t len = 512 + (int64_t)((lcg >> 33) % 3585);
            for (int64_t j = 0; j < len && i < S; j++, i++)
                doc[i] = id;
            id++;
        }
        for (size_t di = 0; di < nD; di++) {
            int64_t D = Ds[di];
            size_t n = (size_t)(heads * S * D);
            float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k),
                  *v = malloc(n * sizeof *v), *out = malloc(n * sizeof *out);
            if (!q || !k || !v || !out) {
                fprintf(stderr, "attention_cpu: out of memory\n");
                return 1;
            }
            uint64_t s = 777;
            for (size_t i = 0; i < n; i++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                float u = (float)(s >> 40) * 0x1p-24f - 0.5f;
                q[i] = u;
                k[i] = 0.5f * u + 0.25f * (float)((s >> 20) & 1);
                v[i] = u * 2.0f;
            }
            double full_seconds = 0;
            for (int mi = 0; mi < 4; mi++) {
                fprintf(stderr, "  %s S=%lld D=%lld ...\n", masks[mi], (long long)S, (long long)D);
                row *r = &rows[nrows++];
                r->mask = masks[mi];
                r->S = S;
                r->D = D;
                double before = fma_peak(nthreads, 1);
                r->r = measure(prog, masks[mi], S, D, heads, doc, threads, reps, q, k, v, out);
                if (mi == 0) full_seconds = r->r.seconds;
                r->full_seconds = full_seconds;
                double after = fma_peak(nthreads, 1);
                r->near_peak = before > after ? before : after;
                if (r->near_peak > peak) peak = r->near_peak;
            }
            free(q);
            free(k);
            free(v);
            free(out);
        }
        free(doc);
    }

    printf("CPU attention forward: BATCH 1, HEADS %lld, 128 x 128 tiles, float32, %d thread%s, "
           "best of %d\n",
           (long long)heads, nthreads, nthreads == 1 ? "" : "s", reps);
    if (peak > 0)
        printf("measured fp32 FMA rate: %.1f GFLOP/s on %d thread%s (12 independent 8-wide FMA "
               "chains per thread)\n",
               peak, nthreads, nthreads == 1 ? "" : "s");
    else
        printf("measured fp32 FMA rate: n/a (no AVX2/FMA on this CPU)\n");
    char load_after[64];
    read_loadavg(load_after, sizeof load_after);
    printf("GFLOP/s counts 4*D flops per true (q, kv) position only\n");
    printf("load average (1, 5, 15 min) before: %s; after: %s\n", load_before, load_after);
    if (markdown)
        printf("\n| mask | S | D | tiles full/partial/empty | true positions | time (s) | "
               "GFLOP/s | of FMA peak | of FMA rate nearby | faster than full |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
    else
        printf("\n%-15s %6s %4s %24s %9s %9s %8s %8s %8s %8s\n", "mask", "S", "D",
               "tiles full/partial/empty", "true pos", "time (s)", "GFLOP/s", "of peak", "nearby",
               "vs full");
    double causal_16k = 0, sliding_16k = 0;
    for (size_t i = 0; i < nrows; i++) {
        const row *w = &rows[i];
        char tiles[64], pct[16], near[16], vs[16];
        snprintf(tiles, sizeof tiles, "%lld/%lld/%lld", (long long)w->r.full,
                 (long long)w->r.partial, (long long)w->r.empty);
        if (peak > 0) {
            snprintf(pct, sizeof pct, "%.0f%%", 100.0 * w->r.gflops / peak);
            snprintf(near, sizeof near, "%.0f%%", 100.0 * w->r.gflops / w->near_peak);
        } else {
            snprintf(pct, sizeof pct, "n/a");
            snprintf(near, sizeof near, "n/a");
        }
        snprintf(vs, sizeof vs, "%.2fx", w->full_seconds / w->r.seconds);
        double frac = (double)w->r.true_positions / ((double)heads * (double)w->S * (double)w->S);
        if (markdown)
            printf("| %s | %lld | %lld | %s | %.1f%% | %.3f | %.1f | %s | %s | %s |\n", w->mask,
                   (long long)w->S, (long long)w->D, tiles, 100.0 * frac, w->r.seconds, w->r.gflops,
                   pct, near, vs);
        else
            printf("%-15s %6lld %4lld %24s %8.1f%% %9.3f %8.1f %8s %8s %8s\n", w->mask,
                   (long long)w->S, (long long)w->D, tiles, 100.0 * frac, w->r.seconds, w->r.gflops,
                   pct, near, vs);
        if (w->S == 16384 && w->D == 128 && !strcmp(w->mask, "causal")) causal_16k = w->r.seconds;
        if (w->S == 16384 && w->D == 128 && !strcmp(w->mask, "sliding_window"))
            sliding_16k = w->r.seconds;
    }
    if (causal_16k > 0 && sliding_16k > 0)
        printf("\nS=16384, D=128: sliding window 1024 runs %.1fx faster than causal\n",
               causal_16k / sliding_16k);
    fm_program_free(prog);
    fm_diagnostics_free(d);
    return 0;
}
