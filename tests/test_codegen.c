/* CUDA code generation, checked on the host: the generated text compiles
 * as C11 (the same text NVRTC compiles, with FM_DEVICE left to its host
 * default), and the compiled predicate agrees with the interpreter
 * (fmc_eval_point) at random points of random shapes with random params
 * and inputs, negative operands included, in both arithmetic variants. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/codegen_cuda.h"
#include "compiler/eval.h"
#include "runtime/api/api_internal.h"

typedef int (*eval_fn)(const fmc_cuda_mask_env *e, long long b, long long h, long long q,
                       long long kv);

/* One mask under test: its program (owned by the mask handle). */
typedef struct subject {
    char name[128];
    fm_program *prog;
    fm_mask *mask;
    const fmc_program *p;
} subject;

static bool load_subject(subject *s, const char *label, const char *text, const char *path) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", label);
    fm_status st = path ? fm_compile_file(path, NULL, &s->prog)
                        : fm_compile_string(label, text, strlen(text), NULL, &s->prog);
    if (st != FM_OK) return false;
    if (fm_mask_select(s->prog, NULL, NULL, &s->mask) != FM_OK) return false;
    s->p = s->mask->shared->program;
    return true;
}

static void free_subject(subject *s) {
    fm_mask_free(s->mask);
    fm_program_free(s->prog);
}

/* Masks that exercise every arithmetic operation on negative operands
 * (params range over negative values; q - k goes negative). */
static const char *const op_masks[] = {
    "param a = 0; param d = 1;\n"
    "mask m = (q - a) / d == (kv - a) % d || (q * kv - a) / (d * 3) > kv - 7;\n",
    "param a = 0; param d = 1;\n"
    "mask m = min(q - a, kv * d) % (abs(d) + 1) == max(-q, a - kv) / (abs(d) + 1) % 3;\n",
    "param a = 0; param d = 1;\n"
    "mask m = (d != 0 ? (kv - q) / d : a % 5) + (-a) % 7 >= (q - kv) % 4 - 2;\n",
    "param a = 0; param d = 1;\n"
    "let x = q - kv - a;\n"
    "mask m = !(x < 0 && x % 3 == -1) && (d == 0 || (x / d) % 2 != 0 || abs(x) * d < 5);\n",
    "param a = 0; param d = 1;\n"
    "mask m = (a < 0 ? q % (abs(a) + 1) : kv / (a + 1)) == (d > 0 ? q : -kv) % 5 || b + h > 2;\n",
    "input t[Q_LEN]; param d = 1;\n"
    "mask m = kv < Q_LEN && t[q] % 3 == t[kv] / (abs(d) + 1) || (t[q] < 0 && kv == 0);\n",
    "input g[HEADS, 3]; param a = 0;\n"
    "mask m = g[h, q % 3] - a <= (kv - q) * g[h, kv % 3] / 2;\n",
};

/* A random environment for p: shape, params in [-40, 40] (dims built from
 * params are kept in [1, 24]), int32 inputs filled from [-8, 40], byte
 * inputs (elem_bytes 1) from [0, 255] with 0, 1 and 255 frequent. */
typedef struct env_store {
    fmc_env env;
    int64_t params[FMC_CUDA_MAX_PARAMS];
    int32_t *inputs[FMC_CUDA_MAX_INPUTS];
    uint8_t *bytes[FMC_CUDA_MAX_INPUTS];
    int64_t dims[FMC_CUDA_MAX_INPUTS][FMD_MAX_RANK];
    fmc_cuda_mask_env cenv;
} env_store;

