/* Dense masks: import (boolean and additive, every rank, broadcasting),
 * export to arrays and .npy, checked tile for tile against BlockMasks of
 * equivalent mask programs and point by point against the masks. Imports
 * keep a byte copy of the array (not int32): everything that reads it
 * (tiles, eval, export, CPU attention on both ISAs, the safetensors writer,
 * the CUDA text) is checked against the same mask over an int32 input. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/codegen_cuda.h"
#include "flexmask.h"
#include "runtime/api/api_internal.h"
#include "runtime/cpu/attention_cpu.h"
#include "runtime/cuda/jit.h"
#include "runtime/interop/npy.h"
#include "testutil.h"

/* Compiles text, binds one input (may be NULL) and builds. */
static fm_blockmask *build_text(const char *text, const char *input, const int32_t *data,
                                size_t rank, const int64_t *dims, const char *param, int64_t value,
                                fm_shape s, int64_t bq, int64_t bkv) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *p = NULL;
    fm_mask *m = NULL;
    fm_bindings *b = NULL;
    fm_blockmask *bm = NULL;
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = bq, .block_kv = bkv};
    fm_status st = fm_compile_string("test.mask", text, strlen(text), d, &p);
    if (st == FM_OK) st = fm_mask_select(p, NULL, d, &m);
    if (st == FM_OK) st = fm_bindings_create(m, &b);
    if (st == FM_OK && input) st = fm_bindings_set_input(b, input, data, rank, dims, FM_COPY, d);
    if (st == FM_OK && param) st = fm_bindings_set_param(b, param, value, d);
    if (st == FM_OK) st = fm_blockmask_build(m, b, s, &o, d, &bm);
    if (st != FM_OK) tu_fail_with(st, d, text);
    assert_int_equal(st, FM_OK);
    fm_bindings_free(b);
    fm_mask_free(m);
    fm_program_free(p);
    fm_diagnostics_free(d);
    return bm;
}

static fm_blockmask *import(const void *data, fm_dense_kind kind, size_t rank, const int64_t *dims,
                            const fm_shape *shape, int64_t bq, int64_t bkv) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = bq, .block_kv = bkv};
    fm_blockmask *bm = NULL;
    fm_status st = fm_blockmask_from_dense(data, kind, rank, dims, shape, &o, d, &bm);
    if (st != FM_OK) tu_fail_with(st, d, "dense import");
    assert_int_equal(st, FM_OK);
    fm_diagnostics_free(d);
    return bm;
}

/* Tile for tile: shape, flags, counts and every row's lists. */
static void assert_same_tiles(const fm_blockmask *x, const fm_blockmask *y, bool same_flags) {
    fm_blockmask_info a, b;
    assert_int_equal(fm_blockmask_get_info(x, &a), FM_OK);
    assert_int_equal(fm_blockmask_get_info(y, &b), FM_OK);
    assert_memory_equal(&a.shape, &b.shape, sizeof a.shape);
    assert_int_equal(a.num_q_blocks, b.num_q_blocks);
    assert_int_equal(a.num_kv_blocks, b.num_kv_blocks);
    if (same_flags) {
        assert_int_equal(a.broadcast_batch, b.broadcast_batch);
        assert_int_equal(a.broadcast_heads, b.broadcast_heads);
    }
    assert_int_equal(a.full_tiles, b.full_tiles);
    assert_int_equal(a.partial_tiles, b.partial_tiles);
    assert_int_equal(a.empty_tiles, b.empty_tiles);
    if (a.true_positions >= 0 && b.true_positions >= 0) /* -1: not counted */
        assert_int_equal(a.true_positions, b.true_positions);
    for (int64_t bb = 0; bb < a.shape.batch; bb++)
        for (int64_t h = 0; h < a.shape.heads; h++)
            for (int64_t i = 0; i < a.num_q_blocks; i++) {
                const int32_t *f1, *p1, *f2, *p2;
                int64_t nf1, np1, nf2, np2;
                assert_int_equal(fm_blockmask_row(x, bb, h, i, &f1, &nf1, &p1, &np1), FM_OK);
                assert_int_equal(fm_blockmask_row(y, bb, h, i, &f2, &nf2, &p2, &np2), FM_OK);
                assert_int_equal(nf1, nf2);
                assert_int_equal(np1, np2);
                if (nf1) assert_memory_equal(f1, f2, (size_t)nf1 * 4);
                if (np1) assert_memory_equal(p1, p2, (size_t)np1 * 4);
            }
}

/* A random 0/1 array with runs and blocks, so full and empty tiles occur. */
static void random_dense(tu_rng *rng, uint8_t *m, int64_t slices, int64_t q, int64_t kv) {
    for (int64_t s = 0; s < slices; s++) {
        int style = (int)tu_rng_range(rng, 0, 3);
        int64_t w = tu_rng_range(rng, 1, kv);
        for (int64_t i = 0; i < q; i++)
            for (int64_t j = 0; j < kv; j++) {
                uint8_t v;
                switch (style) {
                case 0: v = (uint8_t)tu_rng_range(rng, 0, 1); break;
                case 1: v = j <= i && i - j < w; break;
                case 2: v = (i / 4 + j / 4 + s) % 3 == 0 || (tu_rng_range(rng, 0, 40) == 0); break;
                default: v = j < w; break;
                }
                m[(s * q + i) * kv + j] = v;
            }
    }
}

