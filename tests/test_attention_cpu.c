/* CPU attention (runtime/cpu/attention_cpu.c) against the float64 reference.
 *
 * Most masks here are hand-lowered IR programs with BlockMasks built by
 * brute force in this file, so those tests check the attention runtime
 * alone, whatever the compiler's tile analysis does; test_source_masks runs
 * masks written as source through the parser, the lowering and the
 * compiler's BlockMask builder. Each property case draws a mask, a shape
 * (lengths that are not multiples of the blocks, Q_LEN != KV_LEN), block
 * sizes, a GQA ratio, a memory layout and dtypes, then runs both kernel
 * paths at 1, 2 and 3 threads: results must match the reference, be
 * bit-identical across thread counts, and the mask must have been
 * evaluated exactly at the positions of partial tiles. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/blockmask.h"
#include "compiler/eval.h"
#include "compiler/ir.h"
#include "dsl/ast.h"
#include "attention_fixtures.h"
#include "ref_attention.h"
#include "runtime/cpu/attention_convert.h"
#include "runtime/api/api_internal.h"
#include "runtime/cpu/attention_cpu.h"
#include "runtime/interop/npy.h"
#include "testutil.h"
#include "flexmask.h"

/* ---- one property case ---- */

typedef struct case_spec {
    int kind, layout;
    int64_t B, H, KVH, Q, KV, D, bq, bkv;
    fm_dtype dq, dk, dv, dout;
    float scale;
    double amp;
} case_spec;

static const fm_dtype all_dtypes[3] = {FM_FLOAT32, FM_FLOAT16, FM_BFLOAT16};

static case_spec random_spec(tu_rng *rng) {
    case_spec s;
    memset(&s, 0, sizeof s);
    s.kind = (int)tu_rng_range(rng, 0, AF_M_COUNT - 1);
    s.layout = (int)tu_rng_range(rng, 0, AF_L_COUNT - 1);
    s.B = tu_rng_range(rng, 1, 2);
    static const int64_t kvh[] = {1, 2, 3};
    s.KVH = kvh[tu_rng_range(rng, 0, 2)];
    s.H = s.KVH * tu_rng_range(rng, 1, 3);
    s.Q = tu_rng_range(rng, 1, 130);
    s.KV = tu_rng_range(rng, 1, 130);
    if (s.kind == AF_M_CAUSAL && tu_rng_range(rng, 0, 1)) s.KV = s.Q; /* the usual square case */
    static const int64_t dims[] = {1, 3, 8, 16, 17, 32, 40, 64, 96, 128};
    s.D = dims[tu_rng_range(rng, 0, 9)];
    s.bq = tu_rng_range(rng, 1, 40);
    s.bkv = tu_rng_range(rng, 1, 40);
    int all32 = tu_rng_range(rng, 0, 2) != 0; /* mostly float32: the strict tolerance */
    s.dq = all32 ? FM_FLOAT32 : all_dtypes[tu_rng_range(rng, 0, 2)];
    s.dk = all32 ? FM_FLOAT32 : all_dtypes[tu_rng_range(rng, 0, 2)];
    s.dv = all32 ? FM_FLOAT32 : all_dtypes[tu_rng_range(rng, 0, 2)];
    s.dout = tu_rng_range(rng, 0, 1) ? FM_FLOAT32 : s.dq;
    s.scale = tu_rng_range(rng, 0, 3) == 0 ? 0.3f : 0.0f;
    s.amp = tu_rng_range(rng, 0, 1) ? 1.0 : 3.0;
    return s;
}

typedef struct run_out {
    fm_tensor out;
    float *lse;
    int64_t evals;
} run_out;

/* Runs attention over bm with random tensors shaped and typed as s says,
 * on both kernel paths at 1, 2 and 3 threads, and checks everything. */
static void check_bm(const fmc_blockmask *bm, const case_spec *s, tu_rng *rng) {
    fm_attention_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.q = af_make_tensor(s->dq, s->layout, s->B, s->H, s->Q, s->D);
    a.k = af_make_tensor(s->dk, s->layout, s->B, s->KVH, s->KV, s->D);
    a.v = af_make_tensor(s->dv, s->layout, s->B, s->KVH, s->KV, s->D);
    af_fill_random(&a.q, rng, s->amp);
    af_fill_random(&a.k, rng, s->amp);
    af_fill_random(&a.v, rng, 1.0);
    a.scale = s->scale;

    size_t nout = (size_t)(s->B * s->H * s->Q * s->D), nrow = (size_t)(s->B * s->H * s->Q);
    double *ref = malloc(nout * sizeof *ref), *ref_lse = malloc(nrow * sizeof *ref_lse);
    assert_true(ref_attention(bm, &a, ref, ref_lse, NULL));

    bool f32 =
        s->dq == FM_FLOAT32 && s->dk == FM_FLOAT32 && s->dv == FM_FLOAT32 && s->dout == FM_FLOAT32;
    double tol = f32 ? 1e-5 : 1e-2;
    int64_t expect_evals = af_partial_positions(bm);

    fmr_isa isas[2] = {FMR_ISA_PORTABLE, FMR_ISA_AVX2};
    int nisa = fmr_cpu_has_avx2() ? 2 : 1;
    for (int ii = 0; ii < nisa; ii++) {
        run_out runs[3];
        for (int ti = 0; ti < 3; ti++) {
            run_out *ro = &runs[ti];
            ro->out = af_make_tensor(s->dout, s->layout, s->B, s->H, s->Q, s->D);
            ro->lse = malloc(nrow * sizeof(float));
            a.out = ro->out;
            a.lse = ro->lse;
            a.num_threads = ti + 1;
            fmd_diags d;
            fmd_diags_init(&d);
            ro->evals = -1;
            fm_status st = fmr_attention_cpu_isa(bm, &a, isas[ii], &d, &ro->evals);
            if (st != FM_OK) fmd_diags_render(&d, stderr, false);
            assert_int_equal(st, FM_OK);
            fmd_diags_clear(&d);
            assert_int_equal(ro->evals, expect_evals);
        }
        /* Bit-for-bit the same at 1, 2 and 3 threads. */
        for (int ti = 1; ti < 3; ti++) {
            for (int64_t b = 0; b < s->B; b++)
                for (int64_t h = 0; h < s->H; h++)
                    for (int64_t q = 0; q < s->Q; q++)
                        for (int64_t d = 0; d < s->D; d++) {
                            double x = ref_tensor_get(&runs[0].out, b, h, q, d);
                            double y = ref_tensor_get(&runs[ti].out, b, h, q, d);
                            assert_memory_equal(&x, &y, sizeof x);
                        }
            assert_memory_equal(runs[0].lse, runs[ti].lse, nrow * sizeof(float));
        }
        /* Against the reference, per (b, h) slice. */
        const fm_tensor *out = &runs[0].out;
        for (int64_t b = 0; b < s->B; b++)
            for (int64_t h = 0; h < s->H; h++) {
                double num = 0.0, den = 0.0;
                for (int64_t q = 0; q < s->Q; q++) {
                    int64_t row = (b * s->H + h) * s->Q + q;
                    float lse = runs[0].lse[row];
                    assert_false(isnan(lse));
                    if (ref_lse[row] == -INFINITY) {
                        /* No true position: exactly zero and -inf. */
                        assert_true(lse == -INFINITY);
                        for (int64_t d = 0; d < s->D; d++)
                            assert_true(ref_tensor_get(out, b, h, q, d) == 0.0);
                        continue;
                    }
                    assert_true(isfinite(lse));
                    if (fabs(lse - ref_lse[row]) > tol * fmax(1.0, fabs(ref_lse[row]))) {
                        fail_msg("lse mismatch at b=%lld h=%lld q=%lld: %.9g vs %.9g", (long long)b,
                                 (long long)h, (long long)q, (double)lse, ref_lse[row]);
                    }
                    for (int64_t d = 0; d < s->D; d++) {
                        double x = ref_tensor_get(out, b, h, q, d), r = ref[row * s->D + d];
                        assert_true(isfinite(x));
                        num += (x - r) * (x - r);
                        den += r * r;
                    }
                }
                if (den > 0.0 && sqrt(num / den) >= tol)
                    fail_msg("%s (%s): relative error %.3g >= %.0e at b=%lld h=%lld "
                             "(mask %s, Q %lld KV %lld D %lld, blocks %lld x %lld)",
                             isas[ii] == FMR_ISA_AVX2 ? "avx2" : "portable",
                             f32 ? "float32" : "16-bit", sqrt(num / den), tol, (long long)b,
                             (long long)h, bm->program->mask_name, (long long)s->Q,
                             (long long)s->KV, (long long)s->D, (long long)s->bq,
                             (long long)s->bkv);
                if (den == 0.0) assert_true(num == 0.0);
            }
        for (int ti = 0; ti < 3; ti++) {
            free(runs[ti].out.data);
            free(runs[ti].lse);
        }
    }
    free(ref);
    free(ref_lse);
    free(a.q.data);
    free(a.k.data);
    free(a.v.data);
}

