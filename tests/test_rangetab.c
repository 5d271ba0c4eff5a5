/* The input range tables (compiler/rangetab.c) against brute force: every
 * answer the abstract interpreter gets about an input array is a min and max
 * over part of a row, so a wrong table would make the BlockMask build claim
 * tiles full or empty that are not. Shapes cover both table kinds (one-row
 * arrays with a sparse table, many-row arrays with superblocks), ranges
 * shorter and longer than a block and than two superblocks, and rows whose
 * length is not a multiple of either. Every off-by-one in the query's block
 * and superblock bounds that changes an answer, tried when this was
 * written, failed it. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "compiler/absint.h"
#include "compiler/ir.h"
#include "dsl/ast.h"

typedef struct compiled {
    fmd_program *ast;
    fmc_program *p;
} compiled;

static compiled compile(const char *src) {
    fmd_diags d;
    fmd_diags_init(&d);
    compiled c = {0};
    c.ast = fmd_parse(fmd_source_new("t.mask", src, strlen(src)), &d);
    if (c.ast && fmd_check(c.ast, &d) && d.errors == 0) c.p = fmc_lower(c.ast, NULL, &d);
    if (!c.p) {
        fmd_diags_render(&d, stderr, false);
        fail_msg("cannot compile: %s", src);
    }
    fmd_diags_clear(&d);
    return c;
}

/* An input array of either width, as the table sees it. */
typedef struct array {
    const int32_t *i32;
    const uint8_t *u8;
    int64_t rows, len;
} array;

static int32_t at(const array *x, int64_t row, int64_t i) {
    return x->i32 ? x->i32[row * x->len + i] : x->u8[row * x->len + i];
}

/* Builds the table of x for c's one input and checks every answer against
 * brute force: the global extremes, `queries` random ranges (half at most
 * `span` long, half reaching far), then each whole row, the longest range,
 * with its step-monotone flag. */
static void check_table(tu_rng *r, const compiled *c, const array *x, int queries, int64_t span) {
    int64_t rows = x->rows, len = x->len;
    const int32_t *inputs[1] = {x->i32};
    const uint8_t *bytes[1] = {x->u8};
    int64_t dims[1][FMD_MAX_RANK] = {{0}};
    if (rows == 1) dims[0][0] = len;
    else dims[0][0] = rows, dims[0][1] = len;
    /* A byte input gets no int32 table at all: a reader that ignored the
     * width would crash. */
    fmc_env env = {.batch = 1, .heads = 1, .q_len = rows, .kv_len = len,
                   .inputs = x->i32 ? inputs : NULL, .bytes = x->u8 ? bytes : NULL,
                   .input_dims = (const int64_t(*)[FMD_MAX_RANK])dims};
    fmc_rtab *t = fmc_rtab_build(c->p, &env);
    assert_non_null(t);
    int32_t gmin = INT32_MAX, gmax = INT32_MIN;
    for (int64_t row = 0; row < rows; row++)
        for (int64_t i = 0; i < len; i++) {
            gmin = at(x, row, i) < gmin ? at(x, row, i) : gmin;
            gmax = at(x, row, i) > gmax ? at(x, row, i) : gmax;
        }
    int32_t mn, mx;
    fmc_rtab_global(t, 0, &mn, &mx);
    assert_int_equal(mn, gmin);
    assert_int_equal(mx, gmax);
    for (int k = 0; k < queries + rows; k++) {
        bool whole = k >= queries;
        int64_t row = whole ? k - queries : tu_rng_range(r, 0, rows - 1);
        int64_t lo = whole ? 0 : tu_rng_range(r, 0, len - 1);
        int64_t hi = whole    ? len - 1
                     : k % 2 ? tu_rng_range(r, lo, len - 1)
                             : tu_rng_range(r, lo, lo + span < len ? lo + span : len - 1);
        int32_t a = at(x, row, lo), b = a;
        for (int64_t i = lo; i <= hi; i++) {
            a = at(x, row, i) < a ? at(x, row, i) : a;
            b = at(x, row, i) > b ? at(x, row, i) : b;
        }
        fmc_rtab_query(t, 0, row, lo, hi, &mn, &mx);
        if (mn != a || mx != b)
            fail_msg("%s, rows %lld len %lld: row %lld [%lld, %lld]: got [%d, %d], want [%d, %d]",
                     x->i32 ? "int32" : "bytes", (long long)rows, (long long)len, (long long)row,
                     (long long)lo, (long long)hi, mn, mx, a, b);
        if (!whole) continue;
        bool up = true, down = true;
        for (int64_t i = 1; i < len; i++) {
            int64_t d = (int64_t)at(x, row, i) - at(x, row, i - 1);
            up &= d == 0 || d == 1;
            down &= d == 0 || d == -1;
        }
        assert_int_equal(fmc_rtab_row_monotone(t, 0, row), up || down);
    }
    fmc_rtab_free(t);
}

static compiled compile_for(int64_t rows) {
    return compile(rows == 1 ? "input a[KV_LEN]; mask m = a[kv] > 0;"
                             : "input a[Q_LEN, KV_LEN]; mask m = a[q, kv] > 0;");
}

