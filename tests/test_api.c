/* The public API as a user sees it: handles, ownership, statuses,
 * diagnostics, bounds, and concurrent use of const handles. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "flexmask.h"
#include "testutil.h"

static fm_mask *compile_mask(const char *src, const char *name) {
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    assert_int_equal(fm_compile_string("t.mask", src, strlen(src), NULL, &prog), FM_OK);
    assert_int_equal(fm_mask_select(prog, name, NULL, &mask), FM_OK);
    fm_program_free(prog); /* the mask does not need its program */
    return mask;
}

static void test_free_null_and_strings(void **state) {
    (void)state;
    fm_diagnostics_free(NULL);
    fm_program_free(NULL);
    fm_mask_free(NULL);
    fm_bindings_free(NULL);
    fm_blockmask_free(NULL);
    fm_free(NULL);
    assert_string_equal(fm_version(), FM_VERSION);
    const char *seen[FM_ERR_CUDA + 1];
    for (int s = FM_OK; s <= FM_ERR_CUDA; s++) {
        seen[s] = fm_status_string((fm_status)s);
        assert_non_null(seen[s]);
        for (int t = FM_OK; t < s; t++) assert_string_not_equal(seen[s], seen[t]);
    }
    assert_non_null(fm_status_string((fm_status)999));
}

static void test_compile_errors_are_located(void **state) {
    (void)state;
    const char *src = "param w = 3;\nmask x = q < w;\nmask y = q && kv;\nmask z = nope < 1;\n";
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *prog = NULL;
    assert_int_equal(fm_compile_string("t.mask", src, strlen(src), d, &prog), FM_ERR_COMPILE);
    assert_null(prog);
    /* Every independent error: both operands of '&&', then the unknown name. */
    assert_int_equal(fm_diagnostics_count(d), 3);
    fm_diagnostic x;
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    assert_string_equal(x.file, "t.mask");
    assert_int_equal(x.line, 3);
    assert_int_equal(x.col, 10);
    assert_string_equal(x.severity, "error");
    assert_int_equal(fm_diagnostics_get(d, 2, &x), FM_OK);
    assert_int_equal(x.line, 4);
    assert_int_equal(x.col, 10);
    assert_int_equal(x.end_col, 14);
    assert_string_equal(x.message, "unknown name 'nope'");
    assert_int_equal(fm_diagnostics_get(d, 3, &x), FM_ERR_INVALID_ARGUMENT);
    char *text = fm_diagnostics_format(d, false);
    assert_non_null(strstr(text, "t.mask:3:10: error: "));
    fm_free(text);
    char *json = fm_diagnostics_format(d, true);
    assert_non_null(strstr(json, "\"line\": 4"));
    fm_free(json);
    fm_diagnostics_clear(d);
    assert_int_equal(fm_diagnostics_count(d), 0);
    fm_diagnostics_free(d);
}

static void test_masks_by_name(void **state) {
    (void)state;
    const char *src = "mask causal = kv <= q;\nmask local = q - kv < 4 && kv - q < 4;\n";
    fm_program *prog = NULL;
    assert_int_equal(fm_compile_string(NULL, src, strlen(src), NULL, &prog), FM_OK);
    assert_int_equal(fm_program_mask_count(prog), 2);
    assert_string_equal(fm_program_mask_name(prog, 0), "causal");
    assert_null(fm_program_mask_name(prog, 2));
    fm_mask *m = NULL;
    assert_int_equal(fm_mask_select(prog, NULL, NULL, &m), FM_OK);
    assert_string_equal(fm_mask_name(m), "local"); /* the last one */
    fm_mask_free(m);
    fm_diagnostics *d = fm_diagnostics_create();
    assert_int_equal(fm_mask_select(prog, "caussal", d, &m), FM_ERR_NOT_FOUND);
    fm_diagnostic x;
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    assert_non_null(strstr(x.message, "'causal', 'local'"));
    char *printed = fm_program_print(prog);
    assert_non_null(strstr(printed, "mask causal = kv <= q;"));
    fm_free(printed);
    fm_diagnostics_free(d);
    fm_program_free(prog);
}