static void check_case(const case_spec *s, tu_rng *rng) {
    af_mask tm;
    af_make_mask(&tm, s->kind, s->B, s->H, s->Q, s->KV, rng);
    fmc_blockmask *bm = af_build_bm(&tm, s->bq, s->bkv);
    check_bm(bm, s, rng);
    af_free_bm(bm);
    af_free_mask(&tm);
}

/* Random masks, shapes, blocks, GQA ratios, layouts and dtypes. */
static void test_random_cases(void **state) {
    (void)state;
    tu_rng rng = {0x5eed4a77e1110ULL};
    int n = tu_sanitizer_run() ? 30 : 150;
    for (int i = 0; i < n; i++) {
        case_spec s = random_spec(&rng);
        check_case(&s, &rng);
    }
}

/* Every mask once at a fixed, awkward shape: GQA 2:1, Q_LEN != KV_LEN,
 * blocks that divide neither length, [B, S, H, D] float32. */
static void test_each_mask(void **state) {
    (void)state;
    tu_rng rng = {42};
    for (int kind = 0; kind < AF_M_COUNT; kind++) {
        case_spec s;
        memset(&s, 0, sizeof s);
        s.kind = kind;
        s.layout = AF_L_BSHD;
        s.B = 2;
        s.H = 4;
        s.KVH = 2;
        s.Q = 77;
        s.KV = kind == AF_M_CAUSAL ? 77 : 93;
        s.D = 32;
        s.bq = 16;
        s.bkv = 24;
        s.dq = s.dk = s.dv = s.dout = FM_FLOAT32;
        s.amp = 2.0;
        check_case(&s, &rng);
    }
}

/* Extreme sizes: one-position blocks, blocks larger than the lengths, a
 * head dimension above any kernel's register blocking, a single query. */
static void test_odd_sizes(void **state) {
    (void)state;
    tu_rng rng = {77};
    const int64_t cfg[][5] = {
        /* Q, KV, D, bq, bkv */
        {9, 13, 5, 1, 1},
        {30, 20, 8, 512, 512},
        {17, 40, 300, 8, 16},
        {1, 50, 64, 128, 7},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        case_spec s;
        memset(&s, 0, sizeof s);
        s.kind = i % 2 ? AF_M_SLIDING : AF_M_STRICT;
        s.layout = (int)i % AF_L_COUNT;
        s.B = 1;
        s.H = 2;
        s.KVH = 1;
        s.Q = cfg[i][0];
        s.KV = cfg[i][1];
        s.D = cfg[i][2];
        s.bq = cfg[i][3];
        s.bkv = cfg[i][4];
        s.dq = s.dk = s.dv = s.dout = FM_FLOAT32;
        s.amp = 1.5;
        check_case(&s, &rng);
    }
}

/* Each storage dtype on its own, output in that dtype and in float32. */
static void test_dtypes(void **state) {
    (void)state;
    tu_rng rng = {7};
    for (int dt = 0; dt < 3; dt++)
        for (int o = 0; o < 2; o++) {
            case_spec s;
            memset(&s, 0, sizeof s);
            s.kind = AF_M_SLIDING;
            s.layout = AF_L_BHSD;
            s.B = 1;
            s.H = 2;
            s.KVH = 1;
            s.Q = 70;
            s.KV = 70;
            s.D = 64;
            s.bq = 32;
            s.bkv = 32;
            s.dq = s.dk = s.dv = all_dtypes[dt];
            s.dout = o ? FM_FLOAT32 : s.dq;
            s.amp = 1.0;
            check_case(&s, &rng);
        }
}

/* A case with many more tasks than threads, so the schedule really varies,
 * at 1, 2, 3 and 5 threads and both paths: identical bits every time. */
static void test_thread_determinism(void **state) {
    (void)state;
    tu_rng rng = {99};
    af_mask tm;
    int64_t B = 1, H = 4, Q = 300, KV = 300, D = 48;
    af_make_mask(&tm, AF_M_SLIDING, B, H, Q, KV, &rng);
    tm.param_values[0] = 70;
    fmc_blockmask *bm = af_build_bm(&tm, 16, 32);
    fm_attention_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.q = af_make_tensor(FM_FLOAT32, AF_L_BHSD, B, H, Q, D);
    a.k = af_make_tensor(FM_FLOAT32, AF_L_BHSD, B, 2, KV, D);
    a.v = af_make_tensor(FM_FLOAT32, AF_L_BHSD, B, 2, KV, D);
    af_fill_random(&a.q, &rng, 2.0);
    af_fill_random(&a.k, &rng, 2.0);
    af_fill_random(&a.v, &rng, 1.0);
    size_t n = (size_t)(B * H * Q * D), nrow = (size_t)(B * H * Q);
    float *first = malloc(n * sizeof(float)), *first_lse = malloc(nrow * sizeof(float));
    float *out = malloc(n * sizeof(float)), *lse = malloc(nrow * sizeof(float));
    a.out = fm_tensor_contiguous(out, FM_FLOAT32, B, H, Q, D);
    a.lse = lse;
    int threads[4] = {1, 2, 3, 5};
    fmr_isa isas[2] = {FMR_ISA_PORTABLE, FMR_ISA_AVX2};
    for (int ii = 0; ii < (fmr_cpu_has_avx2() ? 2 : 1); ii++)
        for (int t = 0; t < 4; t++) {
            a.num_threads = threads[t];
            memset(out, 0xff, n * sizeof(float));
            assert_int_equal(fmr_attention_cpu_isa(bm, &a, isas[ii], NULL, NULL), FM_OK);
            if (t == 0) {
                memcpy(first, out, n * sizeof(float));
                memcpy(first_lse, lse, nrow * sizeof(float));
            } else {
                assert_memory_equal(first, out, n * sizeof(float));
                assert_memory_equal(first_lse, lse, nrow * sizeof(float));
            }
        }
    free(first);
    free(first_lse);
    free(out);
    free(lse);
    free(a.q.data);
    free(a.k.data);
    free(a.v.data);
    af_free_bm(bm);
    af_free_mask(&tm);
}

/* Keys and values at masked positions may hold anything, inf and NaN
 * included (padding never written): they must not reach the output. */