static void test_random_dense_equals_program(void **state) {
    tu_rng rng = {2024};
    for (int iter = 0; iter < tu_cases(40); iter++) {
        size_t rank = (size_t)tu_rng_range(&rng, 2, 4);
        int64_t B = rank == 4 ? tu_rng_range(&rng, 1, 3) : 1;
        int64_t H = rank >= 3 ? tu_rng_range(&rng, 1, 3) : 1;
        int64_t Q = tu_rng_range(&rng, 1, 40), KV = tu_rng_range(&rng, 1, 40);
        int64_t dims[4], k = 0;
        if (rank == 4) dims[k++] = B;
        if (rank >= 3) dims[k++] = H;
        dims[k++] = Q;
        dims[k++] = KV;
        int64_t n = B * H * Q * KV;
        uint8_t *m = malloc((size_t)n);
        int32_t *m32 = malloc((size_t)n * 4);
        float *add = malloc((size_t)n * 4);
        random_dense(&rng, m, B * H, Q, KV);
        for (int64_t i = 0; i < n; i++) {
            m32[i] = m[i];
            add[i] = m[i] ? (i % 2 ? 0.0f : -0.0f) : -INFINITY;
        }
        /* Build for a shape that broadcasts the size-1 dims. */
        fm_shape s = {B == 1 ? tu_rng_range(&rng, 1, 3) : B, H == 1 ? tu_rng_range(&rng, 1, 3) : H,
                      Q, KV};
        int64_t bq = tu_rng_range(&rng, 1, 9), bkv = tu_rng_range(&rng, 1, 9);
        /* The equivalent program, written by hand (another spelling). */
        char text[256];
        const char *lead_decl = rank == 4 ? (B == 1 ? "1, " : "BATCH, ") : "";
        const char *lead_idx = rank == 4 ? (B == 1 ? "0, " : "b, ") : "";
        const char *head_decl = rank >= 3 ? (H == 1 ? "1, " : "HEADS, ") : "";
        const char *head_idx = rank >= 3 ? (H == 1 ? "0, " : "h, ") : "";
        snprintf(text, sizeof text, "input m[%s%sQ_LEN, KV_LEN];\nmask x = m[%s%sq, kv] == 1;\n",
                 lead_decl, head_decl, lead_idx, head_idx);
        fm_blockmask *want = build_text(text, "m", m32, rank, dims, NULL, 0, s, bq, bkv);
        fm_blockmask *got = import(m, FM_DENSE_BOOL, rank, dims, &s, bq, bkv);
        fm_blockmask *got_add = import(add, FM_DENSE_ADDITIVE, rank, dims, &s, bq, bkv);
        assert_same_tiles(want, got, true);
        assert_same_tiles(want, got_add, true);
        fm_blockmask_info info;
        fm_blockmask_get_info(got, &info);
        assert_int_equal(info.broadcast_batch, B == 1);
        assert_int_equal(info.broadcast_heads, H == 1);
        /* And the export gives the array back, broadcast over the shape. */
        uint8_t *dense = NULL;
        size_t count = 0;
        assert_int_equal(fm_blockmask_to_dense(got, &dense, &count, NULL), FM_OK);
        assert_int_equal(count, (size_t)(s.batch * s.heads * Q * KV));
        for (int64_t b = 0; b < s.batch; b++)
            for (int64_t h = 0; h < s.heads; h++)
                assert_memory_equal(dense + (b * s.heads + h) * Q * KV,
                                    m + ((B == 1 ? 0 : b) * H + (H == 1 ? 0 : h)) * Q * KV,
                                    (size_t)(Q * KV));
        fm_free(dense);
        fm_blockmask_free(want);
        fm_blockmask_free(got);
        fm_blockmask_free(got_add);
        free(m);
        free(m32);
        free(add);
    }
}