static bool make_env(const fmc_program *p, tu_rng *r, env_store *s) {
    memset(s, 0, sizeof *s);
    s->env.batch = tu_rng_range(r, 1, 3);
    s->env.heads = tu_rng_range(r, 1, 4);
    s->env.q_len = tu_rng_range(r, 1, 40);
    s->env.kv_len = tu_rng_range(r, 1, 40);
    for (size_t i = 0; i < p->nparams; i++) s->params[i] = tu_rng_range(r, -40, 40);
    s->env.params = s->params;
    for (size_t i = 0; i < p->ninputs; i++)
        for (size_t d = 0; d < p->inputs[i].rank; d++)
            if (p->inputs[i].dims[d].kind == FMD_DIM_PARAM)
                s->params[p->inputs[i].dims[d].value] = tu_rng_range(r, 1, 24);
    for (size_t i = 0; i < p->ninputs; i++) {
        size_t count = 1;
        for (size_t d = 0; d < p->inputs[i].rank; d++) {
            s->dims[i][d] = fmc_dim_value(&p->inputs[i].dims[d], &s->env);
            if (s->dims[i][d] < 1 || s->dims[i][d] > 4096) return false;
            count *= (size_t)s->dims[i][d];
        }
        if (fmc_input_is_bytes(&p->inputs[i])) {
            static const uint8_t common[4] = {0, 1, 255, 2};
            s->bytes[i] = malloc(count);
            if (!s->bytes[i]) return false;
            for (size_t k = 0; k < count; k++)
                s->bytes[i][k] = tu_rng_range(r, 0, 1) ? common[tu_rng_range(r, 0, 3)]
                                                       : (uint8_t)tu_rng_range(r, 0, 255);
            continue;
        }
        s->inputs[i] = malloc(count * sizeof(int32_t));
        if (!s->inputs[i]) return false;
        for (size_t k = 0; k < count; k++) s->inputs[i][k] = (int32_t)tu_rng_range(r, -8, 40);
    }
    s->env.inputs = (const int32_t *const *)s->inputs;
    s->env.bytes = (const uint8_t *const *)s->bytes;
    s->env.input_dims = (const int64_t(*)[FMD_MAX_RANK])s->dims;
    if (!fmc_cuda_fill_env(p, &s->env, &s->cenv)) return false;
    for (size_t i = 0; i < p->ninputs; i++)
        s->cenv.inputs[i] = fmc_env_input_data(p, &s->env, i);
    return true;
}

static void free_env(env_store *s) {
    for (int i = 0; i < FMC_CUDA_MAX_INPUTS; i++) free(s->inputs[i]), free(s->bytes[i]);
}

/* Writes one translation unit per (subject, variant) and compiles them all
 * into one shared object with a single compiler run. -O0: GCC's optimiser
 * is superlinear on long straight-line functions (minutes for 5,000 terms),
 * and only the semantics are under test here. */
static void *compile_all(subject *subs, size_t n) {
    static int round; /* a fresh file name per call: dlopen caches by path */
    round++;
    char *cmd = malloc(64 * 1024);
    assert_non_null(cmd);
    int used = snprintf(cmd, 64 * 1024, "cd '%s' && cc -std=c11 -O0 -fPIC -shared -w -o gen%d.so",
                        tu_temp_dir(), round);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        fmd_diags d;
        fmd_diags_init(&d);
        char *text = fmc_codegen_cuda(subs[i].p, &len, &d);
        assert_non_null(text);
        fmd_diags_clear(&d);
        for (int v = 0; v < 2; v++) {
            char name[64];
            snprintf(name, sizeof name, "gen%d_%zu_%d.c", round, i, v);
            size_t cap = len + 512;
            char *src = malloc(cap);
            assert_non_null(src);
            int k = snprintf(src, cap, "%s", v ? "#define FM_MASK_INT32 1\n" : "");
            memcpy(src + k, text, len);
            k += (int)len;
            k += snprintf(src + k, cap - (size_t)k,
                          "\nint eval_%zu_%d(const fm_mask_env *e, long long b, long long h, "
                          "long long q, long long kv) {\n"
                          "    return " FMC_CUDA_MASK_FN "(e, (fm_int)b, (fm_int)h, (fm_int)q, "
                          "(fm_int)kv);\n}\n",
                          i, v);
            char *path = tu_write_temp(name, src, (size_t)k);
            assert_non_null(path);
            free(path);
            free(src);
            used += snprintf(cmd + used, 64 * 1024 - (size_t)used, " %s", name);
        }
        free(text);
    }
    char *err = NULL;
    int rc = tu_run(cmd, NULL, &err);
    if (rc != 0) fprintf(stderr, "host compile failed:\n%s\n", err ? err : "");
    assert_int_equal(rc, 0);
    free(err);
    free(cmd);
    char so[600];
    snprintf(so, sizeof so, "%s/gen%d.so", tu_temp_dir(), round);
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) fprintf(stderr, "dlopen: %s\n", dlerror());
    assert_non_null(lib);
    return lib;
}

static eval_fn lookup(void *lib, size_t i, int v) {
    char name[64];
    snprintf(name, sizeof name, "eval_%zu_%d", i, v);
    eval_fn f;
    *(void **)&f = dlsym(lib, name);
    assert_non_null(f);
    return f;
}

/* Compares the generated predicate with the interpreter; returns the
 * number of points compared in the 64-bit and 32-bit variants. */