static void test_nonfinite_masked_values(void **state) {
    (void)state;
    tu_rng rng = {31};
    const int64_t B = 1, H = 2, Q = 40, KV = 70, D = 32;
    af_mask tm;
    af_make_mask(&tm, AF_M_PADDING, B, H, Q, KV, &rng);
    fmc_blockmask *bm = af_build_bm(&tm, 16, 16); /* kv tile 48..63 is partial */
    assert_true(bm->stats.partial > 0);
    fm_attention_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.q = af_make_tensor(FM_FLOAT32, AF_L_BHSD, B, H, Q, D);
    a.k = af_make_tensor(FM_FLOAT32, AF_L_BHSD, B, H, KV, D);
    a.v = af_make_tensor(FM_FLOAT32, AF_L_BHSD, B, H, KV, D);
    af_fill_random(&a.q, &rng, 1.0);
    af_fill_random(&a.k, &rng, 1.0);
    af_fill_random(&a.v, &rng, 1.0);
    for (int64_t h = 0; h < H; h++)
        for (int64_t kv = 50; kv < KV; kv++)
            for (int64_t d = 0; d < D; d++) {
                ref_tensor_set(&a.k, 0, h, kv, d, (kv + d) % 2 ? NAN : INFINITY);
                ref_tensor_set(&a.v, 0, h, kv, d, (kv + d) % 3 ? NAN : -INFINITY);
            }
    size_t n = (size_t)(B * H * Q * D), nrow = (size_t)(B * H * Q);
    double *ref = malloc(n * sizeof *ref), *ref_lse = malloc(nrow * sizeof *ref_lse);
    assert_true(ref_attention(bm, &a, ref, ref_lse, NULL));
    float *out = malloc(n * sizeof *out), lse[80];
    a.out = fm_tensor_contiguous(out, FM_FLOAT32, B, H, Q, D);
    a.lse = lse;
    fmr_isa isas[2] = {FMR_ISA_PORTABLE, FMR_ISA_AVX2};
    for (int ii = 0; ii < (fmr_cpu_has_avx2() ? 2 : 1); ii++) {
        assert_int_equal(fmr_attention_cpu_isa(bm, &a, isas[ii], NULL, NULL), FM_OK);
        for (size_t i = 0; i < n; i++) {
            assert_true(isfinite(out[i]));
            assert_true(fabs(out[i] - ref[i]) < 1e-5);
        }
        for (size_t i = 0; i < nrow; i++)
            assert_true(fabs(lse[i] - ref_lse[i]) < 1e-5);
    }
    free(ref);
    free(ref_lse);
    free(out);
    free(a.q.data);
    free(a.k.data);
    free(a.v.data);
    af_free_bm(bm);
    af_free_mask(&tm);
}

/* FLEXMASK_CPU_ISA=portable makes the default entry point run the portable
 * kernels (same bits as asking for them), and a bad value is refused. */
static void test_isa_switch(void **state) {
    (void)state;
    tu_rng rng = {5};
    af_mask tm;
    af_make_mask(&tm, AF_M_CAUSAL, 1, 1, 50, 50, &rng);
    fmc_blockmask *bm = af_build_bm(&tm, 16, 16);
    fm_attention_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.q = af_make_tensor(FM_FLOAT32, AF_L_BHSD, 1, 1, 50, 16);
    a.k = af_make_tensor(FM_FLOAT32, AF_L_BHSD, 1, 1, 50, 16);
    a.v = af_make_tensor(FM_FLOAT32, AF_L_BHSD, 1, 1, 50, 16);
    af_fill_random(&a.q, &rng, 3.0);
    af_fill_random(&a.k, &rng, 3.0);
    af_fill_random(&a.v, &rng, 1.0);
    float x[800], y[800];
    a.out = fm_tensor_contiguous(x, FM_FLOAT32, 1, 1, 50, 16);
    assert_int_equal(fmr_attention_cpu_isa(bm, &a, FMR_ISA_PORTABLE, NULL, NULL), FM_OK);
    setenv("FLEXMASK_CPU_ISA", "portable", 1);
    a.out.data = y;
    assert_int_equal(fmr_attention_cpu(bm, &a, NULL, NULL), FM_OK);
    assert_memory_equal(x, y, sizeof x);
    setenv("FLEXMASK_CPU_ISA", "sse9", 1);
    fmd_diags d;
    fmd_diags_init(&d);
    assert_int_equal(fmr_attention_cpu(bm, &a, &d, NULL), FM_ERR_INVALID_ARGUMENT);
    assert_int_equal(d.count, 1);
    assert_non_null(strstr(d.items[0].message, "FLEXMASK_CPU_ISA"));
    fmd_diags_clear(&d);
    unsetenv("FLEXMASK_CPU_ISA");
    if (fmr_cpu_has_avx2()) {
        /* The two paths round differently, but agree closely. */
        assert_int_equal(fmr_attention_cpu_isa(bm, &a, FMR_ISA_AVX2, NULL, NULL), FM_OK);
        for (int i = 0; i < 800; i++)
            assert_true(fabsf(x[i] - y[i]) < 1e-5f);
    }
    free(a.q.data);
    free(a.k.data);
    free(a.v.data);
    af_free_bm(bm);
    af_free_mask(&tm);
}

/* ---- masks written as source, through the compiler ---- */

typedef struct source_case {
    const char *text;
    int64_t q_len, kv_len; /* kv_len 0: q_len */
} source_case;

static const source_case source_cases[] = {
    {"mask causal = kv <= q;", 150, 0},
    {"param window = 20;\nparam sinks = 3;\nlet causal = kv <= q;\n"
     "mask sliding_with_sinks = causal && (q - kv < window || kv < sinks);",
     161, 0},
    {"input doc[KV_LEN];\nmask document = kv <= q && doc[q] == doc[kv];", 140, 0},
    {"mask per_head = h % 2 == 0 ? kv <= q : abs(q - kv) < 8;", 90, 0},
    {"mask causal_bottom_right = kv <= q + KV_LEN - Q_LEN;", 37, 101},
    {"mask scattered = (q * 7 + kv * 13 + b) % 5 < 2;", 60, 75},
    {"param every = 4;\nmask sparse_rows = q % every != 0 && kv < q;", 70, 0},
};

/* Compiles text, builds its BlockMask with the compiler's builder and
 * checks attention over it; the evaluation count is checked against that
 * BlockMask's partial tiles. */
static void check_source(const source_case *sc, tu_rng *rng, int64_t bq, int64_t bkv, int64_t D) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmd_source *src = fmd_source_new("<test>", sc->text, strlen(sc->text));
    assert_non_null(src);
    fmd_program *ast = fmd_parse(src, &d);
    assert_non_null(ast);
    bool ok = d.errors == 0 && fmd_check(ast, &d);
    if (!ok) fmd_diags_render(&d, stderr, false);
    assert_true(ok);
    fmc_program *prog = fmc_lower(ast, NULL, &d);
    assert_non_null(prog);

    case_spec s;
    memset(&s, 0, sizeof s);
    s.layout = (int)tu_rng_range(rng, 0, AF_L_COUNT - 1);
    s.B = 2;
    s.KVH = 2;
    s.H = 4;
    s.Q = sc->q_len;
    s.KV = sc->kv_len ? sc->kv_len : sc->q_len;
    s.D = D;
    s.bq = bq;
    s.bkv = bkv;
    s.dq = s.dk = s.dv = s.dout = FM_FLOAT32;
    s.amp = 2.0;

    int64_t params[4];
    for (size_t i = 0; i < prog->nparams; i++)
        params[i] = prog->params[i].default_value;
    int32_t *doc = malloc((size_t)s.KV * sizeof *doc);
    int32_t id = 0;
    for (int64_t i = 0; i < s.KV; i++) {
        if (i > 0 && tu_rng_range(rng, 0, 20) == 0) id++;
        doc[i] = id;
    }
    const int32_t *inputs[1] = {doc};
    int64_t dims[1][FMD_MAX_RANK] = {{s.KV}};
    fmc_env env;
    memset(&env, 0, sizeof env);
    env.batch = s.B;
    env.heads = s.H;
    env.q_len = s.Q;
    env.kv_len = s.KV;
    env.params = params;
    env.inputs = inputs;
    env.input_dims = (const int64_t(*)[FMD_MAX_RANK])dims;
    fmc_build_status st = FMC_BUILD_OK;
    fmc_blockmask *bm = fmc_blockmask_build(prog, &env, bq, bkv, INT64_C(1) << 30, &d, &st);
    if (!bm) fmd_diags_render(&d, stderr, false);
    assert_non_null(bm);
    check_bm(bm, &s, rng);
    fmc_blockmask_free(bm);
    free(doc);
    fmc_program_free(prog);
    fmd_program_free(ast);
    fmd_diags_clear(&d);
}