static void test_dense_of_known_masks(void **state) {
    /* Dense arrays of causal sliding-window and per-head masks give the
     * tiles of the mask files themselves (analysis and import agree). */
    const char *sliding = "param window = 256;\nmask s = kv <= q && q - kv < window;\n";
    const char *per_head = "param window = 256;\nlet causal = kv <= q;\n"
                           "mask p = h % 2 == 0 ? causal && q - kv < window : causal;\n";
    fm_shape s = {1, 4, 77, 90};
    for (int which = 0; which < 2; which++) {
        fm_blockmask *want =
            build_text(which ? per_head : sliding, NULL, NULL, 0, NULL, "window", 13, s, 8, 16);
        uint8_t *dense = NULL;
        assert_int_equal(fm_blockmask_to_dense(want, &dense, NULL, NULL), FM_OK);
        for (int64_t h = 0; h < s.heads; h++)
            for (int64_t q = 0; q < s.q_len; q++)
                for (int64_t kv = 0; kv < s.kv_len; kv++) {
                    bool v = kv <= q && (which && h % 2 ? true : q - kv < 13);
                    assert_int_equal(dense[(h * s.q_len + q) * s.kv_len + kv], v);
                }
        int64_t dims4[4] = {1, 4, 77, 90};
        fm_blockmask *got = import(dense, FM_DENSE_BOOL, 4, dims4, NULL, 8, 16);
        assert_same_tiles(want, got, false);
        if (which == 0) {
            /* Head slices are equal: rank 2 with broadcasting gives the same. */
            int64_t dims2[2] = {77, 90};
            fm_blockmask *b2 = import(dense, FM_DENSE_BOOL, 2, dims2, &s, 8, 16);
            assert_same_tiles(want, b2, true);
            fm_blockmask_free(b2);
        }
        /* Attention over either is the same, bit for bit. */
        enum { D = 8 };
        size_t nq = (size_t)(s.heads * s.q_len * D), nk = (size_t)(s.heads * s.kv_len * D);
        float *Q = malloc(nq * 4), *K = malloc(nk * 4), *V = malloc(nk * 4), *o1 = malloc(nq * 4),
              *o2 = malloc(nq * 4);
        tu_rng rng = {3};
        for (size_t i = 0; i < nq; i++)
            Q[i] = (float)tu_rng_range(&rng, -1000, 1000) / 500.0f;
        for (size_t i = 0; i < nk; i++) {
            K[i] = (float)tu_rng_range(&rng, -1000, 1000) / 500.0f;
            V[i] = (float)tu_rng_range(&rng, -1000, 1000) / 500.0f;
        }
        fm_attention_args args = {.struct_size = sizeof(fm_attention_args)};
        args.q = fm_tensor_contiguous(Q, FM_FLOAT32, 1, s.heads, s.q_len, D);
        args.k = fm_tensor_contiguous(K, FM_FLOAT32, 1, s.heads, s.kv_len, D);
        args.v = fm_tensor_contiguous(V, FM_FLOAT32, 1, s.heads, s.kv_len, D);
        args.mask = want;
        args.out = fm_tensor_contiguous(o1, FM_FLOAT32, 1, s.heads, s.q_len, D);
        assert_int_equal(fm_attention_cpu(&args, NULL), FM_OK);
        args.mask = got;
        args.out = fm_tensor_contiguous(o2, FM_FLOAT32, 1, s.heads, s.q_len, D);
        assert_int_equal(fm_attention_cpu(&args, NULL), FM_OK);
        assert_memory_equal(o1, o2, nq * 4);
        free(Q);
        free(K);
        free(V);
        free(o1);
        free(o2);
        fm_free(dense);
        fm_blockmask_free(want);
        fm_blockmask_free(got);
    }
}

static void test_export_padding_mask(void **state) {
    /* Per-batch lengths: export equals the definition at every point, with
     * clipped tiles (Q, KV not multiples of the blocks). */
    const char *text = "input len[BATCH];\nmask m = kv <= q && q < len[b];\n";
    int32_t len[3] = {5, 19, 0};
    int64_t dims = 3;
    fm_shape s = {3, 2, 19, 23};
    fm_blockmask *bm = build_text(text, "len", len, 1, &dims, NULL, 0, s, 4, 8);
    uint8_t *dense = NULL;
    size_t count;
    assert_int_equal(fm_blockmask_to_dense(bm, &dense, &count, NULL), FM_OK);
    assert_int_equal(count, 3 * 2 * 19 * 23);
    for (int64_t b = 0; b < 3; b++)
        for (int64_t h = 0; h < 2; h++)
            for (int64_t q = 0; q < 19; q++)
                for (int64_t kv = 0; kv < 23; kv++) {
                    bool want = kv <= q && q < len[b];
                    assert_int_equal(dense[((b * 2 + h) * 19 + q) * 23 + kv], want);
                }
    fm_free(dense);
    fm_blockmask_free(bm);
}