static void compare(const subject *s, eval_fn f64, eval_fn f32, tu_rng *r, int envs, int points,
                    long *n64, long *n32) {
    int64_t *regs = malloc(s->p->count * sizeof(int64_t));
    assert_non_null(regs);
    for (int e = 0; e < envs; e++) {
        env_store st;
        if (!make_env(s->p, r, &st)) {
            free_env(&st);
            continue;
        }
        bool fits = fmc_program_fits_int32(s->p, &st.env);
        for (int k = 0; k < points; k++) {
            int64_t b = tu_rng_range(r, 0, st.env.batch - 1), h = tu_rng_range(r, 0, st.env.heads - 1);
            int64_t q = tu_rng_range(r, 0, st.env.q_len - 1), kv = tu_rng_range(r, 0, st.env.kv_len - 1);
            bool want;
            fmc_violation v;
            /* A point that breaks a safety rule is one a BlockMask build
               refuses: the kernel never sees it. */
            if (!fmc_eval_point(s->p, &st.env, b, h, q, kv, regs, &want, &v)) continue;
            int got = f64(&st.cenv, b, h, q, kv);
            if (got != (int)want)
                fail_msg("%s: generated code says %d, interpreter %d at b=%lld h=%lld q=%lld kv=%lld",
                         s->name, got, (int)want, (long long)b, (long long)h, (long long)q,
                         (long long)kv);
            (*n64)++;
            if (fits) {
                got = f32(&st.cenv, b, h, q, kv);
                if (got != (int)want)
                    fail_msg("%s (32-bit): generated code says %d, interpreter %d at q=%lld kv=%lld",
                             s->name, got, (int)want, (long long)q, (long long)kv);
                (*n32)++;
            }
        }
        free_env(&st);
    }
    free(regs);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .mask files of examples/masks, sorted. */
static size_t list_masks(char ***out) {
    DIR *d = opendir(FM_SOURCE_DIR "/examples/masks");
    assert_non_null(d);
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".mask")) continue;
        names = realloc(names, (n + 1) * sizeof *names);
        assert_non_null(names);
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

static void test_agrees_with_interpreter(void **state) {
    (void)state;
    char **files;
    size_t nfiles = list_masks(&files);
    assert_true(nfiles >= 10);
    size_t nops = sizeof op_masks / sizeof op_masks[0];
    subject *subs = calloc(nfiles + nops, sizeof *subs);
    assert_non_null(subs);
    size_t n = 0;
    for (size_t i = 0; i < nfiles; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/examples/masks/%s", FM_SOURCE_DIR, files[i]);
        if (!load_subject(&subs[n], files[i], NULL, path)) fail_msg("%s does not compile", path);
        n++;
    }
    for (size_t i = 0; i < nops; i++) {
        char label[32];
        snprintf(label, sizeof label, "op_mask_%zu", i);
        if (!load_subject(&subs[n], label, op_masks[i], NULL))
            fail_msg("op mask %zu does not compile:\n%s", i, op_masks[i]);
        n++;
    }
    void *lib = compile_all(subs, n);
    tu_rng r = {0x5eed};
    int envs = tu_sanitizer_run() ? 10 : 40, points = tu_sanitizer_run() ? 100 : 400;
    long total64 = 0, total32 = 0;
    for (size_t i = 0; i < n; i++) {
        long n64 = 0, n32 = 0;
        compare(&subs[i], lookup(lib, i, 0), lookup(lib, i, 1), &r, envs, points, &n64, &n32);
        /* Each mask must actually be exercised, not skipped point by point. */
        if (n64 < 50) fail_msg("%s: only %ld points were comparable", subs[i].name, n64);
        total64 += n64;
        total32 += n32;
    }
    printf("# compared %ld points (64-bit) and %ld (32-bit) over %zu masks\n", total64, total32, n);
    assert_true(total32 > 0);
    dlclose(lib);
    for (size_t i = 0; i < n; i++) free_subject(&subs[i]);
    for (size_t i = 0; i < nfiles; i++) free(files[i]);
    free(files);
    free(subs);
}

/* Byte inputs (the runtime's dense imports mark their array so): the
 * generated code reads them through unsigned char, so values above 127
 * stay positive, and agrees with the interpreter, alone and next to int32
 * inputs. */