static void test_binding_errors(void **state) {
    (void)state;
    fm_mask *m =
        compile_mask("param w;\ninput doc[KV_LEN];\nmask m = q - kv < w && doc[kv] == 0;\n", NULL);
    assert_int_equal(fm_mask_param_count(m), 1);
    assert_false(fm_mask_param_default(m, 0, NULL));
    assert_int_equal(fm_mask_input_rank(m, 0), 1);
    fm_bindings *b = NULL;
    assert_int_equal(fm_bindings_create(m, &b), FM_OK);
    fm_diagnostics *d = fm_diagnostics_create();
    fm_blockmask *bm = NULL;
    fm_shape shape = {1, 1, 8, 8};
    /* w has no value and doc is not bound: both are reported. */
    assert_int_equal(fm_blockmask_build(m, b, shape, NULL, d, &bm), FM_ERR_BINDING);
    assert_null(bm);
    fm_diagnostic x;
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    assert_non_null(strstr(x.message, "param 'w'"));
    fm_diagnostics_clear(d);
    assert_int_equal(fm_bindings_set_param(b, "nope", 1, d), FM_ERR_NOT_FOUND);
    assert_int_equal(fm_bindings_set_param(b, "w", 2, d), FM_OK);
    int32_t doc[7] = {0};
    int64_t dims[1] = {7};
    assert_int_equal(fm_bindings_set_input(b, "doc", doc, 1, dims, FM_BORROW, d), FM_OK);
    fm_diagnostics_clear(d);
    assert_int_equal(fm_blockmask_build(m, b, shape, NULL, d, &bm), FM_ERR_BINDING);
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    assert_non_null(strstr(x.message, "input 'doc'"));
    assert_non_null(strstr(x.message, "[7]"));
    assert_non_null(strstr(x.message, "[8]"));
    fm_diagnostics_free(d);
    fm_bindings_free(b);
    fm_mask_free(m);
}

/* The first message of d: its fields, checked in one place. */
static void expect_diag(fm_diagnostics *d, int line, int col, const char *message,
                        const char *hint_part) {
    fm_diagnostic x;
    assert_int_equal(fm_diagnostics_count(d), 1);
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    if (strcmp(x.message, message) || !x.hint || !strstr(x.hint, hint_part))
        fprintf(stderr, "got %d:%d '%s' hint '%s'\n", x.line, x.col, x.message,
                x.hint ? x.hint : "(none)");
    assert_string_equal(x.message, message);
    assert_non_null(x.file);
    assert_string_equal(x.file, "t.mask");
    assert_int_equal(x.line, line);
    assert_int_equal(x.col, col);
    assert_non_null(x.hint);
    assert_non_null(strstr(x.hint, hint_part));
    fm_diagnostics_clear(d);
}

/* A name the mask does not have is placed in the file and explained by
 * what the file declares: a typo gets a did-you-mean, a declaration the
 * mask does not reach or of another kind is pointed at. */