static void test_npy_round_trip(void **state) {
    const char *text = "mask m = kv <= q && q - kv < 5;\n";
    fm_shape s = {2, 3, 21, 21};
    fm_blockmask *bm = build_text(text, NULL, NULL, 0, NULL, NULL, 0, s, 4, 4);
    char *path = tu_write_temp("dense_export.npy", "", 0);
    fm_diagnostics *d = fm_diagnostics_create();
    assert_int_equal(fm_blockmask_save_dense_npy(bm, path, d), FM_OK);
    fmr_npy a;
    assert_int_equal(fmr_npy_load(path, &a, NULL), FM_OK);
    assert_int_equal(a.dtype, FMR_NPY_BOOL);
    assert_int_equal(a.rank, 4);
    int64_t want_shape[4] = {2, 3, 21, 21};
    assert_memory_equal(a.shape, want_shape, sizeof want_shape);
    const uint8_t *v = a.data;
    for (int64_t i = 0; i < 2 * 3 * 21 * 21; i++) {
        int64_t q = i / 21 % 21, kv = i % 21;
        assert_int_equal(v[i], kv <= q && q - kv < 5);
    }
    fmr_npy_free(&a);
    /* Imported back from the file: the same tiles (the file has B = 2,
     * H = 3, so nothing broadcasts there). */
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = 4, .block_kv = 4};
    fm_blockmask *back = NULL;
    fm_status st = fm_blockmask_from_npy(path, NULL, &o, d, &back);
    if (st != FM_OK) tu_fail_with(st, d, path);
    assert_int_equal(st, FM_OK);
    assert_same_tiles(bm, back, false);
    fm_blockmask_free(back);
    /* float32 and float64 additive files, rank 2, broadcast to the shape. */
    float f32[21 * 21];
    double f64[21 * 21];
    for (int i = 0; i < 21 * 21; i++) {
        bool keep = i % 21 <= i / 21 && i / 21 - i % 21 < 5;
        f32[i] = keep ? 0.0f : -INFINITY;
        f64[i] = keep ? 0.0 : -INFINITY;
    }
    int64_t sh2[2] = {21, 21};
    assert_int_equal(fmr_npy_save(path, FMR_NPY_FLOAT32, 2, sh2, f32, NULL), FM_OK);
    assert_int_equal(fm_blockmask_from_npy(path, &s, &o, d, &back), FM_OK);
    assert_same_tiles(bm, back, true);
    fm_blockmask_free(back);
    assert_int_equal(fmr_npy_save(path, FMR_NPY_FLOAT64, 2, sh2, f64, NULL), FM_OK);
    assert_int_equal(fm_blockmask_from_npy(path, &s, &o, d, &back), FM_OK);
    assert_same_tiles(bm, back, true);
    fm_blockmask_free(back);
    /* An int32 file is not a dense mask. */
    int32_t i32[4] = {0};
    assert_int_equal(fmr_npy_save(path, FMR_NPY_INT32, 2, (int64_t[]){2, 2}, i32, NULL), FM_OK);
    fm_diagnostics_clear(d);
    assert_int_equal(fm_blockmask_from_npy(path, NULL, &o, d, &back), FM_ERR_UNSUPPORTED);
    assert_true(tu_diags_mention(d, "int32"));
    /* A missing file. */
    fm_diagnostics_clear(d);
    assert_int_not_equal(fm_blockmask_from_npy("/nonexistent/x.npy", NULL, &o, d, &back), FM_OK);
    assert_true(fm_diagnostics_count(d) > 0);
    fm_diagnostics_free(d);
    fm_blockmask_free(bm);
    free(path);
}

static void expect_import_error(const void *data, fm_dense_kind kind, size_t rank,
                                const int64_t *dims, const fm_shape *s, fm_status want,
                                const char *mention) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_blockmask *bm = (fm_blockmask *)0x1;
    assert_int_equal(fm_blockmask_from_dense(data, kind, rank, dims, s, NULL, d, &bm), want);
    assert_ptr_equal(bm, (fm_blockmask *)0x1); /* untouched on failure */
    assert_true(tu_diags_mention(d, mention));
    fm_diagnostics_free(d);
}

static void test_import_errors(void **state) {
    uint8_t u[2 * 3 * 4] = {0};
    float f[2 * 3 * 4] = {0};
    int64_t dims[3] = {2, 3, 4};
    u[1 * 12 + 2 * 4 + 3] = 2;
    expect_import_error(u, FM_DENSE_BOOL, 3, dims, NULL, FM_ERR_INVALID_ARGUMENT,
                        "element [1, 2, 3] is 2");
    f[5] = 0.5f;
    expect_import_error(f, FM_DENSE_ADDITIVE, 3, dims, NULL, FM_ERR_INVALID_ARGUMENT,
                        "element [0, 1, 1] is 0.5");
    f[5] = NAN;
    expect_import_error(f, FM_DENSE_ADDITIVE, 3, dims, NULL, FM_ERR_INVALID_ARGUMENT, "nan");
    f[5] = INFINITY;
    expect_import_error(f, FM_DENSE_ADDITIVE, 3, dims, NULL, FM_ERR_INVALID_ARGUMENT, "inf");
    f[5] = 0;
    expect_import_error(f, FM_DENSE_ADDITIVE, 1, dims, NULL, FM_ERR_INVALID_ARGUMENT, "not 1");
    expect_import_error(f, FM_DENSE_ADDITIVE, 5, dims, NULL, FM_ERR_INVALID_ARGUMENT, "not 5");
    int64_t zero[2] = {3, 0};
    expect_import_error(f, FM_DENSE_ADDITIVE, 2, zero, NULL, FM_ERR_INVALID_ARGUMENT, "at least 1");
    fm_shape wrong_heads = {1, 4, 3, 4};
    expect_import_error(u, FM_DENSE_BOOL, 3, dims, &wrong_heads, FM_ERR_INVALID_ARGUMENT,
                        "HEADS=4");
    fm_shape wrong_len = {1, 2, 3, 5};
    u[1 * 12 + 2 * 4 + 3] = 1;
    expect_import_error(u, FM_DENSE_BOOL, 3, dims, &wrong_len, FM_ERR_INVALID_ARGUMENT, "3 x 4");
}