static void test_source_masks(void **state) {
    (void)state;
    tu_rng rng = {2024};
    size_t n = sizeof source_cases / sizeof source_cases[0];
    for (size_t i = 0; i < n; i++) {
        check_source(&source_cases[i], &rng, 32, 32, 64);
        check_source(&source_cases[i], &rng, tu_rng_range(&rng, 3, 50), tu_rng_range(&rng, 3, 50),
                     tu_rng_range(&rng, 1, 70));
    }
}

/* ---- fmc attend ---- */

static char *temp_path(const char *name) {
    size_t n = strlen(tu_temp_dir()) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", tu_temp_dir(), name);
    return p;
}

static int run_attend(const char *args, char **err) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' attend '%s/examples/masks/causal.mask' %s", FM_FMC_PATH,
             FM_SOURCE_DIR, args);
    return tu_run(cmd, NULL, err);
}

/* The CLI end to end: NumPy files in (float32 and float16, GQA), output and
 * LSE files out, checked against the reference; the device choice and the
 * errors a user can make. */
static void test_fmc_attend(void **state) {
    (void)state;
    tu_rng rng = {11};
    const int64_t B = 1, H = 4, KVH = 2, S = 45, D = 24;
    af_mask tm;
    af_make_mask(&tm, AF_M_CAUSAL, B, H, S, S, &rng);
    fmc_blockmask *bm = af_build_bm(&tm, 128, 128);
    for (int half = 0; half < 2; half++) {
        fm_dtype dt = half ? FM_FLOAT16 : FM_FLOAT32;
        fmr_npy_dtype nd = half ? FMR_NPY_FLOAT16 : FMR_NPY_FLOAT32;
        fm_attention_args a;
        memset(&a, 0, sizeof a);
        a.struct_size = sizeof a;
        a.q = af_make_tensor(dt, AF_L_BHSD, B, H, S, D);
        a.k = af_make_tensor(dt, AF_L_BHSD, B, KVH, S, D);
        a.v = af_make_tensor(dt, AF_L_BHSD, B, KVH, S, D);
        af_fill_random(&a.q, &rng, 2.0);
        af_fill_random(&a.k, &rng, 2.0);
        af_fill_random(&a.v, &rng, 1.0);
        char *paths[5];
        const char *names[5] = {"q.npy", "k.npy", "v.npy", "out.npy", "lse.npy"};
        for (int i = 0; i < 5; i++)
            paths[i] = temp_path(names[i]);
        const fm_tensor *ts[3] = {&a.q, &a.k, &a.v};
        for (int i = 0; i < 3; i++)
            assert_int_equal(fmr_npy_save(paths[i], nd, 4, ts[i]->shape, ts[i]->data, NULL), FM_OK);
        char args[3000], *err = NULL;
        snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --out '%s' --lse '%s' --device cpu",
                 paths[0], paths[1], paths[2], paths[3], paths[4]);
        int rc = run_attend(args, &err);
        if (rc != 0) fail_msg("fmc attend exited %d: %s", rc, err ? err : "");
        free(err);

        size_t nrow = (size_t)(B * H * S);
        double *ref = malloc(nrow * (size_t)D * sizeof *ref),
               *ref_lse = malloc(nrow * sizeof *ref_lse);
        assert_true(ref_attention(bm, &a, ref, ref_lse, NULL));
        fmr_npy out, lse;
        assert_int_equal(fmr_npy_load(paths[3], &out, NULL), FM_OK);
        assert_int_equal(fmr_npy_load(paths[4], &lse, NULL), FM_OK);
        assert_int_equal(out.dtype, FMR_NPY_FLOAT32);
        assert_int_equal(out.rank, 4);
        assert_memory_equal(out.shape, a.q.shape, 4 * sizeof(int64_t));
        assert_int_equal(lse.rank, 3);
        double num = 0, den = 0;
        for (size_t i = 0; i < nrow * (size_t)D; i++) {
            double x = ((const float *)out.data)[i];
            num += (x - ref[i]) * (x - ref[i]);
            den += ref[i] * ref[i];
        }
        assert_true(sqrt(num / den) < (half ? 1e-2 : 1e-5));
        for (size_t i = 0; i < nrow; i++)
            assert_true(fabs(((const float *)lse.data)[i] - ref_lse[i]) < (half ? 1e-2 : 1e-5));
        fmr_npy_free(&out);
        fmr_npy_free(&lse);

        if (!half) {
            /* auto says which device ran; cuda without a usable GPU is
             * refused with the reason. */
            snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --out '%s' --device auto",
                     paths[0], paths[1], paths[2], paths[3]);
            err = NULL;
            assert_int_equal(run_attend(args, &err), 0);
            assert_non_null(err);
            assert_non_null(strstr(err, "fmc attend: running on"));
            free(err);
            snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --out '%s' --device cuda",
                     paths[0], paths[1], paths[2], paths[3]);
            err = NULL;
            rc = run_attend(args, &err);
            char why[256];
            if (!fm_cuda_available(why, sizeof why)) {
                assert_int_equal(rc, 1);
                assert_non_null(strstr(err, "GPU path is unavailable"));
            }
            free(err);
            /* A shape flag that disagrees with the arrays; K given as Q. */
            snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --out '%s' --q-len 44",
                     paths[0], paths[1], paths[2], paths[3]);
            err = NULL;
            assert_int_equal(run_attend(args, &err), 1);
            assert_non_null(strstr(err, "--q-len 44 disagrees"));
            free(err);
            snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --out '%s'", paths[0], paths[0],
                     paths[2], paths[3]);
            err = NULL;
            assert_int_equal(run_attend(args, &err), 1);
            free(err);
            /* Usage errors. */
            snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s'", paths[0], paths[1], paths[2]);
            assert_int_equal(run_attend(args, NULL), 2);
            snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --out '%s' --scale x", paths[0],
                     paths[1], paths[2], paths[3]);
            assert_int_equal(run_attend(args, NULL), 2);
            snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --out '%s' --device tpu",
                     paths[0], paths[1], paths[2], paths[3]);
            assert_int_equal(run_attend(args, NULL), 2);
        }
        for (int i = 0; i < 5; i++) {
            remove(paths[i]);
            free(paths[i]);
        }
        free(ref);
        free(ref_lse);
        free(a.q.data);
        free(a.k.data);
        free(a.v.data);
    }
    af_free_bm(bm);
    af_free_mask(&tm);
}

/* ---- argument checks ---- */

typedef struct bad_fixture {
    af_mask tm;
    fmc_blockmask *bm;
    fm_attention_args a;
    float q[2 * 4 * 20 * 8], k[2 * 2 * 30 * 8], v[2 * 2 * 30 * 8], out[2 * 4 * 20 * 8];
    float lse[2 * 4 * 20];
} bad_fixture;

static void bad_setup(bad_fixture *f) {
    tu_rng rng = {1};
    memset(f, 0, sizeof *f);
    af_make_mask(&f->tm, AF_M_CAUSAL, 2, 4, 20, 30, &rng);
    f->bm = af_build_bm(&f->tm, 8, 8);
    f->a.struct_size = sizeof f->a;
    f->a.q = fm_tensor_contiguous(f->q, FM_FLOAT32, 2, 4, 20, 8);
    f->a.k = fm_tensor_contiguous(f->k, FM_FLOAT32, 2, 2, 30, 8);
    f->a.v = fm_tensor_contiguous(f->v, FM_FLOAT32, 2, 2, 30, 8);
    f->a.out = fm_tensor_contiguous(f->out, FM_FLOAT32, 2, 4, 20, 8);
    f->a.lse = f->lse;
}

/* Runs with the fixture as edited and expects status st with one message
 * containing needle. */
static void expect_refusal(bad_fixture *f, fm_status st, const char *needle) {
    fmd_diags d;
    fmd_diags_init(&d);
    assert_int_equal(fmr_attention_cpu(f->bm, &f->a, &d, NULL), st);
    assert_int_equal(d.count, 1);
    assert_null(d.items[0].file); /* no source location for argument errors */
    if (!strstr(d.items[0].message, needle))
        fail_msg("message '%s' does not mention '%s'", d.items[0].message, needle);
    fmd_diags_clear(&d);
}

