/* The CUDA forward kernel, run on the CPU: kernels/flash_fwd.cuh is
 * compiled for the host with the emulated primitives of tests/emu (one
 * thread per CUDA thread, warp-wide ldmatrix / mma.sync / shuffles done
 * exactly as the PTX manual lays out the fragments, cp.async landing only
 * at the wait), and its output is compared with fm_attention_cpu. This
 * checks the kernel's fragment indexing, swizzle, pipeline barriers,
 * BlockMask walk, masking, online softmax, empty rows and GQA without a
 * GPU. Needs a host C++17 compiler (c++); skips with the reason otherwise. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/codegen_cuda.h"
#include "runtime/api/api_internal.h"
#include "runtime/cpu/attention_convert.h"

#define FM_MASK_ENV_T fmc_cuda_mask_env
#include "kernels/fm_fwd_params.h"

#define DENSE_CASE "<dense import>"

typedef struct emu_case {
    const char *file; /* under examples/masks */
    const char *defines;
    int64_t batch, heads, kv_heads, q_len, kv_len, head_dim, block_q, block_kv;
    bool bf16, lse;
} emu_case;

static const emu_case cases[] = {
    {"causal.mask", NULL, 1, 2, 1, 150, 150, 128, 64, 64, true, true},
    {"document.mask", NULL, 1, 2, 2, 200, 200, 64, 128, 128, false, true},
    {"cross_attention.mask", NULL, 2, 1, 1, 70, 130, 64, 64, 128, true, true},
    {"full.mask", NULL, 1, 1, 1, 65, 63, 128, 64, 64, false, false},
    {"sliding_window.mask", "window=40", 1, 1, 1, 300, 300, 64, 192, 256, true, true},
    {"tree.mask", NULL, 1, 2, 1, 100, 100, 128, 128, 64, true, true},
    {"per_head.mask", "window=30", 1, 3, 1, 130, 130, 64, 64, 64, false, true},
    /* Not a file: a dense import, whose mask reads a byte array. */
    {DENSE_CASE, NULL, 2, 2, 1, 150, 170, 64, 64, 64, true, true},
};
#define NCASES (sizeof cases / sizeof cases[0])

typedef int (*emu_run_fn)(const void *params, unsigned gx, unsigned gy, unsigned gz);

typedef struct prepared {
    fm_program *prog;
    fm_mask *mask;
    fm_bindings *bind;
    fm_blockmask *bm;
} prepared;

static void bind_inputs(const emu_case *c, prepared *p, tu_rng *r) {
    for (size_t i = 0; i < fm_mask_input_count(p->mask); i++) {
        const char *name = fm_mask_input_name(p->mask, i);
        int64_t n;
        int32_t *a;
        if (!strcmp(name, "doc")) {
            n = c->kv_len;
            a = malloc((size_t)n * 4);
            int32_t id = 0;
            for (int64_t k = 0; k < n; k++) a[k] = (id += tu_rng_range(r, 0, 30) == 0);
        } else if (!strcmp(name, "src_len")) {
            n = c->batch;
            a = malloc((size_t)n * 4);
            for (int64_t k = 0; k < n; k++) a[k] = k == 0 ? 0 : (int32_t)(c->kv_len - 7); /* batch 0: no keys */
        } else {
            continue;
        }
        int64_t dims[1] = {n};
        assert_int_equal(fm_bindings_set_input(p->bind, name, a, 1, dims, FM_COPY, NULL), FM_OK);
        free(a);
    }
    if (!strcmp(c->file, "tree.mask")) {
        int64_t n = c->q_len;
        int32_t *par = malloc((size_t)n * 4), *en = malloc((size_t)n * 4), *le = malloc((size_t)n * 4);
        for (int64_t k = 0; k < n; k++) par[k] = k == 0 ? -1 : (int32_t)tu_rng_range(r, 0, k - 1);
        assert_int_equal(fm_tree_tables(par, n, en, le, NULL, NULL), FM_OK);
        int64_t dims[1] = {n};
        assert_int_equal(fm_bindings_set_input(p->bind, "enter", en, 1, dims, FM_COPY, NULL), FM_OK);
        assert_int_equal(fm_bindings_set_input(p->bind, "leave", le, 1, dims, FM_COPY, NULL), FM_OK);
        free(par), free(en), free(le);
    }
}

/* A [HEADS, Q_LEN, KV_LEN] mask broadcast over the batch: causal with a
 * lead of 20, holes in a pattern per head, and one query row all false. */