static void test_shape_zero_fields(void **state) {
    /* A 0 in the shape takes the array's size. */
    uint8_t m[2 * 3 * 4] = {0};
    m[0] = m[13] = 1;
    int64_t dims[4] = {1, 2, 3, 4};
    fm_shape s = {5, 0, 0, 0};
    fm_blockmask *bm = import(m, FM_DENSE_BOOL, 4, dims, &s, 2, 2);
    fm_blockmask_info info;
    assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
    assert_int_equal(info.shape.batch, 5);
    assert_int_equal(info.shape.heads, 2);
    assert_int_equal(info.shape.q_len, 3);
    assert_int_equal(info.shape.kv_len, 4);
    assert_true(info.broadcast_batch);
    assert_false(info.broadcast_heads);
    bool v;
    assert_int_equal(fm_blockmask_eval(bm, 4, 1, 0, 1, &v), FM_OK);
    assert_true(v); /* m[13] = [0, 1, 0, 1] */
    assert_int_equal(fm_blockmask_eval(bm, 4, 0, 0, 1, &v), FM_OK);
    assert_false(v);
    fm_blockmask_free(bm);
    fm_shape bad = {0, 0, 7, 0};
    expect_import_error(m, FM_DENSE_BOOL, 4, dims, &bad, FM_ERR_INVALID_ARGUMENT, "7 x 4");
}

static void test_export_limits(void **state) {
    fm_blockmask *bm = build_text("mask m = kv <= q;\n", NULL, NULL, 0, NULL, NULL, 0,
                                  (fm_shape){1 << 10, 1 << 10, 1 << 14, 1 << 14}, 1 << 14, 1 << 14);
    uint8_t *dense = NULL;
    fm_diagnostics *d = fm_diagnostics_create();
    assert_int_equal(fm_blockmask_to_dense(bm, &dense, NULL, d), FM_ERR_LIMIT);
    assert_null(dense);
    assert_true(tu_diags_mention(d, "2^34"));
    fm_diagnostics_free(d);
    fm_blockmask_free(bm);
}

/* ---- the fmc flags on top of the same functions ---- */

static void test_fmc_dense_flags(void **state) {
    /* Head 0 causal, head 1 a causal window of 3; broadcast over 3 batches. */
    uint8_t m[2 * 12 * 16];
    for (int h = 0; h < 2; h++)
        for (int q = 0; q < 12; q++)
            for (int kv = 0; kv < 16; kv++)
                m[(h * 12 + q) * 16 + kv] = kv <= q && (h == 0 || q - kv < 3);
    int64_t shape[3] = {2, 12, 16};
    char *npy = tu_write_temp("cli_dense.npy", "", 0);
    char *st = tu_write_temp("cli_dense.safetensors", "", 0);
    char *out = tu_write_temp("cli_dense_out.npy", "", 0);
    assert_int_equal(fmr_npy_save(npy, FMR_NPY_BOOL, 3, shape, m, NULL), FM_OK);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' blockmask --dense '%s' --block 4 --batch 3 --format json --safetensors '%s' "
             "--dense-out '%s'",
             FM_FMC_PATH, npy, st, out);
    char *o = NULL, *e = NULL;
    int rc = tu_run(cmd, &o, &e);
    if (rc != 0) fprintf(stderr, "%s\n%s%s", cmd, o ? o : "", e ? e : "");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(o, "dense"));
    free(o);
    free(e);
    /* The safetensors file holds the BlockMask of a direct import. */
    fm_blockmask *from_file = NULL;
    assert_int_equal(fm_blockmask_load_safetensors(st, NULL, &from_file), FM_OK);
    fm_shape s = {3, 0, 0, 0};
    fm_blockmask *direct = import(m, FM_DENSE_BOOL, 3, shape, &s, 4, 4);
    assert_same_tiles(direct, from_file, true);
    fm_blockmask_free(from_file);
    fm_blockmask_free(direct);
    /* The dense export repeats the array over the 3 batches. */
    fmr_npy a;
    assert_int_equal(fmr_npy_load(out, &a, NULL), FM_OK);
    assert_int_equal(a.dtype, FMR_NPY_BOOL);
    assert_int_equal(a.rank, 4);
    assert_int_equal(a.shape[0], 3);
    for (int b = 0; b < 3; b++)
        assert_memory_equal((uint8_t *)a.data + b * sizeof m, m, sizeof m);
    fmr_npy_free(&a);

    /* A wrong value, a shape that does not broadcast, a mask file too. */
    m[5] = 2;
    assert_int_equal(fmr_npy_save(npy, FMR_NPY_UINT8, 3, shape, m, NULL), FM_OK);
    snprintf(cmd, sizeof cmd, "'%s' blockmask --dense '%s'", FM_FMC_PATH, npy);
    rc = tu_run(cmd, NULL, &e);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(e, "element [0, 0, 5] is 2"));
    free(e);
    m[5] = 0;
    assert_int_equal(fmr_npy_save(npy, FMR_NPY_UINT8, 3, shape, m, NULL), FM_OK);
    snprintf(cmd, sizeof cmd, "'%s' blockmask --dense '%s' --heads 5", FM_FMC_PATH, npy);
    rc = tu_run(cmd, NULL, &e);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(e, "HEADS=5"));
    free(e);
    snprintf(cmd, sizeof cmd, "'%s' blockmask '%s/examples/masks/causal.mask' --dense '%s'",
             FM_FMC_PATH, FM_SOURCE_DIR, npy);
    rc = tu_run(cmd, NULL, &e);
    assert_int_equal(rc, 2);
    free(e);
    free(npy);
    free(st);
    free(out);
}