static void test_bad_arguments(void **state) {
    (void)state;
    bad_fixture *f = malloc(sizeof *f);
    bad_setup(f);
    assert_int_equal(fmr_attention_cpu(f->bm, &f->a, NULL, NULL), FM_OK); /* the baseline works */

    f->a.q.shape[2] = 21;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "Q_LEN 20");
    f->a.q.shape[2] = 20;
    f->a.k.shape[2] = 31;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "KV_LEN 30");
    f->a.k.shape[2] = 30;
    f->a.k.shape[3] = 4;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "head dimension");
    f->a.k.shape[3] = 8;
    f->a.k.shape[1] = 3;
    f->a.v.shape[1] = 3;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "not a multiple");
    f->a.k.shape[1] = 2;
    f->a.v.shape[1] = 2;
    f->a.v.shape[2] = 29;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "v has shape");
    f->a.v.shape[2] = 30;
    f->a.out.shape[3] = 7;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "out has shape");
    f->a.out.shape[3] = 8;
    f->a.out.dtype = FM_FLOAT16;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "float32 or q's dtype");
    f->a.out.dtype = FM_FLOAT32;
    f->a.k.data = NULL;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "k has no data");
    f->a.k.data = f->k;
    f->a.v.strides[2] = -8;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "negative stride");
    f->a.v.strides[2] = 8;
    f->a.q.dtype = (fm_dtype)9;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "dtype 9");
    f->a.q.dtype = FM_FLOAT32;
    f->a.out.strides[2] = 0;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "share memory");
    f->a.out.strides[2] = 8;
    f->a.q.strides[0] = INT64_MAX / 2;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "strides of q");
    f->a.q.strides[0] = 4 * 20 * 8;
    f->a.scale = INFINITY;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "not finite");
    f->a.scale = 0.0f;
    f->a.num_threads = -1;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, "num_threads");
    f->a.num_threads = 0;
    f->a.q.shape[3] = 0;
    expect_refusal(f, FM_ERR_INVALID_ARGUMENT, ">= 1");
    f->a.q.shape[3] = 8;
    assert_int_equal(fmr_attention_cpu(NULL, &f->a, NULL, NULL), FM_ERR_INVALID_ARGUMENT);
    assert_int_equal(fmr_attention_cpu(f->bm, NULL, NULL, NULL), FM_ERR_INVALID_ARGUMENT);
    assert_int_equal(fmr_attention_cpu(f->bm, &f->a, NULL, NULL), FM_OK);
    af_free_bm(f->bm);
    af_free_mask(&f->tm);
    free(f);
}

/* ---- dtype conversions ---- */

static void test_f16_conversion(void **state) {
    (void)state;
    /* Every half survives the round trip (NaNs stay NaN). */
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = fmr_f16_to_f32((uint16_t)h);
        uint16_t back = fmr_f32_to_f16(f);
        if (isnan(f))
            assert_true((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu) != 0);
        else
            assert_int_equal(back, h);
    }
    /* Half-way between neighbours rounds to the even one; a hair either
     * side rounds to the nearer. Covers subnormals and the largest finite. */
    for (uint32_t h = 0; h < 0x7bffu; h++) {
        double lo = fmr_f16_to_f32((uint16_t)h), hi = fmr_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2);
        assert_true((double)mid == (lo + hi) / 2); /* exact in float32 */
        assert_int_equal(fmr_f32_to_f16(mid), (h & 1u) ? h + 1 : h);
        assert_int_equal(fmr_f32_to_f16(nextafterf(mid, 0.0f)), h);
        assert_int_equal(fmr_f32_to_f16(nextafterf(mid, INFINITY)), h + 1);
        assert_int_equal(fmr_f32_to_f16(-mid), 0x8000u | ((h & 1u) ? h + 1 : h));
    }
    assert_int_equal(fmr_f32_to_f16(65519.996f), 0x7bffu);
    assert_int_equal(fmr_f32_to_f16(65520.0f), 0x7c00u);
    assert_int_equal(fmr_f32_to_f16(1e30f), 0x7c00u);
    assert_int_equal(fmr_f32_to_f16(-INFINITY), 0xfc00u);
    assert_int_equal(fmr_f32_to_f16(0x1p-25f), 0u); /* ties to even: 0 */
    assert_int_equal(fmr_f32_to_f16(nextafterf(0x1p-25f, 1.0f)), 1u);
    assert_int_equal(fmr_f32_to_f16(-0.0f), 0x8000u);
}

static void test_bf16_conversion(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = fmr_bf16_to_f32((uint16_t)h);
        uint16_t back = fmr_f32_to_bf16(f);
        if (isnan(f)) {
            assert_true(isnan(fmr_bf16_to_f32(back)));
            continue;
        }
        assert_int_equal(back, h);
        if ((h & 0x7fffu) >= 0x7f7fu) continue; /* no finite neighbour above */
        double lo = f, hi = fmr_bf16_to_f32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2);
        assert_int_equal(fmr_f32_to_bf16(mid), (h & 1u) ? h + 1 : h);
        assert_int_equal(fmr_f32_to_bf16(nextafterf(mid, (float)lo)), h);
        assert_int_equal(fmr_f32_to_bf16(nextafterf(mid, (float)hi)), h + 1);
    }
    assert_int_equal(fmr_f32_to_bf16(3.4e38f), 0x7f80u); /* past the largest: inf */
    assert_true(isnan(fmr_bf16_to_f32(fmr_f32_to_bf16(NAN))));
}

/* ---- partial tiles evaluated once (runtime/cpu/tile_bits.c) ---- */

typedef struct bits_case {
    const char *src;
    int64_t B, H, Q, KV, block_q, block_kv;
} bits_case;

/* Broadcast and per-head / per-batch masks, clipped tiles, blocks wider
 * than one 64-bit word and narrower than one. */
static const bits_case bits_cases[] = {
    {"mask m = kv <= q;", 1, 3, 130, 130, 64, 64},
    {"mask m = kv <= q && q - kv < 40;", 2, 2, 200, 150, 32, 100},
    {"mask m = h % 2 == 0 ? kv <= q : q - kv < 7 && kv - q < 7;", 1, 4, 97, 101, 16, 128},
    {"mask m = (kv + b) % 3 != 0 && kv <= q + b;", 3, 1, 70, 70, 8, 24},
    {"input doc[KV_LEN];\nmask m = kv <= q && doc[q] == doc[kv];", 1, 2, 300, 300, 128, 128},
    {"mask m = (q * 7 + kv * 3) % 5 < 2;", 2, 3, 65, 129, 64, 65},
};

/* The tile bits hold the mask at every position of every stored partial
 * tile, and fm_attention_cpu (which reads them) gives bit for bit what the
 * per-row evaluation gives, on both ISAs, on the first and a later call. */
