/* Resource limits (docs/errors.md, "Limits"): each is refused with a clear
 * error that names it, before the memory it guards is allocated, and the
 * largest accepted size works: file size (16 MiB), expression nesting
 * (1,000), declarations (100,000), sequence lengths and batch/heads, the
 * memory budget of a BlockMask (fm_build_options.memory_budget), input
 * dimensions, and dense export. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#include "flexmask.h"

/* Compiles text; returns the status and the rendered diagnostics. */
static fm_status compile(const char *text, size_t len, char **msgs, fm_program **out) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *p = NULL;
    fm_status st = fm_compile_string("t.mask", text, len, d, &p);
    *msgs = fm_diagnostics_format(d, false);
    fm_diagnostics_free(d);
    if (out) *out = p;
    else fm_program_free(p);
    return st;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char *decls(int n) {
    size_t cap = (size_t)n * 24 + 64, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (int i = 0; i < n - 1; i++) len += (size_t)snprintf(s + len, cap - len, "param p%d = 1;\n", i);
    snprintf(s + len, cap - len, "mask m = kv <= q;\n");
    return s;
}

static void test_declaration_limit(void **state) {
    (void)state;
    char *msgs;
    char *ok = decls(100000); /* exactly the limit, the mask included */
    assert_int_equal(compile(ok, strlen(ok), &msgs, NULL), FM_OK);
    fm_free(msgs);
    free(ok);
    char *over = decls(100001);
    assert_int_equal(compile(over, strlen(over), &msgs, NULL), FM_ERR_COMPILE);
    assert_non_null(strstr(msgs, "t.mask:100001:6: error: too many declarations: a file may "
                                 "hold at most 100000"));
    fm_free(msgs);
    free(over);
}

/* A 16 MiB file of tiny declarations stops at the declaration limit
 * quickly and without the memory that checking all of them would take. */
static void test_declaration_limit_stops_early(void **state) {
    (void)state;
    size_t cap = 16u << 20, len = 0;
    char *s = malloc(cap + 64);
    assert_non_null(s);
    for (int i = 0; len + 40 < cap; i++) len += (size_t)sprintf(s + len, "let a%d=q;", i);
    len += (size_t)sprintf(s + len, "mask m=kv<=q;");
    assert_true(len <= cap);
    char *msgs;
    double t0 = now();
    assert_int_equal(compile(s, len, &msgs, NULL), FM_ERR_COMPILE);
    double took = now() - t0;
    assert_non_null(strstr(msgs, "too many declarations"));
    /* One error, not one per statement past the limit. */
    assert_null(strstr(strstr(msgs, "too many") + 1, "too many"));
    fm_free(msgs);
    free(s);
    assert_true(took < 30.0);
}

static void test_file_size_limit(void **state) {
    (void)state;
    size_t n = (16u << 20) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    memset(s, ' ', n);
    char *msgs;
    assert_int_equal(compile(s, n, &msgs, NULL), FM_ERR_LIMIT);
    assert_non_null(strstr(msgs, "the limit is 16777216 bytes (16 MiB)"));
    fm_free(msgs);
    /* The same through a file. */
    char *path = tu_write_temp("big.mask", s, n);
    assert_non_null(path);
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *p = NULL;
    assert_int_not_equal(fm_compile_file(path, d, &p), FM_OK);
    assert_null(p);
    msgs = fm_diagnostics_format(d, false);
    assert_non_null(strstr(msgs, "16 MiB"));
    fm_free(msgs);
    fm_diagnostics_free(d);
    remove(path);
    free(path);
    free(s);
}

static char *nested(int depth) {
    size_t cap = (size_t)depth * 2 + 64;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t len = (size_t)sprintf(s, "mask m = ");
    for (int i = 0; i < depth - 1; i++) s[len++] = '(';
    len += (size_t)sprintf(s + len, "q < kv");
    for (int i = 0; i < depth - 1; i++) s[len++] = ')';
    sprintf(s + len, ";\n");
    return s;
}

static void test_nesting_limit(void **state) {
    (void)state;
    char *msgs;
    char *ok = nested(1000);
    assert_int_equal(compile(ok, strlen(ok), &msgs, NULL), FM_OK);
    fm_free(msgs);
    free(ok);
    char *deep = nested(1002);
    assert_int_equal(compile(deep, strlen(deep), &msgs, NULL), FM_ERR_COMPILE);
    assert_non_null(strstr(msgs, "error: expression nested too deeply"));
    assert_non_null(strstr(msgs, "at most 1000 levels"));
    fm_free(msgs);
    free(deep);
    /* Far deeper: still an error, never a stack overflow. */
    char *very = nested(2000000);
    assert_int_equal(compile(very, strlen(very), &msgs, NULL), FM_ERR_COMPILE);
    fm_free(msgs);
    free(very);
}