/* ---- the byte copy ---------------------------------------------------------- */

/* The import's mask rebuilt the old way: its own program text over an
 * int32 copy of the array, through the public API. */
static fm_blockmask *int32_twin(const fm_blockmask *imported, const uint8_t *m, size_t rank,
                                const int64_t *dims, fm_shape s, int64_t bq, int64_t bkv) {
    const fmd_source *src = imported->shared->program->source;
    int64_t n = 1;
    for (size_t k = 0; k < rank; k++) n *= dims[k];
    int32_t *m32 = malloc((size_t)n * 4);
    assert_non_null(m32);
    for (int64_t i = 0; i < n; i++) m32[i] = m[i];
    fm_program *p = NULL;
    fm_mask *mask = NULL;
    fm_bindings *b = NULL;
    fm_blockmask *bm = NULL;
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = bq, .block_kv = bkv};
    assert_int_equal(fm_compile_string(src->name, src->text, src->len, NULL, &p), FM_OK);
    assert_int_equal(fm_mask_select(p, "dense", NULL, &mask), FM_OK);
    assert_int_equal(mask->shared->program->inputs[0].elem_bytes, 4);
    assert_int_equal(fm_bindings_create(mask, &b), FM_OK);
    assert_int_equal(fm_bindings_set_input(b, "keep", m32, rank, dims, FM_COPY, NULL), FM_OK);
    assert_int_equal(fm_blockmask_build(mask, b, s, &o, NULL, &bm), FM_OK);
    fm_bindings_free(b);
    fm_mask_free(mask);
    fm_program_free(p);
    free(m32);
    return bm;
}

/* CPU attention through x and y (float32, head dim D) on the ISA that
 * FLEXMASK_CPU_ISA names; outputs and log-sum-exps must be equal bit for bit. */
static void assert_same_attention(const fm_blockmask *x, const fm_blockmask *y, fm_shape s,
                                  tu_rng *rng) {
    enum { D = 5 };
    size_t nq = (size_t)(s.batch * s.heads * s.q_len * D);
    size_t nk = (size_t)(s.batch * s.heads * s.kv_len * D);
    size_t nl = (size_t)(s.batch * s.heads * s.q_len);
    float *Q = malloc(nq * 4), *K = malloc(nk * 4), *V = malloc(nk * 4);
    float *o[2] = {malloc(nq * 4), malloc(nq * 4)}, *l[2] = {malloc(nl * 4), malloc(nl * 4)};
    assert_true(Q && K && V && o[0] && o[1] && l[0] && l[1]);
    for (size_t i = 0; i < nq; i++) Q[i] = (float)tu_rng_range(rng, -1000, 1000) / 300.0f;
    for (size_t i = 0; i < nk; i++) {
        K[i] = (float)tu_rng_range(rng, -1000, 1000) / 300.0f;
        V[i] = (float)tu_rng_range(rng, -1000, 1000) / 300.0f;
    }
    for (int w = 0; w < 2; w++) {
        fm_attention_args a = {.struct_size = sizeof(fm_attention_args)};
        a.mask = w ? y : x;
        a.q = fm_tensor_contiguous(Q, FM_FLOAT32, s.batch, s.heads, s.q_len, D);
        a.k = fm_tensor_contiguous(K, FM_FLOAT32, s.batch, s.heads, s.kv_len, D);
        a.v = fm_tensor_contiguous(V, FM_FLOAT32, s.batch, s.heads, s.kv_len, D);
        a.out = fm_tensor_contiguous(o[w], FM_FLOAT32, s.batch, s.heads, s.q_len, D);
        a.lse = l[w];
        fm_diagnostics *d = fm_diagnostics_create();
        fm_status st = fm_attention_cpu(&a, d);
        if (st != FM_OK) tu_fail_with(st, d, "attention");
        fm_diagnostics_free(d);
    }
    assert_memory_equal(o[0], o[1], nq * 4);
    assert_memory_equal(l[0], l[1], nl * 4);
    free(Q), free(K), free(V);
    for (int w = 0; w < 2; w++) free(o[w]), free(l[w]);
}