static void test_unknown_binding_names(void **state) {
    (void)state;
    fm_mask *m = compile_mask("param window = 4;\n"
                              "param sinks = 1;\n"
                              "param n = 3;\n"
                              "input doc[KV_LEN, n];\n"
                              "input fixed[4];\n"
                              "let near = q - kv < window;\n"
                              "mask m = near && doc[kv, 0] >= fixed[0];\n",
                              NULL);
    fm_bindings *b = NULL;
    assert_int_equal(fm_bindings_create(m, &b), FM_OK);
    fm_diagnostics *d = fm_diagnostics_create();
    assert_int_equal(fm_bindings_set_param(b, "windw", 1, d), FM_ERR_NOT_FOUND);
    expect_diag(d, 7, 6, "the file declares no param named 'windw'",
                "did you mean 'window'? (declared params: window, sinks, n)");
    assert_int_equal(fm_bindings_set_param(b, "sinks", 1, d), FM_ERR_NOT_FOUND);
    expect_diag(d, 2, 7, "mask 'm' does not use the param 'sinks'", "uses the params window, n");
    assert_int_equal(fm_bindings_set_param(b, "near", 1, d), FM_ERR_NOT_FOUND);
    expect_diag(d, 6, 5, "'near' is a let, not a param", "declared params: window, sinks, n");
    int32_t data[24] = {0};
    int64_t dims[2] = {3, 3};
    assert_int_equal(fm_bindings_set_input(b, "dcc", data, 1, dims, FM_COPY, d), FM_ERR_NOT_FOUND);
    expect_diag(d, 7, 6, "the file declares no input named 'dcc'",
                "did you mean 'doc'? (declared inputs: doc, fixed)");
    assert_int_equal(fm_bindings_set_input(b, "window", data, 1, dims, FM_COPY, d),
                     FM_ERR_NOT_FOUND);
    expect_diag(d, 1, 7, "'window' is a param, not an input", "declared inputs: doc, fixed");
    /* A wrong size says what the named dimensions are for this shape. */
    assert_int_equal(fm_bindings_set_input(b, "doc", data, 2, dims, FM_COPY, d), FM_OK);
    int64_t four = 4;
    assert_int_equal(fm_bindings_set_input(b, "fixed", data, 1, &four, FM_COPY, d), FM_OK);
    fm_blockmask *bm = NULL;
    fm_shape shape = {1, 1, 6, 8};
    assert_int_equal(fm_blockmask_build(m, b, shape, NULL, d, &bm), FM_ERR_BINDING);
    expect_diag(d, 4, 7,
                "input 'doc' is bound with shape [3, 3] but the mask declares shape [8, 3] for "
                "this shape and params",
                "KV_LEN is 8 and n is 3 here");
    dims[0] = 8;
    int64_t three = 3;
    assert_int_equal(fm_bindings_set_input(b, "doc", data, 2, dims, FM_COPY, d), FM_OK);
    assert_int_equal(fm_bindings_set_input(b, "fixed", data, 1, &three, FM_COPY, d), FM_OK);
    assert_int_equal(fm_blockmask_build(m, b, shape, NULL, d, &bm), FM_ERR_BINDING);
    expect_diag(d, 5, 7,
                "input 'fixed' is bound with shape [3] but the mask declares shape [4] for this "
                "shape and params",
                "the declaration fixes every dimension");
    fm_bindings_free(b);
    fm_mask_free(m);
    /* A file without params says so. */
    m = compile_mask("mask causal = kv <= q;\n", NULL);
    assert_int_equal(fm_bindings_create(m, &b), FM_OK);
    assert_int_equal(fm_bindings_set_param(b, "window", 1, d), FM_ERR_NOT_FOUND);
    expect_diag(d, 1, 6, "the file declares no param named 'window'",
                "the file declares no params");
    fm_diagnostics_free(d);
    fm_bindings_free(b);
    fm_mask_free(m);
}

/* FM_COPY keeps the BlockMask independent of the caller's array, and a
 * BlockMask outlives the mask and bindings it was built from. */