static void test_partial_tiles_once(void **state) {
    (void)state;
    tu_rng rng = {77};
    for (size_t ci = 0; ci < sizeof bits_cases / sizeof bits_cases[0]; ci++) {
        const bits_case *c = &bits_cases[ci];
        fm_diagnostics *diags = fm_diagnostics_create();
        fm_program *prog = NULL;
        fm_mask *mask = NULL;
        fm_bindings *bind = NULL;
        fm_blockmask *bmh = NULL;
        assert_int_equal(fm_compile_string("t.mask", c->src, strlen(c->src), diags, &prog), FM_OK);
        assert_int_equal(fm_mask_select(prog, NULL, diags, &mask), FM_OK);
        assert_int_equal(fm_bindings_create(mask, &bind), FM_OK);
        int32_t doc[300];
        int32_t id = 0;
        for (int i = 0; i < 300; i++) doc[i] = id += tu_rng_range(&rng, 0, 20) == 0;
        if (strstr(c->src, "doc")) {
            int64_t dims[1] = {c->KV};
            assert_int_equal(fm_bindings_set_input(bind, "doc", doc, 1, dims, FM_COPY, diags), FM_OK);
        }
        fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = c->block_q, .block_kv = c->block_kv};
        assert_int_equal(fm_blockmask_build(mask, bind, (fm_shape){c->B, c->H, c->Q, c->KV}, &opts,
                                            diags, &bmh),
                         FM_OK);
        const fmc_blockmask *bm = bmh->bm;

        fmr_tile_bits tb;
        assert_true(fmr_tile_bits_build(bm, 2, &tb));
        int64_t nrows = bm->stored_batch * bm->stored_heads * bm->nqb;
        assert_non_null(tb.bits); /* every case has partial tiles */
        int64_t regs[4096];
        for (int64_t r = 0; r < nrows; r++) {
            int64_t qb = r % bm->nqb, sh = r / bm->nqb % bm->stored_heads;
            int64_t sb = r / bm->nqb / bm->stored_heads;
            for (int64_t t = bm->partial.off[r]; t < bm->partial.off[r + 1]; t++) {
                int64_t k0 = (int64_t)bm->partial.idx[t] * bm->block_kv;
                for (int64_t i = 0; i < bm->block_q; i++) {
                    uint8_t keep[256];
                    fmr_tile_bits_row(&tb, t, i, bm->block_kv, keep);
                    for (int64_t j = 0; j < bm->block_kv; j++) {
                        int64_t q = qb * bm->block_q + i, kv = k0 + j;
                        bool want = false;
                        fmc_violation v;
                        if (q < bm->q_len && kv < bm->kv_len)
                            assert_true(fmc_eval_point(bm->program, &bm->env, sb, sh, q, kv, regs,
                                                       &want, &v));
                        if (keep[j] != want)
                            fail_msg("case %zu: tile %lld row %lld col %lld: bit %d, mask %d", ci,
                                     (long long)t, (long long)i, (long long)j, keep[j], want);
                    }
                }
            }
        }
        fmr_tile_bits_free(&tb);

        fm_attention_args a = {.struct_size = sizeof(fm_attention_args), .mask = bmh};
        a.q = af_make_tensor(FM_FLOAT32, 0, c->B, c->H, c->Q, 64);
        a.k = af_make_tensor(FM_FLOAT32, 0, c->B, c->H, c->KV, 64);
        a.v = af_make_tensor(FM_FLOAT32, 0, c->B, c->H, c->KV, 64);
        af_fill_random(&a.q, &rng, 2.0);
        af_fill_random(&a.k, &rng, 2.0);
        af_fill_random(&a.v, &rng, 1.0);
        size_t n = (size_t)(c->B * c->H * c->Q * 64), nl = (size_t)(c->B * c->H * c->Q);
        /* A call with a wrong argument fails before evaluating any tile. */
        fm_attention_args bad = a;
        bad.out = af_make_tensor(FM_FLOAT32, 0, c->B, c->H, c->Q, 32);
        assert_int_equal(fm_attention_cpu(&bad, NULL), FM_ERR_INVALID_ARGUMENT);
        assert_false(bmh->tile_bits_tried);
        free(bad.out.data);
        fmr_isa isas[2] = {FMR_ISA_PORTABLE, FMR_ISA_AVX2};
        for (int ii = 0; ii < (fmr_cpu_has_avx2() ? 2 : 1); ii++) {
            fm_tensor ref = af_make_tensor(FM_FLOAT32, 0, c->B, c->H, c->Q, 64);
            float *ref_lse = malloc(nl * sizeof(float)), *lse = malloc(nl * sizeof(float));
            a.out = ref;
            a.lse = ref_lse;
            assert_int_equal(fmr_attention_cpu_isa(bm, &a, isas[ii], NULL, NULL), FM_OK);
            for (int call = 0; call < 2; call++) {
                fm_tensor out = af_make_tensor(FM_FLOAT32, 0, c->B, c->H, c->Q, 64);
                a.out = out;
                a.lse = lse;
                setenv("FLEXMASK_CPU_ISA", ii ? "avx2" : "portable", 1);
                assert_int_equal(fm_attention_cpu(&a, diags), FM_OK);
                unsetenv("FLEXMASK_CPU_ISA");
                assert_memory_equal(out.data, ref.data, n * sizeof(float));
                assert_memory_equal(lse, ref_lse, nl * sizeof(float));
                free(out.data);
            }
            free(ref.data);
            free(ref_lse);
            free(lse);
        }
        assert_non_null(bmh->tile_bits.bits); /* the public call kept them */
        free(a.q.data);
        free(a.k.data);
        free(a.v.data);
        fm_blockmask_free(bmh);
        fm_bindings_free(bind);
        fm_mask_free(mask);
        fm_program_free(prog);
        fm_diagnostics_free(diags);
    }
}

/* ---- NaN and infinities (docs/language.md, "NaN and infinities") ---- */

/* B 1, HEADS 4 over 2 key/value heads (GQA), causal over 70 x 70 in
 * 16 x 16 tiles: diagonal tiles partial, those below full, the last ones
 * clipped. Column 3 of Q is 1 so that an infinity in column 3 of a K row
 * gives that key an infinite score of the same sign. */
#define NF_H 4
#define NF_KVH 2
#define NF_S 70
#define NF_D 24
#define NF_N (NF_H * NF_S * NF_D)
#define NF_ROWS (NF_H * NF_S)

typedef struct nf_fixture {
    af_mask tm;
    fmc_blockmask *bm;
    fm_attention_args a;
    float out[NF_N], lse[NF_ROWS];       /* the latest run (portable, 1 thread) */
    float clean[NF_N], clean_lse[NF_ROWS]; /* before any non-finite value */
} nf_fixture;

static void nf_setup(nf_fixture *f, fm_dtype dt) {
    tu_rng rng = {77};
    memset(f, 0, sizeof *f);
    af_make_mask(&f->tm, AF_M_CAUSAL, 1, NF_H, NF_S, NF_S, &rng);
    f->bm = af_build_bm(&f->tm, 16, 16);
    assert_true(f->bm->stats.partial > 0 && f->bm->stats.full > 0);
    f->a.struct_size = sizeof f->a;
    f->a.q = af_make_tensor(dt, AF_L_BHSD, 1, NF_H, NF_S, NF_D);
    f->a.k = af_make_tensor(dt, AF_L_BSHD, 1, NF_KVH, NF_S, NF_D);
    f->a.v = af_make_tensor(dt, AF_L_BHSD, 1, NF_KVH, NF_S, NF_D);
    af_fill_random(&f->a.q, &rng, 1.0);
    af_fill_random(&f->a.k, &rng, 1.0);
    af_fill_random(&f->a.v, &rng, 1.0);
    for (int64_t h = 0; h < NF_H; h++)
        for (int64_t q = 0; q < NF_S; q++) ref_tensor_set(&f->a.q, 0, h, q, 3, 1.0);
    f->a.out = fm_tensor_contiguous(f->out, FM_FLOAT32, 1, NF_H, NF_S, NF_D);
    f->a.lse = f->lse;
}

static void nf_free(nf_fixture *f) {
    free(f->a.q.data);
    free(f->a.k.data);
    free(f->a.v.data);
    af_free_bm(f->bm);
    af_free_mask(&f->tm);
}

static bool nf_same_class(float x, float y) {
    return isnan(x) == isnan(y) && isinf(x) == isinf(y) && (!isinf(x) || x == y);
}

/* Runs on both ISAs with 1 and 3 threads: thread counts agree bit for bit,
 * the ISAs on which values are NaN or infinite and closely elsewhere. Leaves
 * the portable result in f->out and f->lse. */