static void prepare_dense(const emu_case *c, prepared *p) {
    int64_t H = c->heads, S = c->q_len, T = c->kv_len;
    uint8_t *m = malloc((size_t)(H * S * T));
    assert_non_null(m);
    for (int64_t h = 0; h < H; h++)
        for (int64_t q = 0; q < S; q++)
            for (int64_t kv = 0; kv < T; kv++)
                m[(h * S + q) * T + kv] = kv <= q + 20 && (q * 7 + kv * 13 + h) % 5 != 0 && q != 3;
    int64_t dims[3] = {H, S, T};
    fm_shape sh = {c->batch, H, S, T};
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = c->block_q, .block_kv = c->block_kv};
    assert_int_equal(fm_blockmask_from_dense(m, FM_DENSE_BOOL, 3, dims, &sh, &o, NULL, &p->bm),
                     FM_OK);
    assert_true(fmc_input_is_bytes(&p->bm->bm->program->inputs[0]));
    free(m);
}

static void prepare_case(const emu_case *c, prepared *p, tu_rng *r) {
    memset(p, 0, sizeof *p);
    if (!strcmp(c->file, DENSE_CASE)) {
        prepare_dense(c, p);
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/masks/%s", FM_SOURCE_DIR, c->file);
    assert_int_equal(fm_compile_file(path, NULL, &p->prog), FM_OK);
    assert_int_equal(fm_mask_select(p->prog, NULL, NULL, &p->mask), FM_OK);
    assert_int_equal(fm_bindings_create(p->mask, &p->bind), FM_OK);
    if (c->defines) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", c->defines);
        char *eq = strchr(buf, '=');
        *eq = 0;
        assert_int_equal(fm_bindings_set_param(p->bind, buf, atoll(eq + 1), NULL), FM_OK);
    }
    bind_inputs(c, p, r);
    fm_shape sh = {c->batch, c->heads, c->q_len, c->kv_len};
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = c->block_q, .block_kv = c->block_kv};
    assert_int_equal(fm_blockmask_build(p->mask, p->bind, sh, &o, NULL, &p->bm), FM_OK);
}

static void free_prepared(prepared *p) {
    fm_blockmask_free(p->bm);
    fm_bindings_free(p->bind);
    fm_mask_free(p->mask);
    fm_program_free(p->prog);
}

/* One translation unit per case, all compiled with emu_main.cpp into one
 * shared object by a single compiler run. */
static void *build_emulator(prepared *ps, char *why, size_t nwhy) {
    const char *dir = tu_temp_dir();
    char *cmd = malloc(16384);
    int used = snprintf(cmd, 16384,
                        "cd '%s' && c++ -std=c++17 -O1 -w -fPIC -shared -pthread -I'%s/tests/emu' "
                        "-I'%s/kernels' -o emu.so '%s/tests/emu/emu_main.cpp'",
                        dir, FM_SOURCE_DIR, FM_SOURCE_DIR, FM_SOURCE_DIR);
    int n32 = 0;
    for (size_t i = 0; i < NCASES; i++) {
        const emu_case *c = &cases[i];
        size_t len;
        char *text = fmc_codegen_cuda(ps[i].bm->bm->program, &len, NULL);
        assert_non_null(text);
        char name[64];
        snprintf(name, sizeof name, "mask_%zu.h", i);
        free(tu_write_temp(name, text, len));
        free(text);
        /* The 32-bit variant where the launch could pick it, on every
           other case (the 64-bit one is always valid), so both run. */
        bool int32 = i % 2 == 0 && fmc_program_fits_int32(ps[i].bm->bm->program, &ps[i].bm->bm->env);
        char tu[2048];
        int n = snprintf(tu, sizeof tu,
                         "#define fm_flash_fwd fm_flash_fwd_%zu\n"
                         "#define fmk fmk_%zu\n"
                         "#define FM_HEAD_DIM %lld\n"
                         "%s%s"
                         "#include \"emu_prims.hpp\"\n"
                         "#include \"mask_%zu.h\"\n"
                         "#include \"flash_fwd.cuh\"\n"
                         "extern \"C\" int emu_launch(void (*)(const void *), const void *, unsigned, "
                         "unsigned, unsigned, unsigned);\n"
                         "extern \"C\" int emu_run_%zu(const void *p, unsigned x, unsigned y, unsigned z) {\n"
                         "    return emu_launch([](const void *q) { fm_flash_fwd_%zu(*(const fm_fwd_params *)q); },\n"
                         "                      p, x, y, z, FM_FWD_THREADS);\n"
                         "}\n",
                         i, i, (long long)c->head_dim, c->bf16 ? "#define FM_DTYPE_BF16 1\n" : "",
                         int32 ? "#define FM_MASK_INT32 1\n" : "", i, i, i);
        if (int32) n32++;
        snprintf(name, sizeof name, "emu_%zu.cpp", i);
        free(tu_write_temp(name, tu, (size_t)n));
        used += snprintf(cmd + used, 16384 - (size_t)used, " %s", name);
    }
    printf("# %d of %zu cases use the 32-bit mask arithmetic\n", n32, NCASES);
    char *err = NULL;
    int rc = tu_run(cmd, NULL, &err);
    free(cmd);
    if (rc != 0) {
        snprintf(why, nwhy, "the host C++ compiler failed (%d): %.1500s", rc, err ? err : "");
        free(err);
        return NULL;
    }
    free(err);
    char so[600];
    snprintf(so, sizeof so, "%s/emu.so", dir);
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) snprintf(why, nwhy, "dlopen: %s", dlerror());
    return lib;
}