static void test_ownership(void **state) {
    (void)state;
    fm_mask *m = compile_mask("input doc[KV_LEN];\nmask m = doc[q] == doc[kv];\n", NULL);
    fm_bindings *b = NULL;
    assert_int_equal(fm_bindings_create(m, &b), FM_OK);
    int32_t *doc = malloc(16 * sizeof *doc);
    for (int i = 0; i < 16; i++) doc[i] = i / 4;
    int64_t dims[1] = {16};
    assert_int_equal(fm_bindings_set_input(b, "doc", doc, 1, dims, FM_COPY, NULL), FM_OK);
    fm_shape shape = {1, 1, 16, 16};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 4, .block_kv = 4};
    fm_blockmask *bm = NULL;
    assert_int_equal(fm_blockmask_build(m, b, shape, &opts, NULL, &bm), FM_OK);
    for (int i = 0; i < 16; i++) doc[i] = 99; /* the copy is what counts */
    free(doc);
    fm_bindings_free(b);
    fm_mask_free(m);
    bool v = false;
    assert_int_equal(fm_blockmask_eval(bm, 0, 0, 5, 6, &v), FM_OK);
    assert_true(v);
    assert_int_equal(fm_blockmask_eval(bm, 0, 0, 5, 9, &v), FM_OK);
    assert_false(v);
    assert_int_equal(fm_blockmask_eval(bm, 0, 0, 16, 0, &v), FM_ERR_INVALID_ARGUMENT);
    fm_blockmask_info info;
    assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
    assert_int_equal(info.full_tiles, 4);
    assert_int_equal(info.empty_tiles, 12);
    int64_t count = -1;
    assert_int_equal(fm_blockmask_count_true(bm, &count), FM_OK);
    assert_int_equal(count, 64);
    const int32_t *full, *partial;
    int64_t nf, np;
    assert_int_equal(fm_blockmask_column(bm, 0, 0, 2, &full, &nf, &partial, &np), FM_OK);
    assert_int_equal(nf, 1);
    assert_int_equal(full[0], 2);
    assert_int_equal(np, 0);
    fm_blockmask_free(bm);
}

/* q*q mod 7 is never 3 or 5, which no interval reasoning sees: every tile
 * is evaluated point by point, so the evaluation bound is what stops it. */
static void test_evaluation_bound(void **state) {
    (void)state;
    fm_mask *m = compile_mask("mask m = q * q % 7 == 3 || kv * kv % 7 == 5;\n", NULL);
    fm_shape shape = {1, 1, 300, 300};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 100, .block_kv = 100, .max_evaluations = 1000};
    fm_diagnostics *d = fm_diagnostics_create();
    fm_blockmask *bm = NULL;
    assert_int_equal(fm_blockmask_build(m, NULL, shape, &opts, d, &bm), FM_ERR_LIMIT);
    fm_diagnostic x;
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    assert_non_null(strstr(x.message, "more than 1000 point evaluations"));
    opts.max_evaluations = 0;
    assert_int_equal(fm_blockmask_build(m, NULL, shape, &opts, d, &bm), FM_OK);
    fm_blockmask_info info;
    fm_blockmask_get_info(bm, &info);
    assert_int_equal(info.empty_tiles, 9);
    assert_int_equal(info.evaluations, 90000);
    fm_blockmask_free(bm);
    fm_diagnostics_free(d);
    fm_mask_free(m);
}

/* Options and args carry their size: an unset one is refused with a
 * message, a newer caller's larger one too, and an older caller's shorter
 * one reads the missing fields as their defaults. */