/* int32 inputs of rows x len: small values (ties everywhere), wide ones,
 * or rare spikes in zeros (so a range's extremes sit in one or two places,
 * and a table that skips a block or superblock is caught), with the
 * extremes of int32 somewhere. */
static void check_shape(tu_rng *r, int64_t rows, int64_t len, int kind, int queries) {
    compiled c = compile_for(rows);
    int32_t *x = malloc((size_t)(rows * len) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < rows * len; i++)
        x[i] = kind == 0   ? (int32_t)tu_rng_range(r, -3, 3)
               : kind == 1 ? (int32_t)tu_rng_range(r, -1000000, 1000000)
               : tu_rng_range(r, 0, 499) ? 0
                                          : (int32_t)tu_rng_range(r, -1000000, 1000000);
    x[tu_rng_range(r, 0, rows * len - 1)] = INT32_MIN;
    x[tu_rng_range(r, 0, rows * len - 1)] = INT32_MAX;
    array a = {.i32 = x, .rows = rows, .len = len};
    check_table(r, &c, &a, queries, 70);
    free(x);
    fmc_program_free(c.p);
    fmd_program_free(c.ast);
}

static void test_one_row_matches_brute_force(void **state) {
    (void)state;
    tu_rng r = {11};
    const int64_t lens[] = {1, 2, 31, 32, 33, 63, 64, 65, 1000, 1024, 2047, 5000, 70001};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int kind = 0; kind < 3; kind++) check_shape(&r, 1, lens[i], kind, tu_cases(1000));
}

static void test_many_rows_match_brute_force(void **state) {
    (void)state;
    tu_rng r = {12};
    const int64_t shapes[][2] = {{2, 1},    {3, 33},   {5, 64},   {7, 1023}, {4, 1024},
                                 {3, 2048}, {2, 2049}, {3, 3000}, {2, 4095}, {2, 70001}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int kind = 0; kind < 3; kind++)
            check_shape(&r, shapes[i][0], shapes[i][1], kind, tu_cases(1000));
}

/* Byte inputs (dense imports: 128-element blocks): 0/1 masks with long
 * runs, the whole byte range, and rare spikes. */
static void check_bytes(tu_rng *r, int64_t rows, int64_t len, int kind, int queries) {
    compiled c = compile_for(rows);
    c.p->inputs[0].elem_bytes = 1;
    uint8_t *x = malloc((size_t)(rows * len));
    assert_non_null(x);
    uint8_t run = 0;
    for (int64_t i = 0; i < rows * len; i++) {
        if (kind == 0 && tu_rng_range(r, 0, 199) == 0) run ^= 1;
        x[i] = kind == 0   ? run
               : kind == 1 ? (uint8_t)tu_rng_range(r, 0, 255)
               : tu_rng_range(r, 0, 999) ? 7
                                          : (uint8_t)tu_rng_range(r, 0, 255);
    }
    array a = {.u8 = x, .rows = rows, .len = len};
    check_table(r, &c, &a, queries, 300);
    free(x);
    fmc_program_free(c.p);
    fmd_program_free(c.ast);
}

static void test_byte_inputs_match_brute_force(void **state) {
    (void)state;
    tu_rng r = {13};
    const int64_t lens[] = {1, 2, 127, 128, 129, 255, 256, 257, 4095, 4096, 4097, 8191, 70001};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int kind = 0; kind < 3; kind++) check_bytes(&r, 1, lens[i], kind, tu_cases(1000));
    const int64_t shapes[][2] = {{2, 1},    {3, 129},  {5, 256},  {7, 4095}, {4, 4096},
                                 {3, 8192}, {2, 8193}, {3, 9000}, {2, 16383}, {2, 70001}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int kind = 0; kind < 3; kind++)
            check_bytes(&r, shapes[i][0], shapes[i][1], kind, tu_cases(1000));
}

static void test_monotone_rows(void **state) {
    (void)state;
    compiled c = compile("input a[Q_LEN, KV_LEN]; mask m = a[q, kv] > 0;");
    /* Row 0 steps up by 0 or 1, row 1 down by 0 or 1, row 2 jumps by 2. */
    int32_t x[3][5] = {{0, 1, 1, 2, 3}, {4, 3, 3, 2, 2}, {0, 2, 3, 4, 5}};
    const int32_t *inputs[1] = {&x[0][0]};
    int64_t dims[1][FMD_MAX_RANK] = {{3, 5}};
    fmc_env env = {.batch = 1, .heads = 1, .q_len = 3, .kv_len = 5, .inputs = inputs,
                   .input_dims = (const int64_t(*)[FMD_MAX_RANK])dims};
    fmc_rtab *t = fmc_rtab_build(c.p, &env);
    assert_non_null(t);
    assert_true(fmc_rtab_row_monotone(t, 0, 0));
    assert_true(fmc_rtab_row_monotone(t, 0, 1));
    assert_false(fmc_rtab_row_monotone(t, 0, 2));
    fmc_rtab_free(t);
    fmc_program_free(c.p);
    fmd_program_free(c.ast);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_row_matches_brute_force),
        cmocka_unit_test(test_many_rows_match_brute_force),
        cmocka_unit_test(test_monotone_rows),
        cmocka_unit_test(test_byte_inputs_match_brute_force),
    };
    return TU_RUN(tests, argc, argv);
}