typedef struct built {
    fm_program *prog;
    fm_mask *mask;
    fm_diagnostics *diags;
} built;

static void setup_mask(built *b, const char *src) {
    b->diags = fm_diagnostics_create();
    assert_int_equal(fm_compile_string("t.mask", src, strlen(src), b->diags, &b->prog), FM_OK);
    assert_int_equal(fm_mask_select(b->prog, NULL, b->diags, &b->mask), FM_OK);
}

static void teardown_mask(built *b) {
    fm_mask_free(b->mask);
    fm_program_free(b->prog);
    fm_diagnostics_free(b->diags);
}

static fm_status build(built *b, fm_shape s, int64_t block, int64_t budget, char **msgs,
                       fm_blockmask_info *info) {
    fm_diagnostics_clear(b->diags);
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = block, .block_kv = block, .memory_budget = budget};
    fm_blockmask *m = NULL;
    fm_status st = fm_blockmask_build(b->mask, NULL, s, &o, b->diags, &m);
    if (m && info) fm_blockmask_get_info(m, info);
    fm_blockmask_free(m);
    *msgs = fm_diagnostics_format(b->diags, false);
    return st;
}

static void test_shape_limits(void **state) {
    (void)state;
    built b;
    setup_mask(&b, "mask m = kv <= q || b == h;\n");
    char *msgs;
    const int64_t big = INT64_C(2147483648);
    struct {
        fm_shape s;
        const char *want;
    } cases[] = {
        {{1, 1, big, 8}, "q_len is 2147483648; the limit is 2147483647"},
        {{1, 1, 8, big}, "kv_len is 2147483648; the limit is 2147483647"},
        {{16777217, 1, 8, 8}, "batch is 16777217; the limit is 16777216"},
        {{1, 16777217, 8, 8}, "heads is 16777217; the limit is 16777216"},
        {{1, 1, INT64_MAX, 8}, "the limit is 2147483647"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(build(&b, cases[i].s, 128, 0, &msgs, NULL), FM_ERR_LIMIT);
        if (!strstr(msgs, cases[i].want)) fail_msg("case %zu: %s", i, msgs);
        fm_free(msgs);
    }
    /* Lengths at the limit are accepted when the tiles fit the budget. */
    fm_blockmask_info info;
    assert_int_equal(build(&b, (fm_shape){1, 1, big - 1, big - 1}, big - 1, 0, &msgs, &info), FM_OK);
    assert_int_equal(info.num_q_blocks, 1);
    fm_free(msgs);
    teardown_mask(&b);
}

/* Tile counts that would need absurd memory are refused at once, before
 * any list is allocated, naming the budget. */
static void test_memory_budget(void **state) {
    (void)state;
    built b;
    setup_mask(&b, "mask m = kv <= q;\n");
    char *msgs;
    double t0 = now();
    assert_int_equal(build(&b, (fm_shape){1, 1, 2147483647, 2147483647}, 1, 0, &msgs, NULL),
                     FM_ERR_LIMIT);
    assert_true(now() - t0 < 5.0);
    assert_non_null(strstr(msgs, "memory budget of 1073741824 bytes"));
    assert_non_null(strstr(msgs, "hint: use larger blocks or raise the memory budget"));
    fm_free(msgs);

    /* A configurable budget: find what a build needs, then give it one
     * byte less (refused) and exactly that (accepted). */
    fm_blockmask_info info;
    fm_shape s = {1, 1, 1000, 1000};
    assert_int_equal(build(&b, s, 16, 0, &msgs, &info), FM_OK);
    fm_free(msgs);
    int64_t need = info.bytes;
    assert_true(need > 0);
    assert_int_equal(build(&b, s, 16, need, &msgs, &info), FM_OK);
    assert_true(info.bytes <= need);
    fm_free(msgs);
    assert_int_equal(build(&b, s, 16, need / 2, &msgs, NULL), FM_ERR_LIMIT);
    char want[96];
    snprintf(want, sizeof want, "memory budget of %lld bytes", (long long)(need / 2));
    assert_non_null(strstr(msgs, want));
    fm_free(msgs);
    assert_int_equal(build(&b, s, 16, 64, &msgs, NULL), FM_ERR_LIMIT);
    fm_free(msgs);
    /* Broadcast slices count once: many heads of a mask that ignores h
     * cost no more than one. */
    assert_int_equal(build(&b, (fm_shape){4, 1000, 1000, 1000}, 16, need, &msgs, &info), FM_OK);
    assert_true(info.broadcast_batch && info.broadcast_heads);
    fm_free(msgs);
    teardown_mask(&b);
}

static void test_input_dims_limit(void **state) {
    (void)state;
    built b;
    setup_mask(&b, "input doc[KV_LEN];\nmask m = doc[kv] == doc[q];\n");
    fm_bindings *bind = NULL;
    assert_int_equal(fm_bindings_create(b.mask, &bind), FM_OK);
    int32_t x[4] = {0};
    int64_t huge[1] = {INT64_MAX};
    assert_int_equal(fm_bindings_set_input(bind, "doc", x, 1, huge, FM_COPY, b.diags),
                     FM_ERR_BINDING);
    char *msgs = fm_diagnostics_format(b.diags, false);
    assert_non_null(strstr(msgs, "invalid size"));
    fm_free(msgs);
    int64_t neg[1] = {-1};
    assert_int_equal(fm_bindings_set_input(bind, "doc", x, 1, neg, FM_COPY, b.diags), FM_ERR_BINDING);
    fm_bindings_free(bind);
    teardown_mask(&b);
}

static void test_dense_export_limit(void **state) {
    (void)state;
    built b;
    setup_mask(&b, "mask m = kv <= q;\n");
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = 65536, .block_kv = 65536};
    fm_blockmask *m = NULL;
    assert_int_equal(fm_blockmask_build(b.mask, NULL, (fm_shape){1, 1, 1 << 20, 1 << 20}, &o,
                                        b.diags, &m),
                     FM_OK);
    uint8_t *dense = NULL;
    size_t count = 0;
    assert_int_equal(fm_blockmask_to_dense(m, &dense, &count, b.diags), FM_ERR_LIMIT);
    assert_null(dense);
    fm_blockmask_free(m);
    teardown_mask(&b);
}