static void test_struct_size(void **state) {
    (void)state;
    fm_mask *m = compile_mask("mask m = kv <= q;\n", NULL);
    fm_shape shape = {1, 1, 64, 64};
    fm_diagnostics *d = fm_diagnostics_create();
    fm_blockmask *bm = NULL;
    fm_build_options unset = {.block_q = 16, .block_kv = 16};
    assert_int_equal(fm_blockmask_build(m, NULL, shape, &unset, d, &bm), FM_ERR_INVALID_ARGUMENT);
    assert_null(bm);
    fm_diagnostic x;
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    assert_string_equal(x.message, "fm_build_options.struct_size is 0: set it to "
                                   "sizeof(fm_build_options) (the FM_*_INIT macros do)");
    fm_diagnostics_clear(d);
    fm_build_options newer = FM_BUILD_OPTIONS_INIT;
    newer.struct_size += 8;
    assert_int_equal(fm_blockmask_build(m, NULL, shape, &newer, d, &bm), FM_ERR_INVALID_ARGUMENT);
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    assert_non_null(strstr(x.message, "built against another flexmask.h"));
    /* An older header that ended after block_kv: the budget and the
     * evaluation bound it never set are the defaults, whatever follows. */
    fm_build_options older = {.struct_size = offsetof(fm_build_options, memory_budget),
                              .block_q = 16, .block_kv = 32, .memory_budget = 1,
                              .max_evaluations = 1};
    assert_int_equal(fm_blockmask_build(m, NULL, shape, &older, d, &bm), FM_OK);
    fm_blockmask_info info;
    assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
    assert_int_equal(info.block_q, 16);
    assert_int_equal(info.block_kv, 32);
    fm_attention_args args = {.mask = bm};
    fm_diagnostics_clear(d);
    assert_int_equal(fm_attention_cpu(&args, d), FM_ERR_INVALID_ARGUMENT);
    assert_int_equal(fm_diagnostics_get(d, 0, &x), FM_OK);
    assert_non_null(strstr(x.message, "fm_attention_args.struct_size is 0"));
    fm_blockmask_free(bm);
    fm_diagnostics_free(d);
    fm_mask_free(m);
}

typedef struct shared_work {
    const fm_mask *mask;
    const fm_blockmask *bm;
    int64_t full, partial, truths;
    int errors;
} shared_work;

static void *worker(void *arg) {
    shared_work *w = arg;
    fm_shape shape = {2, 3, 300, 257};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 32, .block_kv = 16};
    for (int rep = 0; rep < 4; rep++) {
        fm_blockmask *mine = NULL;
        if (fm_blockmask_build(w->mask, NULL, shape, &opts, NULL, &mine) != FM_OK) {
            w->errors++;
            continue;
        }
        fm_blockmask_info a, b;
        fm_blockmask_get_info(mine, &a);
        fm_blockmask_get_info(w->bm, &b);
        int64_t t = 0;
        if (fm_blockmask_count_true(w->bm, &t) != FM_OK) w->errors++;
        if (a.full_tiles != b.full_tiles || a.partial_tiles != b.partial_tiles) w->errors++;
        w->full = a.full_tiles;
        w->partial = a.partial_tiles;
        w->truths = t;
        bool v;
        for (int64_t q = 0; q < 300; q += 7)
            if (fm_blockmask_eval(w->bm, 1, 2, q, q % 257, &v) != FM_OK || !v) w->errors++;
        fm_blockmask_free(mine);
    }
    return NULL;
}

/* Const handles (a mask, a built BlockMask) are used from many threads at
 * once; each thread builds its own BlockMask from the shared mask too. */
static void test_concurrent_const_handles(void **state) {
    (void)state;
    fm_mask *m = compile_mask("mask m = kv <= q + h && (q - kv) % (b + 2) != 1;\n", NULL);
    fm_shape shape = {2, 3, 300, 257};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 32, .block_kv = 16};
    fm_blockmask *bm = NULL;
    assert_int_equal(fm_blockmask_build(m, NULL, shape, &opts, NULL, &bm), FM_OK);
    enum { N = 4 };
    pthread_t t[N];
    shared_work w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (shared_work){.mask = m, .bm = bm};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].errors, 0);
        assert_int_equal(w[i].truths, w[0].truths);
        assert_true(w[i].truths > 0);
    }
    fm_blockmask_free(bm);
    fm_mask_free(m);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_null_and_strings),
        cmocka_unit_test(test_compile_errors_are_located),
        cmocka_unit_test(test_masks_by_name),
        cmocka_unit_test(test_binding_errors),
        cmocka_unit_test(test_unknown_binding_names),
        cmocka_unit_test(test_ownership),
        cmocka_unit_test(test_evaluation_bound),
        cmocka_unit_test(test_struct_size),
        cmocka_unit_test(test_concurrent_const_handles),
    };
    return TU_RUN(tests, argc, argv);
}