static void fill16(uint16_t *a, size_t n, bool bf16, tu_rng *r) {
    for (size_t i = 0; i < n; i++) {
        float f = (float)((double)(tu_rng_next(r) >> 11) / 9007199254740992.0 * 4.0 - 2.0);
        a[i] = bf16 ? fmr_f32_to_bf16(f) : fmr_f32_to_f16(f);
    }
}

/* Non-finite inputs (docs/language.md, "NaN and infinities"): each writes
 * into freshly filled q, k, v ([B, H or KV_HEADS, len, D], contiguous).
 * The kernel must give what the CPU gives: NaN where it is NaN, zeros and
 * -inf where a row is empty, close values elsewhere. NaN in V is left out:
 * on the GPU a false position of a partial tile multiplies its V row by 0,
 * which the CPU never does (kernels/flash_fwd.cuh, P V). */
typedef struct injector {
    const char *name;
    void (*fn)(const emu_case *c, uint16_t *q, uint16_t *k, uint16_t *v);
} injector;

static uint16_t h16(const emu_case *c, float f) {
    return c->bf16 ? fmr_f32_to_bf16(f) : fmr_f32_to_f16(f);
}

static size_t at(const emu_case *c, int64_t heads, int64_t len, int64_t b, int64_t h, int64_t s,
                 int64_t d) {
    return (size_t)(((b * heads + h) * len + s) * c->head_dim + d);
}

/* One NaN in a query row of the last batch entry. */
static void inj_q_nan(const emu_case *c, uint16_t *q, uint16_t *k, uint16_t *v) {
    (void)k, (void)v;
    q[at(c, c->heads, c->q_len, c->batch - 1, 0, c->q_len / 2, 5)] = h16(c, NAN);
}

/* +inf and -inf in two keys: with q of both signs, some rows score one
 * +inf (NaN row), others -inf (dropped); rows where the key is false are
 * untouched. */
static void inj_k_inf(const emu_case *c, uint16_t *q, uint16_t *k, uint16_t *v) {
    (void)q, (void)v;
    int64_t b = c->batch - 1;
    k[at(c, c->kv_heads, c->kv_len, b, 0, c->kv_len / 3, 2)] = h16(c, INFINITY);
    k[at(c, c->kv_heads, c->kv_len, b, 0, c->kv_len - 1, 3)] = h16(c, -INFINITY);
}

/* +inf in one key and NaN in a later one: rows keeping both have LSE NaN,
 * rows keeping only the first +inf (the kernel's max must not drop a NaN). */
static void inj_k_inf_nan(const emu_case *c, uint16_t *q, uint16_t *k, uint16_t *v) {
    (void)v;
    int64_t b = c->batch - 1;
    for (int64_t s = 0; s < c->q_len; s++) q[at(c, c->heads, c->q_len, b, 0, s, 2)] = h16(c, 1.0f);
    k[at(c, c->kv_heads, c->kv_len, b, 0, c->kv_len / 5, 2)] = h16(c, INFINITY);
    k[at(c, c->kv_heads, c->kv_len, b, 0, c->kv_len / 2, 6)] = h16(c, NAN);
}

/* A query row and a key row of the largest values: q.k overflows float32
 * in bf16 (1e20 * 1e20 * D); in fp16 (65504^2 * D) it cannot, and the row
 * must stay finite. */