static const struct {
    const char *src;
    unsigned bytes; /* which input slots hold bytes */
} byte_masks[] = {
    {"input keep[BATCH, HEADS, Q_LEN, KV_LEN];\nmask d = keep[b, h, q, kv] != 0;\n", 1},
    {"input keep[1, Q_LEN, KV_LEN];\nmask d = keep[0, q, kv] != 0;\n", 1},
    {"input t[Q_LEN]; input u[KV_LEN];\n"
     "mask m = t[q] * 300 - u[kv] > q * 7 || (t[q] == 255 && u[kv] % 3 == 1);\n", 1},
    {"input t[Q_LEN]; input u[KV_LEN];\n"
     "mask m = t[q] * 300 - u[kv] > q * 7 || (t[q] == 255 && u[kv] % 3 == 1);\n", 2},
    {"input g[HEADS, 3];\nmask m = g[h, q % 3] - kv > g[h, kv % 3] * 2 - 200;\n", 1},
};

static void test_byte_inputs_agree(void **state) {
    (void)state;
    enum { N = sizeof byte_masks / sizeof byte_masks[0] };
    subject subs[N];
    for (size_t i = 0; i < N; i++) {
        char label[32];
        snprintf(label, sizeof label, "byte_mask_%zu", i);
        if (!load_subject(&subs[i], label, byte_masks[i].src, NULL))
            fail_msg("byte mask %zu does not compile", i);
        fmc_program *p = subs[i].mask->shared->program;
        for (size_t k = 0; k < p->ninputs; k++)
            if (byte_masks[i].bytes >> k & 1) p->inputs[k].elem_bytes = 1;
        char *text = fmc_codegen_cuda(p, NULL, NULL);
        assert_non_null(text);
        assert_non_null(strstr(text, "(const unsigned char *)e->inputs["));
        assert_true((strstr(text, "(const int *)e->inputs[") != NULL) == (p->ninputs > 1));
        free(text);
    }
    void *lib = compile_all(subs, N);
    tu_rng r = {0xb17e};
    int envs = tu_sanitizer_run() ? 10 : 40, points = tu_sanitizer_run() ? 100 : 400;
    for (size_t i = 0; i < N; i++) {
        long n64 = 0, n32 = 0;
        compare(&subs[i], lookup(lib, i, 0), lookup(lib, i, 1), &r, envs, points, &n64, &n32);
        if (n64 < 50) fail_msg("%s: only %ld points were comparable", subs[i].name, n64);
    }
    dlclose(lib);
    for (size_t i = 0; i < N; i++) free_subject(&subs[i]);
}

/* Floor division and remainder at the edges, through the generated
 * helpers (the spec's table: -7/2 == -4, -7%2 == 1, 7%-2 == -1, x%-1 == 0). */