/* "Chains of binary operators may be of any length up to the file-size
 * limit": a file of the shortest terms, as long as the limit allows, lowers
 * (about 2.4 million terms, more operations than the fixed lowering limit
 * of 4 Mi would allow: the limit grows with the source) and builds. */
static void test_longest_chain_builds(void **state) {
    (void)state;
    /* Under the sanitizers half the size (the same code paths, below the
     * fixed limit): the whole size takes a minute there. */
    const size_t limit = (size_t)(tu_sanitizer_run() ? 8 : 16) << 20;
    char *src = malloc(limit + 1);
    assert_non_null(src);
    size_t len = (size_t)snprintf(src, limit, "mask m = ");
    int64_t terms = 0;
    while (len + 16 < limit) {
        len += (size_t)snprintf(src + len, limit - len, "kv==%d||", (int)(terms % 10));
        terms++;
    }
    len += (size_t)snprintf(src + len, limit - len, "kv==0;");
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *m = NULL;
    fm_bindings *b = NULL;
    fm_blockmask *bm = NULL;
    double t0 = now();
    assert_int_equal(fm_compile_string("t.mask", src, len, d, &prog), FM_OK);
    fm_status st = fm_mask_select(prog, NULL, d, &m);
    if (st != FM_OK) tu_fail_with(st, d, "selecting the longest chain");
    assert_int_equal(st, FM_OK);
    assert_int_equal(fm_bindings_create(m, &b), FM_OK);
    assert_int_equal(fm_blockmask_build(m, b, (fm_shape){1, 1, 64, 16}, NULL, d, &bm), FM_OK);
    int64_t count = 0;
    assert_int_equal(fm_blockmask_count_true(bm, &count), FM_OK);
    assert_int_equal(count, 64 * 10); /* kv in 0..9 */
    printf("    %lld terms: compiled, lowered and built in %.1f s\n", (long long)terms,
           now() - t0);
    assert_true(terms > (tu_sanitizer_run() ? 1000000 : 2000000));
    fm_blockmask_free(bm);
    fm_bindings_free(b);
    fm_mask_free(m);
    fm_program_free(prog);
    fm_diagnostics_free(d);
    free(src);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declaration_limit),
        cmocka_unit_test(test_declaration_limit_stops_early),
        cmocka_unit_test(test_file_size_limit),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_shape_limits),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_input_dims_limit),
        cmocka_unit_test(test_dense_export_limit),
        cmocka_unit_test(test_longest_chain_builds),
    };
    return TU_RUN(tests, argc, argv);
}