static void inj_overflow(const emu_case *c, uint16_t *q, uint16_t *k, uint16_t *v) {
    (void)v;
    float big = c->bf16 ? 1e20f : 65504.0f;
    int64_t b = c->batch - 1;
    for (int64_t d = 0; d < c->head_dim; d++) {
        q[at(c, c->heads, c->q_len, b, 0, c->q_len - 2, d)] = h16(c, big);
        k[at(c, c->kv_heads, c->kv_len, b, 0, c->kv_len / 4, d)] = h16(c, big);
    }
}

static const injector injectors[] = {
    {"NaN in q", inj_q_nan},
    {"+-inf in k", inj_k_inf},
    {"+inf, NaN in k", inj_k_inf_nan},
    {"overflow", inj_overflow}};
#define NINJ (sizeof injectors / sizeof injectors[0])

/* Same class: both NaN, both the same infinity, or both finite. */
static bool same_class(float x, float y) {
    return isnan(x) == isnan(y) && isinf(x) == isinf(y) && (!isinf(x) || x == y);
}

#define UNWRITTEN 0x7fc0deadu /* a NaN payload no arithmetic produces */

/* Runs case c with the injection inj (NULL: none); returns the number of
 * NaN rows. */
static int64_t run_case(const emu_case *c, prepared *p, emu_run_fn run, tu_rng *r,
                        const injector *inj) {
    const fmc_blockmask *bm = p->bm->bm;
    const int64_t B = c->batch, H = c->heads, KVH = c->kv_heads, S = c->q_len, T = c->kv_len, D = c->head_dim;
    size_t nq = (size_t)(B * H * S * D), nkv = (size_t)(B * KVH * T * D), nl = (size_t)(B * H * S);
    uint16_t *q = malloc(nq * 2), *k = malloc(nkv * 2), *v = malloc(nkv * 2);
    float *oe = malloc(nq * 4), *oc = malloc(nq * 4), *le = malloc(nl * 4), *lc = malloc(nl * 4);
    fill16(q, nq, c->bf16, r);
    fill16(k, nkv, c->bf16, r);
    fill16(v, nkv, c->bf16, r);
    if (inj) inj->fn(c, q, k, v);
    for (size_t i = 0; i < nq; i++) oe[i] = fmr_bits_f32(UNWRITTEN); /* every row must be written */
    for (size_t i = 0; i < nl; i++) le[i] = fmr_bits_f32(UNWRITTEN);

    fm_fwd_params prm;
    memset(&prm, 0, sizeof prm);
    prm.q = q, prm.k = k, prm.v = v, prm.out = oe, prm.lse = c->lse ? le : NULL;
    prm.q_stride_b = H * S * D, prm.q_stride_h = S * D, prm.q_stride_s = D;
    prm.k_stride_b = KVH * T * D, prm.k_stride_h = T * D, prm.k_stride_s = D;
    prm.v_stride_b = KVH * T * D, prm.v_stride_h = T * D, prm.v_stride_s = D;
    prm.batch = (int)B, prm.heads = (int)H, prm.kv_heads = (int)KVH, prm.q_len = (int)S, prm.kv_len = (int)T;
    prm.scale_log2 = (float)(1.0 / sqrt((double)D) * 1.4426950408889634);
    prm.full_off = (const long long *)bm->full.off, prm.full_idx = bm->full.idx;
    prm.part_off = (const long long *)bm->partial.off, prm.part_idx = bm->partial.idx;
    prm.nqb = (int)bm->nqb, prm.block_q = (int)bm->block_q, prm.block_kv = (int)bm->block_kv;
    prm.bcast_batch = bm->bcast_batch, prm.bcast_heads = bm->bcast_heads, prm.stored_heads = (int)bm->stored_heads;
    assert_true(fmc_cuda_fill_env(bm->program, &bm->env, &prm.mask));
    for (size_t i = 0; i < bm->program->ninputs; i++)
        prm.mask.inputs[i] = fmc_env_input_data(bm->program, &bm->env, i);
    run(&prm, (unsigned)((S + FM_FWD_BLOCK_M - 1) / FM_FWD_BLOCK_M), (unsigned)H, (unsigned)B);

    fm_dtype dt = c->bf16 ? FM_BFLOAT16 : FM_FLOAT16;
    fm_attention_args a = {.struct_size = sizeof(fm_attention_args), .mask = p->bm,
                           .q = fm_tensor_contiguous(q, dt, B, H, S, D),
                           .k = fm_tensor_contiguous(k, dt, B, KVH, T, D),
                           .v = fm_tensor_contiguous(v, dt, B, KVH, T, D),
                           .out = fm_tensor_contiguous(oc, FM_FLOAT32, B, H, S, D),
                           .lse = lc};
    assert_int_equal(fm_attention_cpu(&a, NULL), FM_OK);

    const char *what = inj ? inj->name : "";
    double maxref = 0, maxerr = 0;
    int64_t empty = 0, nan_rows = 0;
    for (size_t row = 0; row < nl; row++) {
        bool is_empty = isinf(lc[row]) && lc[row] < 0;
        empty += is_empty;
        nan_rows += isnan(oc[row * (size_t)D]); /* poisoned: LSE NaN or +inf */
        if (c->lse) {
            if (fmr_f32_bits(le[row]) == UNWRITTEN)
                fail_msg("%s %s: LSE of row %zu not written", c->file, what, row);
            bool ok = same_class(le[row], lc[row]) &&
                      (!isfinite(lc[row]) ||
                       fabs(le[row] - lc[row]) <= 1e-2 * fmax(1.0, fabs(lc[row])));
            if (!ok) fail_msg("%s %s: row %zu LSE kernel %g, CPU %g", c->file, what, row, le[row], lc[row]);
        }
        for (int64_t d = 0; d < D; d++) {
            float e = oe[row * (size_t)D + (size_t)d], cpu = oc[row * (size_t)D + (size_t)d];
            if (fmr_f32_bits(e) == UNWRITTEN)
                fail_msg("%s %s: row %zu col %lld not written", c->file, what, row, (long long)d);
            if (!same_class(e, cpu))
                fail_msg("%s %s: row %zu col %lld kernel %g, CPU %g", c->file, what, row,
                         (long long)d, e, cpu);
            if (is_empty && e != 0.0f) fail_msg("%s: empty row %zu is not exactly zero", c->file, row);
            if (!isfinite(cpu)) continue;
            maxref = fmax(maxref, fabs(cpu));
            maxerr = fmax(maxerr, fabs(e - cpu));
        }
    }
    double rel = maxref > 0 ? maxerr / maxref : maxerr;
    if (inj)
        printf("#   %-12s rel err %.2e, %lld empty rows, %lld NaN rows\n", inj->name, rel,
               (long long)empty, (long long)nan_rows);
    else
        printf("# %-22s B%lld H%lld/%lld Q%lld KV%lld D%lld %s blocks %lldx%lld: rel err %.2e, %lld empty rows\n",
               c->file, (long long)B, (long long)H, (long long)KVH, (long long)S, (long long)T,
               (long long)D, c->bf16 ? "bf16" : "fp16", (long long)c->block_q, (long long)c->block_kv,
               rel, (long long)empty);
    if (rel >= 1e-2) fail_msg("%s: relative error %.3e against the CPU", c->file, rel);
    free(q), free(k), free(v), free(oe), free(oc), free(le), free(lc);
    return nan_rows;
}