static void test_floor_division_edges(void **state) {
    (void)state;
    subject s;
    assert_true(load_subject(&s, "edges", "param a = 0; param d = 1;\nmask m = a / d == q - 100 && a % d == kv - 100;\n", NULL));
    void *lib = compile_all(&s, 1);
    eval_fn f = lookup(lib, 0, 0);
    static const long long cases[][4] = {
        {-7, 2, -4, 1}, {7, -2, -4, -1}, {-7, -2, 3, -1}, {7, 2, 3, 1}, {-8, 2, -4, 0},
        {5, -1, -5, 0}, {-9, -1, 9, 0}, {0, -3, 0, 0}, {-1, 3, -1, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fmc_cuda_mask_env e = {.batch = 1, .heads = 1, .q_len = 1, .kv_len = 1};
        e.params[0] = cases[i][0];
        e.params[1] = cases[i][1];
        /* q - 100 == a / d and kv - 100 == a % d exactly at the expected pair. */
        assert_int_equal(f(&e, 0, 0, cases[i][2] + 100, cases[i][3] + 100), 1);
        assert_int_equal(f(&e, 0, 0, cases[i][2] + 101, cases[i][3] + 100), 0);
        assert_int_equal(f(&e, 0, 0, cases[i][2] + 100, cases[i][3] + 101), 0);
    }
    dlclose(lib);
    free_subject(&s);
}

/* A 100,000-term || chain becomes flat code in a handful of reused
 * variables; a 5,000-term one is compiled and checked at points (the full
 * size takes the host compiler long on a loaded machine; set
 * FM_TEST_SCALE=full to compile it too). */
static char *chain_source(int terms) {
    size_t cap = (size_t)terms * 24 + 64;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t n = (size_t)snprintf(s, cap, "mask chain = ");
    for (int i = 0; i < terms; i++)
        n += (size_t)snprintf(s + n, cap - n, "%sq == kv + %d", i ? " || " : "", 3 * i);
    snprintf(s + n, cap - n, ";\n");
    return s;
}

static void test_long_chain(void **state) {
    (void)state;
    bool full = tu_full_run();
    char *big = chain_source(100000);
    subject s;
    assert_true(load_subject(&s, "chain100k", big, NULL));
    size_t len;
    char *text = fmc_codegen_cuda(s.p, &len, NULL);
    assert_non_null(text);
    /* Flat: every statement is one line at one indentation, and the
       variable count stays tiny. */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    assert_true(lines > 100000);
    const char *decl = strstr(text, "    fm_int v0");
    assert_non_null(decl);
    assert_null(strstr(text, "v64,")); /* fewer than 64 variables */
    size_t depth = 0, maxdepth = 0;
    for (const char *p = strstr(text, FMC_CUDA_MASK_FN "("); *p; p++) {
        if (*p == '(') depth++, maxdepth = depth > maxdepth ? depth : maxdepth;
        if (*p == ')') depth--;
    }
    assert_true(maxdepth <= 4);
    free(text);
    free_subject(&s);
    free(big);

    subject c;
    char *src = chain_source(full ? 100000 : 5000);
    assert_true(load_subject(&c, "chain", src, NULL));
    void *lib = compile_all(&c, 1);
    eval_fn f = lookup(lib, 0, 0);
    fmc_cuda_mask_env e = {.batch = 1, .heads = 1, .q_len = 1 << 20, .kv_len = 1 << 20};
    assert_int_equal(f(&e, 0, 0, 30, 0), 1);
    assert_int_equal(f(&e, 0, 0, 31, 1), 1);
    assert_int_equal(f(&e, 0, 0, 31, 0), 0);
    assert_int_equal(f(&e, 0, 0, 5, 10), 0);
    dlclose(lib);
    free_subject(&c);
    free(src);
}

/* Code generation refuses masks that do not fit the environment struct,
 * with a message naming the limit, instead of writing past it. */
static void test_too_many_params(void **state) {
    (void)state;
    size_t cap = 64 * 1024;
    char *src = malloc(cap);
    assert_non_null(src);
    size_t n = 0;
    for (int i = 0; i < FMC_CUDA_MAX_PARAMS + 1; i++) n += (size_t)snprintf(src + n, cap - n, "param p%d = %d;\n", i, i);
    n += (size_t)snprintf(src + n, cap - n, "mask m = q < 0");
    for (int i = 0; i < FMC_CUDA_MAX_PARAMS + 1; i++) n += (size_t)snprintf(src + n, cap - n, " || kv == p%d", i);
    snprintf(src + n, cap - n, ";\n");
    subject s;
    assert_true(load_subject(&s, "many", src, NULL));
    fmd_diags d;
    fmd_diags_init(&d);
    assert_null(fmc_codegen_cuda(s.p, NULL, &d));
    assert_true(d.count >= 1);
    assert_non_null(strstr(d.items[0].message, "at most 64 params"));
    fmd_diags_clear(&d);
    free_subject(&s);
    free(src);
}

/* fmc cuda prints the same text, whatever the shape flags would be. */
static void test_fmc_cuda_cli(void **state) {
    (void)state;
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' cuda '%s/examples/masks/document.mask' --mask same_document", FM_FMC_PATH,
             FM_SOURCE_DIR);
    assert_int_equal(tu_run(cmd, &out, &err), 0);
    assert_non_null(strstr(out, "FM_DEVICE int " FMC_CUDA_MASK_FN "("));
    assert_non_null(strstr(out, "mask 'same_document'"));
    assert_non_null(strstr(out, "e->inputs[0]"));
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "'%s' cuda '%s/examples/masks/causal.mask' --full", FM_FMC_PATH, FM_SOURCE_DIR);
    assert_int_equal(tu_run(cmd, &out, NULL), 0);
    assert_non_null(strstr(out, "fm_flash_fwd"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' cuda '%s/examples/masks/causal.mask' --bogus", FM_FMC_PATH, FM_SOURCE_DIR);
    assert_int_equal(tu_run(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof cmd, "'%s' cuda '%s/examples/masks/document.mask' --mask nope", FM_FMC_PATH, FM_SOURCE_DIR);
    assert_int_equal(tu_run(cmd, NULL, NULL), 1);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agrees_with_interpreter),
        cmocka_unit_test(test_byte_inputs_agree),
        cmocka_unit_test(test_floor_division_edges),
        cmocka_unit_test(test_long_chain),
        cmocka_unit_test(test_too_many_params),
        cmocka_unit_test(test_fmc_cuda_cli),
    };
    return TU_RUN(tests, argc, argv);
}