static void test_byte_copy_agrees_everywhere(void **state) {
    (void)state;
    tu_rng rng = {0xb7e5};
    const char *isas[2] = {"portable", "avx2"};
    int nisa = fmr_cpu_has_avx2() ? 2 : 1;
    for (int iter = 0; iter < tu_cases(24); iter++) {
        size_t rank = (size_t)tu_rng_range(&rng, 2, 4);
        int64_t B = rank == 4 ? tu_rng_range(&rng, 1, 2) : 1;
        int64_t H = rank >= 3 ? tu_rng_range(&rng, 1, 3) : 1;
        /* Odd lengths: tiles clipped at both edges; rows past one range-table block. */
        int64_t Q = 2 * tu_rng_range(&rng, 0, 30) + 1;
        int64_t KV = iter % 4 == 3 ? 2 * tu_rng_range(&rng, 64, 200) + 1
                                   : 2 * tu_rng_range(&rng, 0, 40) + 1;
        int64_t dims[4], k = 0;
        if (rank == 4) dims[k++] = B;
        if (rank >= 3) dims[k++] = H;
        dims[k++] = Q;
        dims[k++] = KV;
        int64_t n = B * H * Q * KV;
        uint8_t *m = malloc((size_t)n);
        assert_non_null(m);
        random_dense(&rng, m, B * H, Q, KV);
        fm_shape s = {B == 1 ? tu_rng_range(&rng, 1, 2) : B, H == 1 ? tu_rng_range(&rng, 1, 2) : H,
                      Q, KV};
        int64_t bq = 2 * tu_rng_range(&rng, 0, 4) + 1, bkv = 2 * tu_rng_range(&rng, 0, 8) + 1;
        fm_blockmask *got = import(m, FM_DENSE_BOOL, rank, dims, &s, bq, bkv);
        fm_blockmask *want = int32_twin(got, m, rank, dims, s, bq, bkv);

        /* The import holds one byte per element and no int32 array. */
        assert_int_equal(got->shared->program->inputs[0].elem_bytes, 1);
        assert_non_null(got->owned_bytes[0]);
        assert_ptr_equal(got->byte_inputs[0], got->owned_bytes[0]);
        assert_ptr_equal(got->bm->env.bytes[0], got->owned_bytes[0]);
        assert_null(got->inputs[0]);
        assert_null(got->bm->env.inputs[0]);
        assert_ptr_not_equal(got->owned_bytes[0], m); /* a copy, not the caller's */
        assert_memory_equal(got->owned_bytes[0], m, (size_t)n);

        assert_same_tiles(want, got, true);
        int64_t c1, c2;
        assert_int_equal(fm_blockmask_count_true(want, &c1), FM_OK);
        assert_int_equal(fm_blockmask_count_true(got, &c2), FM_OK);
        assert_int_equal(c1, c2);
        int64_t ones = 0;
        for (int64_t b = 0; b < s.batch; b++)
            for (int64_t h = 0; h < s.heads; h++) {
                const uint8_t *slice = m + ((B == 1 ? 0 : b) * H + (H == 1 ? 0 : h)) * Q * KV;
                for (int64_t i = 0; i < Q * KV; i++) {
                    bool v1, v2;
                    assert_int_equal(fm_blockmask_eval(want, b, h, i / KV, i % KV, &v1), FM_OK);
                    assert_int_equal(fm_blockmask_eval(got, b, h, i / KV, i % KV, &v2), FM_OK);
                    assert_int_equal(v2, slice[i]);
                    assert_int_equal(v1, v2);
                    ones += slice[i];
                }
            }
        assert_int_equal(c2, ones);
        uint8_t *d1 = NULL, *d2 = NULL;
        size_t n1 = 0, n2 = 0;
        assert_int_equal(fm_blockmask_to_dense(want, &d1, &n1, NULL), FM_OK);
        assert_int_equal(fm_blockmask_to_dense(got, &d2, &n2, NULL), FM_OK);
        assert_int_equal(n1, n2);
        assert_memory_equal(d1, d2, n1);
        fm_free(d1);
        fm_free(d2);
        for (int i = 0; i < nisa; i++) {
            setenv("FLEXMASK_CPU_ISA", isas[i], 1);
            assert_same_attention(want, got, s, &rng);
        }
        unsetenv("FLEXMASK_CPU_ISA");
        fm_blockmask_free(want);
        fm_blockmask_free(got);
        free(m);
    }
}

/* The byte copy changes nothing on disk: the safetensors file of an import
 * equals, byte for byte, the file of its program over an int32 copy
 * (inputs are stored as int32), and it loads back to the same mask. */