static void test_kernel_matches_cpu(void **state) {
    (void)state;
    char *err = NULL;
    if (tu_run("c++ --version", NULL, &err) != 0) {
        printf("# SKIPPED: no host C++ compiler (c++) to build the kernel emulator\n");
        free(err);
        skip();
    }
    free(err);
    tu_rng r = {42};
    int64_t nan_rows[NINJ] = {0};
    prepared ps[NCASES];
    for (size_t i = 0; i < NCASES; i++) prepare_case(&cases[i], &ps[i], &r);
    char why[2048] = "";
    void *lib = build_emulator(ps, why, sizeof why);
    if (!lib) fail_msg("%s", why);
    for (size_t i = 0; i < NCASES; i++) {
        char name[32];
        snprintf(name, sizeof name, "emu_run_%zu", i);
        emu_run_fn f;
        *(void **)&f = dlsym(lib, name);
        assert_non_null(f);
        run_case(&cases[i], &ps[i], f, &r, NULL);
        /* The same emulator with NaN and infinities in q and k (built once:
         * the compile dominates this test's time). */
        for (size_t j = 0; j < NINJ; j++) nan_rows[j] += run_case(&cases[i], &ps[i], f, &r, &injectors[j]);
    }
    /* Each injection must have made some row NaN somewhere, or it tested
     * nothing (overflow: only the bf16 cases can). */
    for (size_t j = 0; j < NINJ; j++)
        if (nan_rows[j] == 0) fail_msg("%s made no row NaN in any case", injectors[j].name);
    dlclose(lib);
    for (size_t i = 0; i < NCASES; i++) free_prepared(&ps[i]);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_matches_cpu),
    };
    return TU_RUN(tests, argc, argv);
}