static void nf_run(nf_fixture *f) {
    static float first[NF_N], first_lse[NF_ROWS], port[NF_N], port_lse[NF_ROWS];
    fmr_isa isas[2] = {FMR_ISA_PORTABLE, FMR_ISA_AVX2};
    int threads[2] = {1, 3};
    for (int ii = 0; ii < (fmr_cpu_has_avx2() ? 2 : 1); ii++) {
        for (int t = 0; t < 2; t++) {
            f->a.num_threads = threads[t];
            memset(f->out, 0xff, sizeof f->out);
            assert_int_equal(fmr_attention_cpu_isa(f->bm, &f->a, isas[ii], NULL, NULL), FM_OK);
            if (t == 0) {
                memcpy(first, f->out, sizeof first);
                memcpy(first_lse, f->lse, sizeof first_lse);
            } else {
                assert_memory_equal(first, f->out, sizeof first);
                assert_memory_equal(first_lse, f->lse, sizeof first_lse);
            }
        }
        if (ii == 0) {
            memcpy(port, first, sizeof port);
            memcpy(port_lse, first_lse, sizeof port_lse);
            continue;
        }
        for (size_t i = 0; i < NF_N; i++) {
            if (!nf_same_class(port[i], first[i]))
                fail_msg("element %zu: portable %g, avx2 %g", i, port[i], first[i]);
            if (isfinite(port[i])) assert_true(fabsf(port[i] - first[i]) <= 1e-5f);
        }
        for (size_t i = 0; i < NF_ROWS; i++) {
            if (!nf_same_class(port_lse[i], first_lse[i]))
                fail_msg("LSE %zu: portable %g, avx2 %g", i, port_lse[i], first_lse[i]);
            if (isfinite(port_lse[i]))
                assert_true(fabsf(port_lse[i] - first_lse[i]) <=
                            1e-4f * fmaxf(1.0f, fabsf(port_lse[i])));
        }
    }
    memcpy(f->out, port, sizeof port);
    memcpy(f->lse, port_lse, sizeof port_lse);
}

/* The latest run against the float64 reference, NaN for NaN, -inf for -inf. */
static void nf_check_ref(nf_fixture *f) {
    double *ref = malloc(NF_N * sizeof *ref), *ref_lse = malloc(NF_ROWS * sizeof *ref_lse);
    assert_true(ref_attention(f->bm, &f->a, ref, ref_lse, NULL));
    for (size_t i = 0; i < NF_N; i++) {
        if (!nf_same_class(f->out[i], (float)ref[i]))
            fail_msg("element %zu (row %zu): %g, reference %g", i, i / NF_D, f->out[i], ref[i]);
        if (isfinite(ref[i]) && fabs(f->out[i] - ref[i]) > 2e-3)
            fail_msg("element %zu (row %zu): %g, reference %g", i, i / NF_D, f->out[i], ref[i]);
    }
    for (size_t i = 0; i < NF_ROWS; i++) {
        if (!nf_same_class(f->lse[i], (float)ref_lse[i]))
            fail_msg("LSE of row %zu: %g, reference %g", i, f->lse[i], ref_lse[i]);
        if (isfinite(ref_lse[i]) && fabs(f->lse[i] - ref_lse[i]) > 1e-3 * fmax(1, fabs(ref_lse[i])))
            fail_msg("LSE of row %zu: %g, reference %g", i, f->lse[i], ref_lse[i]);
    }
    free(ref);
    free(ref_lse);
}

static size_t nf_row(int64_t h, int64_t q) {
    return (size_t)(h * NF_S + q);
}

/* A poisoned row: output NaN throughout; LSE NaN when some true score is
 * NaN, else +inf (lse_nan false), as torch.logsumexp gives. */
static void nf_expect_nan_row(const nf_fixture *f, size_t row, bool lse_nan) {
    for (size_t d = 0; d < NF_D; d++)
        if (!isnan(f->out[row * NF_D + d]))
            fail_msg("row %zu col %zu is %g, not NaN", row, d, f->out[row * NF_D + d]);
    float x = f->lse[row];
    if (lse_nan ? !isnan(x) : !(x == INFINITY))
        fail_msg("LSE of row %zu is %g, not %s", row, x, lse_nan ? "NaN" : "+inf");
}

/* Every row but the NaN ones (nan_row(h, q) true) is as in the clean run,
 * bit for bit; the NaN ones are poisoned (nf_expect_nan_row). */
static void nf_expect_rows(const nf_fixture *f, bool (*nan_row)(int64_t h, int64_t q),
                           bool lse_nan) {
    int64_t nans = 0;
    for (int64_t h = 0; h < NF_H; h++)
        for (int64_t q = 0; q < NF_S; q++) {
            size_t r = nf_row(h, q);
            if (nan_row(h, q)) {
                nf_expect_nan_row(f, r, lse_nan);
                nans++;
                continue;
            }
            if (memcmp(f->out + r * NF_D, f->clean + r * NF_D, NF_D * sizeof(float)) != 0 ||
                memcmp(&f->lse[r], &f->clean_lse[r], sizeof(float)) != 0)
                fail_msg("row %zu (head %lld, q %lld) changed", r, (long long)h, (long long)q);
        }
    assert_true(nans > 0);
}

static void nf_clean_run(nf_fixture *f) {
    nf_run(f);
    nf_check_ref(f);
    memcpy(f->clean, f->out, sizeof f->clean);
    memcpy(f->clean_lse, f->lse, sizeof f->clean_lse);
}

static void nf_set_k_row(nf_fixture *f, int64_t kvh, int64_t kv, double x) {
    for (int64_t d = 0; d < NF_D; d++) ref_tensor_set(&f->a.k, 0, kvh, kv, d, x);
}

static bool nan_row_q_h1_q37(int64_t h, int64_t q) {
    return h == 1 && q == 37;
}

/* kv 20 of key/value head 0 (heads 0 and 1): true for q >= 20, in a
 * partial tile for q < 32 and a full one beyond. */
static bool nan_row_k20(int64_t h, int64_t q) {
    return h < 2 && q >= 20;
}

static bool nan_row_q69_kvh1(int64_t h, int64_t q) {
    return h >= 2 && q == 69;
}

/* A NaN in one element of Q: that row is NaN (output and LSE), every other
 * row is unchanged, bit for bit. */
static void test_nan_in_q(void **state) {
    (void)state;
    fm_dtype dts[3] = {FM_FLOAT32, FM_FLOAT16, FM_BFLOAT16};
    for (int di = 0; di < 3; di++) {
        nf_fixture *f = malloc(sizeof *f);
        nf_setup(f, dts[di]);
        nf_clean_run(f);
        ref_tensor_set(&f->a.q, 0, 1, 37, 5, NAN);
        nf_run(f);
        nf_expect_rows(f, nan_row_q_h1_q37, true);
        nf_check_ref(f);
        /* +inf in Q, column 3 of k of both signs (never 0): the row
         * scores +inf and -inf, no NaN; its LSE is +inf. */
        ref_tensor_set(&f->a.q, 0, 1, 37, 5, 0.5);
        ref_tensor_set(&f->a.q, 0, 1, 37, 3, INFINITY);
        nf_run(f);
        nf_expect_rows(f, nan_row_q_h1_q37, false);
        nf_free(f);
        free(f);
    }
}

/* +inf and NaN in one K row: every row for which that key is true is NaN;
 * rows for which it is false (q < 20: masked positions are never scored)
 * and heads reading the other key/value head are unchanged. */
static void test_inf_nan_in_k(void **state) {
    (void)state;
    nf_fixture *f = malloc(sizeof *f);
    nf_setup(f, FM_FLOAT32);
    nf_clean_run(f);
    double orig = ref_tensor_get(&f->a.k, 0, 0, 20, 3), orig40 = ref_tensor_get(&f->a.k, 0, 0, 40, 3);
    double bad[2] = {INFINITY, NAN};
    for (int i = 0; i < 2; i++) {
        ref_tensor_set(&f->a.k, 0, 0, 20, 3, bad[i]);
        nf_run(f);
        nf_expect_rows(f, nan_row_k20, isnan(bad[i]));
        nf_check_ref(f);
    }
    /* +inf and NaN in one row, in different tiles and either order: the
     * LSE is NaN from the NaN on (a NaN poisons for good, whatever comes
     * after), +inf where the row keeps only the +inf. */
    for (int i = 0; i < 2; i++) {
        ref_tensor_set(&f->a.k, 0, 0, 20, 3, bad[i]);
        ref_tensor_set(&f->a.k, 0, 0, 40, 3, bad[1 - i]);
        nf_run(f);
        nf_check_ref(f);
        for (int64_t h = 0; h < 2; h++) {
            nf_expect_nan_row(f, nf_row(h, 30), i == 1);
            nf_expect_nan_row(f, nf_row(h, 45), true);
            nf_expect_nan_row(f, nf_row(h, 69), true);
        }
    }
    ref_tensor_set(&f->a.k, 0, 0, 40, 3, orig40);
    /* kv 69 is true only for q 69, in the clipped partial tile 64..69:
     * an inf there reaches no other row of that tile. */
    ref_tensor_set(&f->a.k, 0, 0, 20, 3, orig);
    ref_tensor_set(&f->a.k, 0, 1, 69, 3, INFINITY);
    nf_run(f);
    nf_expect_rows(f, nan_row_q69_kvh1, false);
    nf_check_ref(f);
    nf_free(f);
    free(f);
}