static void test_byte_copy_safetensors_file(void **state) {
    (void)state;
    tu_rng rng = {77};
    int64_t dims[3] = {3, 37, 301};
    uint8_t *m = malloc(3 * 37 * 301);
    assert_non_null(m);
    random_dense(&rng, m, 3, 37, 301);
    fm_shape s = {2, 3, 37, 301};
    fm_blockmask *got = import(m, FM_DENSE_BOOL, 3, dims, &s, 8, 16);
    fm_blockmask *want = int32_twin(got, m, 3, dims, s, 8, 16);
    char *p1 = tu_write_temp("byte_copy_a.safetensors", "", 0);
    char *p2 = tu_write_temp("byte_copy_b.safetensors", "", 0);
    assert_int_equal(fm_blockmask_save_safetensors(want, p1, NULL), FM_OK);
    assert_int_equal(fm_blockmask_save_safetensors(got, p2, NULL), FM_OK);
    size_t l1 = 0, l2 = 0;
    char *f1 = tu_read_file(p1, &l1), *f2 = tu_read_file(p2, &l2);
    assert_non_null(f1);
    assert_non_null(f2);
    assert_int_equal(l1, l2);
    assert_memory_equal(f1, f2, l1);
    /* The last tensor is input.keep, int32 little-endian: 1 where m is. */
    assert_true(l2 > (size_t)(3 * 37 * 301 * 4));
    const unsigned char *keep = (const unsigned char *)f2 + l2 - 3 * 37 * 301 * 4;
    for (int64_t i = 0; i < 3 * 37 * 301; i++) {
        assert_int_equal(keep[4 * i], m[i]);
        assert_int_equal(keep[4 * i + 1] | keep[4 * i + 2] | keep[4 * i + 3], 0);
    }
    fm_blockmask *back = NULL;
    fm_diagnostics *d = fm_diagnostics_create();
    fm_status st = fm_blockmask_load_safetensors(p2, d, &back);
    if (st != FM_OK) tu_fail_with(st, d, p2);
    assert_same_tiles(got, back, true);
    bool v;
    assert_int_equal(fm_blockmask_eval(back, 1, 2, 36, 300, &v), FM_OK);
    assert_int_equal(v, m[(2 * 37 + 36) * 301 + 300]);
    fm_diagnostics_free(d);
    fm_blockmask_free(back);
    free(f1);
    free(f2);
    free(p1);
    free(p2);
    fm_blockmask_free(want);
    fm_blockmask_free(got);
    free(m);
}

/* The CUDA text of an import reads its array as unsigned char, and the
 * whole kernel compiles through NVRTC (skipped without NVRTC). */
static void test_byte_copy_cuda_text(void **state) {
    (void)state;
    uint8_t m[2 * 5 * 7] = {0};
    for (int i = 0; i < 2 * 5 * 7; i++) m[i] = (uint8_t)(i % 3 == 0);
    int64_t dims[3] = {2, 5, 7};
    fm_blockmask *got = import(m, FM_DENSE_BOOL, 3, dims, NULL, 4, 4);
    size_t len = 0;
    char *text = fmc_codegen_cuda(got->bm->program, &len, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "(fm_int)((const unsigned char *)e->inputs[0])["));
    assert_null(strstr(text, "(const int *)"));
    char why[512];
    if (!fmr_nvrtc_available(why, sizeof why)) {
        free(text);
        fm_blockmask_free(got);
        printf("# SKIPPED (no NVRTC): %s\n", why);
        skip();
    }
    for (int v = 0; v < 2; v++) {
        fmr_kernel_config cfg = {.head_dim = v ? 64 : 128, .bf16 = !v, .int32 = v};
        char *ptx = NULL, *log = NULL;
        fmd_diags dg;
        fmd_diags_init(&dg);
        fm_status st = fmr_jit_ptx(text, len, &cfg, &ptx, &log, &dg);
        if (st != FM_OK)
            fail_msg("NVRTC: %s: %s", fm_status_string(st), dg.count ? dg.items[0].message : "");
        assert_non_null(strstr(ptx, FMR_FWD_KERNEL_NAME));
        /* The byte read is a byte load (ld.global.u8 or the like). */
        assert_non_null(strstr(ptx, ".u8"));
        fmd_diags_clear(&dg);
        free(ptx);
        free(log);
    }
    free(text);
    fm_blockmask_free(got);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_dense_equals_program),
        cmocka_unit_test(test_dense_of_known_masks),
        cmocka_unit_test(test_export_padding_mask),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_import_errors),
        cmocka_unit_test(test_shape_zero_fields),
        cmocka_unit_test(test_export_limits),
        cmocka_unit_test(test_fmc_dense_flags),
        cmocka_unit_test(test_byte_copy_agrees_everywhere),
        cmocka_unit_test(test_byte_copy_safetensors_file),
        cmocka_unit_test(test_byte_copy_cuda_text),
    };
    return TU_RUN(tests, argc, argv);
}