/* A -inf score drops the position; a row whose true scores are all -inf
 * is zeros with LSE -inf, like a row with no true position. */
static void test_neg_inf_scores(void **state) {
    (void)state;
    nf_fixture *f = malloc(sizeof *f);
    nf_setup(f, FM_FLOAT32);
    ref_tensor_set(&f->a.k, 0, 0, 0, 3, -INFINITY); /* row q 0 keeps only kv 0 */
    ref_tensor_set(&f->a.k, 0, 1, 20, 3, -INFINITY);
    ref_tensor_set(&f->a.k, 0, 1, 45, 3, -INFINITY);
    nf_run(f);
    nf_check_ref(f);
    for (int64_t h = 0; h < 2; h++) {
        size_t r = nf_row(h, 0);
        for (size_t d = 0; d < NF_D; d++) assert_true(f->out[r * NF_D + d] == 0.0f);
        assert_true(isinf(f->lse[r]) && f->lse[r] < 0);
    }
    for (size_t i = 0; i < NF_N; i++) assert_true(isfinite(f->out[i]));
    /* Rows that keep other keys besides the dropped ones (heads 2 and 3 at
     * q 50 drop kv 20 and 45) have a finite LSE. */
    assert_true(isfinite(f->lse[nf_row(2, 50)]) && isfinite(f->lse[nf_row(3, 50)]));
    /* Such a row stays empty whatever V holds at its -inf keys; rows that
     * keep kv 0 with weight 0 beside others get 0 * NaN = NaN in column 7. */
    ref_tensor_set(&f->a.v, 0, 0, 0, 7, NAN);
    nf_run(f);
    nf_check_ref(f);
    for (int64_t h = 0; h < 2; h++) {
        size_t r = nf_row(h, 0);
        for (size_t d = 0; d < NF_D; d++) assert_true(f->out[r * NF_D + d] == 0.0f);
        assert_true(isinf(f->lse[r]) && f->lse[r] < 0);
        assert_true(isnan(f->out[nf_row(h, 1) * NF_D + 7]));
    }
    nf_free(f);
    free(f);
}

/* A NaN in V at a true position reaches that column of the row's output
 * through P V, even where the position's weight is 0 (a -inf score):
 * 0 * NaN = NaN, in partial tiles (rows 5..15 at kv 5) as in full ones
 * (rows >= 16). False positions (q < 5) never read it. The LSE does not
 * depend on V. */
static void nf_expect_v_col_nan(const nf_fixture *f, const float *lse) {
    for (int64_t h = 0; h < NF_H; h++)
        for (int64_t q = 0; q < NF_S; q++) {
            size_t r = nf_row(h, q);
            assert_memory_equal(&f->lse[r], &lse[r], sizeof(float));
            for (size_t d = 0; d < NF_D; d++) {
                float x = f->out[r * NF_D + d], c = f->clean[r * NF_D + d];
                if (h < 2 && q >= 5 && d == 7) {
                    if (!isnan(x)) fail_msg("head %lld q %lld col 7 is %g, not NaN", (long long)h,
                                            (long long)q, x);
                } else if (!(fabsf(x - c) <= 1e-5f)) {
                    fail_msg("head %lld q %lld col %zu is %g, was %g", (long long)h, (long long)q,
                             d, x, c);
                }
            }
        }
}

static void test_nan_in_v(void **state) {
    (void)state;
    nf_fixture *f = malloc(sizeof *f);
    nf_setup(f, FM_FLOAT32);
    nf_clean_run(f);
    ref_tensor_set(&f->a.v, 0, 0, 5, 7, NAN);
    nf_run(f);
    nf_expect_v_col_nan(f, f->clean_lse);
    nf_check_ref(f);
    /* The key's score -inf: weight exactly 0 in every row, still NaN. */
    ref_tensor_set(&f->a.k, 0, 0, 5, 3, -INFINITY);
    ref_tensor_set(&f->a.v, 0, 0, 5, 7, 0.5);
    nf_run(f);
    memcpy(f->clean, f->out, sizeof f->clean);
    memcpy(f->clean_lse, f->lse, sizeof f->clean_lse);
    ref_tensor_set(&f->a.v, 0, 0, 5, 7, NAN);
    nf_run(f);
    nf_expect_v_col_nan(f, f->clean_lse);
    nf_check_ref(f);
    nf_free(f);
    free(f);
}

/* Scores that overflow float32 are infinite: +inf makes the row NaN, -inf
 * drops the key. fp32 and bf16 inputs of 1e20 overflow (1e40 * D); fp16
 * cannot (65504^2 * D is far inside float32), so its largest finite values
 * give a finite, ordinary row, and only an fp16 inf makes one NaN. */
static void test_score_overflow(void **state) {
    (void)state;
    fm_dtype dts[2] = {FM_FLOAT32, FM_BFLOAT16};
    for (int di = 0; di < 2; di++) {
        nf_fixture *f = malloc(sizeof *f);
        nf_setup(f, dts[di]);
        for (int64_t d = 0; d < NF_D; d++) {
            ref_tensor_set(&f->a.q, 0, 2, 50, d, 1e20);
            ref_tensor_set(&f->a.q, 0, 2, 51, d, -1e20);
        }
        nf_clean_run(f);
        nf_set_k_row(f, 1, 10, 1e20);
        nf_run(f);
        nf_check_ref(f);
        nf_expect_nan_row(f, nf_row(2, 50), false);
        /* q 51 scores kv 10 at -inf (dropped): finite output. */
        assert_true(isfinite(f->out[nf_row(2, 51) * NF_D]) && isfinite(f->lse[nf_row(2, 51)]));
        nf_free(f);
        free(f);
    }
    nf_fixture *f = malloc(sizeof *f);
    nf_setup(f, FM_FLOAT16);
    for (int64_t d = 0; d < NF_D; d++) ref_tensor_set(&f->a.q, 0, 2, 50, d, 65504.0);
    nf_set_k_row(f, 1, 10, 65504.0);
    nf_clean_run(f);
    for (size_t i = 0; i < NF_N; i++) assert_true(isfinite(f->out[i]));
    /* One-hot on kv 10: the row is V's row 10. */
    assert_true(fabsf(f->out[nf_row(2, 50) * NF_D] -
                      (float)ref_tensor_get(&f->a.v, 0, 1, 10, 0)) < 1e-6f);
    ref_tensor_set(&f->a.k, 0, 1, 10, 3, INFINITY);
    nf_run(f);
    nf_check_ref(f);
    nf_expect_nan_row(f, nf_row(2, 50), false);
    nf_free(f);
    free(f);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_conversion),
        cmocka_unit_test(test_bf16_conversion),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_isa_switch),
        cmocka_unit_test(test_each_mask),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_odd_sizes),
        cmocka_unit_test(test_thread_determinism),
        cmocka_unit_test(test_nonfinite_masked_values),
        cmocka_unit_test(test_source_masks),
        cmocka_unit_test(test_fmc_attend),
        cmocka_unit_test(test_random_cases),
        cmocka_unit_test(test_partial_tiles_once),
        cmocka_unit_test(test_nan_in_q),
        cmocka_unit_test(test_inf_nan_in_k),
        cmocka_unit_test(test_neg_inf_scores),
        cmocka_unit_test(test_nan_in_v),
        cmocka_unit_test(test_score_overflow),
    };
    return TU_RUN(tests, argc, argv);
}
