/* Regression tests for the findings of the fuzz targets (fuzz/, see
 * docs/reliability.md). Each case replays a finding's input through the
 * path that failed, minimized to the part that matters, and checks the
 * outcome the language page asks for. The BlockMask cases are checked
 * against brute force the way fuzz_blockmask checks them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "flexmask.h"

/* ---- BlockMask builds, against brute force ---- */

typedef struct bm_input {
    const char *name;
    int64_t count;       /* rank-1 length (rank 2: rows * cols with dims below) */
    int32_t fill;        /* every value */
    size_t rank;
    int64_t dims[2];
} bm_input;

typedef struct bm_case {
    const char *name;
    const char *source;
    fm_shape shape;
    int64_t block_q, block_kv;
    const char *params[4];   /* "NAME" */
    int64_t values[4];
    bm_input inputs[2];
    fm_status expect;        /* FM_OK or the refusal */
    const char *message;     /* a part of the first diagnostic (refusals) */
} bm_case;

static const bm_case bm_cases[] = {
    /* fuzz_blockmask crash-90f4e40d: signed overflow (UB) in the abstract
     * interpreter's refinement of an index whose value is a huge constant:
     * the index p1 * KV_LEN folds to a constant past int64 and the bounds
     * constraint computed d + 1 from it. The point evaluation must report
     * the overflow instead. */
    {"fuzz_bm_constant_index_overflow",
     "param p1 = 23;\ninput t[BATCH, KV_LEN];\nmask m0 = (min(HEADS, 10) > t[b, (p1 * KV_LEN)]);\n",
     {1, 1, 11, 11}, 23, 63, {"p1"}, {INT64_C(7453926900754291712)},
     {{"t", 11, 0, 2, {1, 11}}}, FM_ERR_SAFETY, "overflows 64 bits"},
    /* The same read with the constant index itself at the int64 limit. */
    {"fuzz_bm_index_at_int64_max",
     "param p;\ninput t[KV_LEN];\nmask m = kv <= q && t[p] > 0;\n",
     {1, 1, 11, 11}, 4, 4, {"p"}, {INT64_MAX},
     {{"t", 11, 1, 1, {11}}}, FM_ERR_SAFETY, "reaches 9223372036854775807"},
    {"fuzz_bm_index_at_int64_min",
     "param p;\ninput t[KV_LEN];\nmask m = kv <= q && t[p] > 0;\n",
     {1, 1, 11, 11}, 4, 4, {"p"}, {INT64_MIN},
     {{"t", 11, 1, 1, {11}}}, FM_ERR_SAFETY, "-9223372036854775808"},
    /* fuzz_blockmask crash-420bcbff: the abstract remainder by a constant
     * divisor negated INT64_MIN (UB) when p1 * 9 overflowed to it; the
     * build must report the overflow. */
    {"fuzz_bm_mod_by_int64_min_overflow",
     "param p1 = 0;\n"
     "mask m0 = ((((p1 * 9)) != 0 ? ((15 - q)) % ((p1 * 9)) : 2) != "
     "(((q + 4) % 6 != (kv + 5) % 8) ? 0 : (-4)));\n",
     {1, 2, 28, 151}, 14, 62, {"p1"}, {INT64_C(-3782448879572936884)}, {{0}},
     FM_ERR_SAFETY, "overflows 64 bits"},
    /* fuzz_blockmask crash-5aeedccc: the same negation with the divisor a
     * param equal to INT64_MIN; a valid mask that must build exactly. */
    {"fuzz_bm_mod_by_int64_min",
     "param p1 = 14;\n"
     "mask m0 = (kv >= q + q);\n"
     "mask m1 = m0 && ((11 <= ((p1) != 0 ? (q) % (p1) : 4)) ? (min(Q_LEN, q) >= (-(-2))) "
     ": !(q / 5 <= kv / 1));\n",
     {1, 2, 293, 32}, 39, 20, {"p1"}, {INT64_MIN}, {{0}}, FM_OK, NULL},
    /* Issue 11, finding 5: a let is lowered once, under the OR of its
     * uses' guards, and is still evaluated (and checked) only where one
     * of its uses is reached. d divides by zero at q = 3. */
    {"issue11_let_only_where_used",
     "let d = 10 / (q - 3);\nmask m = q != 3 && d > 0;\n",
     {1, 1, 8, 8}, 4, 4, {NULL}, {0}, {{0}}, FM_OK, NULL},
    {"issue11_let_first_operand_evaluated",
     "let d = 10 / (q - 3);\nmask m = d > 0 || true;\n",
     {1, 1, 8, 8}, 4, 4, {NULL}, {0}, {{0}}, FM_ERR_SAFETY, "is zero at q=3"},
    {"issue11_let_under_two_guards",
     "let d = 10 / (q - 3);\nmask m = q < 3 ? d > 0 : q > 3 ? d < kv : false;\n",
     {1, 1, 8, 8}, 4, 4, {NULL}, {0}, {{0}}, FM_OK, NULL},
    {"issue11_let_after_a_condition_that_reads_it",
     "let d = 10 / (q - 3);\nmask m = (q > 3 && d > 0) || (q < 3 && d < kv);\n",
     {1, 1, 8, 8}, 4, 4, {NULL}, {0}, {{0}}, FM_OK, NULL},
    {"issue11_let_reached_by_a_later_use",
     "let d = 10 / (q - 3);\nmask m = (q > 3 && d > 0) || (q < 4 && d < kv);\n",
     {1, 1, 8, 8}, 4, 4, {NULL}, {0}, {{0}}, FM_ERR_SAFETY, "is zero at q=3"},
    {"issue11_let_of_a_let",
     "let d = 10 / (q - 3);\nlet e = d + kv;\n"
     "mask m = q == 3 ? kv > 1 : (e > 4 ? e < 9 : kv > 2 && e > 0);\n",
     {1, 1, 8, 8}, 4, 4, {NULL}, {0}, {{0}}, FM_OK, NULL},
    /* test_spec's reference run: the reach guard of lb reads the first
     * operand with lb as 0, so the guards after it were wrong where lb is
     * used there, and the division was lowered under them. lb is true
     * (Q_LEN <= 16), so the spec never divides. */
    {"issue11_condition_after_a_stand_in_read",
     "let lb = q < q + 21;\nmask m = ((Q_LEN > 16) ? false : lb) || q / kv > 0 || lb;\n",
     {1, 1, 1, 9}, 4, 4, {NULL}, {0}, {{0}}, FM_OK, NULL},
    {"issue11_let_read_out_of_bounds_never_used",
     "input t[4];\nlet x = t[q];\nmask m = q < 4 ? x > 0 : kv > 9 ? x < 0 : false;\n",
     {1, 1, 8, 8}, 4, 4, {NULL}, {0}, {{"t", 4, 1, 1, {4}}}, FM_OK, NULL},
    {"issue11_let_read_out_of_bounds_used",
     "input t[4];\nlet x = t[q];\nmask m = q < 4 ? x > 0 : kv > 6 ? x < 0 : false;\n",
     {1, 1, 8, 8}, 4, 4, {NULL}, {0}, {{"t", 4, 1, 1, {4}}}, FM_ERR_SAFETY, "has length 4"},
};

static void check_blockmask_case(const bm_case *c) {
    fm_diagnostics *diags = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_bindings *bind = NULL;
    fm_blockmask *bm = NULL;
    int32_t *arrays[2] = {NULL, NULL};
    assert_int_equal(fm_compile_string("reg.mask", c->source, strlen(c->source), diags, &prog),
                     FM_OK);
    assert_int_equal(fm_mask_select(prog, NULL, diags, &mask), FM_OK);
    assert_int_equal(fm_bindings_create(mask, &bind), FM_OK);
    for (int i = 0; i < 4 && c->params[i]; i++)
        assert_int_equal(fm_bindings_set_param(bind, c->params[i], c->values[i], diags), FM_OK);
    for (int i = 0; i < 2 && c->inputs[i].name; i++) {
        const bm_input *in = &c->inputs[i];
        arrays[i] = malloc((size_t)in->count * sizeof(int32_t));
        assert_non_null(arrays[i]);
        for (int64_t k = 0; k < in->count; k++) arrays[i][k] = in->fill;
        assert_int_equal(fm_bindings_set_input(bind, in->name, arrays[i], in->rank, in->dims,
                                               FM_COPY, diags),
                         FM_OK);
    }
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = c->block_q, .block_kv = c->block_kv};
    fm_status st = fm_blockmask_build(mask, bind, c->shape, &opts, diags, &bm);
    char *text = fm_diagnostics_format(diags, false);
    if (st != c->expect || (c->message && (!text || !strstr(text, c->message))))
        fail_msg("%s: status %s, expected %s; diagnostics:\n%s", c->name, fm_status_string(st),
                 fm_status_string(c->expect), text ? text : "");
    fm_free(text);
    if (st == FM_OK) {
        /* Every tile exactly as brute force classifies it. */
        fm_blockmask_info info;
        assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
        for (int64_t b = 0; b < c->shape.batch; b++)
            for (int64_t h = 0; h < c->shape.heads; h++)
                for (int64_t i = 0; i < info.num_q_blocks; i++) {
                    const int32_t *full, *part;
                    int64_t nf, np;
                    assert_int_equal(fm_blockmask_row(bm, b, h, i, &full, &nf, &part, &np), FM_OK);
                    for (int64_t j = 0; j < info.num_kv_blocks; j++) {
                        int64_t q0 = i * c->block_q, k0 = j * c->block_kv;
                        int64_t q1 = q0 + c->block_q, k1 = k0 + c->block_kv;
                        bool clipped = q1 > c->shape.q_len || k1 > c->shape.kv_len;
                        q1 = q1 > c->shape.q_len ? c->shape.q_len : q1;
                        k1 = k1 > c->shape.kv_len ? c->shape.kv_len : k1;
                        int64_t t = 0;
                        for (int64_t q = q0; q < q1; q++)
                            for (int64_t kv = k0; kv < k1; kv++) {
                                bool v;
                                assert_int_equal(fm_blockmask_eval(bm, b, h, q, kv, &v), FM_OK);
                                t += v;
                            }
                        int want = t == 0 ? 0 : t == (q1 - q0) * (k1 - k0) && !clipped ? 2 : 1;
                        int got = 0;
                        for (int64_t k = 0; k < nf; k++) got = full[k] == j ? 2 : got;
                        for (int64_t k = 0; k < np; k++) got = part[k] == j ? 1 : got;
                        if (got != want)
                            fail_msg("%s: tile (%lld, %lld, %lld, %lld) is %d, expected %d", c->name,
                                     (long long)b, (long long)h, (long long)i, (long long)j, got,
                                     want);
                    }
                }
    }
    fm_blockmask_free(bm);
    for (int i = 0; i < 2; i++) free(arrays[i]);
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_program_free(prog);
    fm_diagnostics_free(diags);
}

static void test_blockmask_findings(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bm_cases / sizeof bm_cases[0]; i++) check_blockmask_case(&bm_cases[i]);
}

/* ---- the front end: fmc print ---- */

/* Compiles src, prints it, and checks that the printed text compiles and
 * prints to itself. */
static void check_print_round_trip(const char *src) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *p1 = NULL, *p2 = NULL;
    assert_int_equal(fm_compile_string("reg.mask", src, strlen(src), d, &p1), FM_OK);
    char *t1 = fm_program_print(p1);
    assert_non_null(t1);
    if (fm_compile_string("printed.mask", t1, strlen(t1), d, &p2) != FM_OK) {
        char *msgs = fm_diagnostics_format(d, false);
        fail_msg("the printed text does not compile:\n%s", msgs ? msgs : "");
    }
    char *t2 = fm_program_print(p2);
    assert_non_null(t2);
    assert_string_equal(t1, t2);
    fm_free(t1);
    fm_free(t2);
    fm_program_free(p1);
    fm_program_free(p2);
    fm_diagnostics_free(d);
}

/* fuzz_frontend crash-a793c326, -4c2f1462, -4c47aec1: a run of unary
 * operators printed as -(-(-x)) doubled its nesting depth, so a valid
 * file with 600 of them printed as one past the 1,000-level limit. */
static void test_print_long_unary_runs(void **state) {
    (void)state;
    char src[4096];
    int n = snprintf(src, sizeof src, "mask m = q < BATCH - 9 - 922 - 47 %% ");
    for (int i = 0; i < 990; i++) n += snprintf(src + n, sizeof src - (size_t)n, "-");
    snprintf(src + n, sizeof src - (size_t)n, "808 - -1;\n");
    check_print_round_trip(src);
    n = snprintf(src, sizeof src, "mask m = ");
    for (int i = 0; i < 999; i++) n += snprintf(src + n, sizeof src - (size_t)n, "!");
    snprintf(src + n, sizeof src - (size_t)n, "(q < kv);\n");
    check_print_round_trip(src);
    n = snprintf(src, sizeof src, "mask m = q < ");
    for (int i = 0; i < 499; i++) n += snprintf(src + n, sizeof src - (size_t)n, "-(");
    n += snprintf(src + n, sizeof src - (size_t)n, "-h");
    for (int i = 0; i < 499; i++) n += snprintf(src + n, sizeof src - (size_t)n, ")");
    snprintf(src + n, sizeof src - (size_t)n, ";\n");
    check_print_round_trip(src);
}

/* A param dimension of 0 made the BlockMask's copy of an empty input
 * count it as one element and read 4 bytes past a 1-byte buffer (ASan);
 * a huge declared dimension overflowed the same product (UBSan), before
 * the shape was even compared with the bound array. */
static void test_empty_and_huge_input_dims(void **state) {
    (void)state;
    const char *srcs[2] = {
        "param n = 0;\ninput e[n];\nmask m = kv <= q && (n > 0 ? e[0] > 0 : true);\n",
        "input e[9223372036854775807, 9223372036854775807];\nmask m = e[q, kv] > 0;\n"};
    for (int i = 0; i < 2; i++) {
        fm_diagnostics *d = fm_diagnostics_create();
        fm_program *prog = NULL;
        fm_mask *m = NULL;
        fm_bindings *b = NULL;
        fm_blockmask *bm = NULL;
        assert_int_equal(fm_compile_string("t.mask", srcs[i], strlen(srcs[i]), d, &prog), FM_OK);
        assert_int_equal(fm_mask_select(prog, NULL, d, &m), FM_OK);
        assert_int_equal(fm_bindings_create(m, &b), FM_OK);
        int32_t one = 1;
        int64_t dims0[1] = {0}, dims2[2] = {1, 1};
        fm_status st = i == 0 ? fm_bindings_set_input(b, "e", &one, 1, dims0, FM_COPY, d)
                              : fm_bindings_set_input(b, "e", &one, 2, dims2, FM_COPY, d);
        assert_int_equal(st, FM_OK);
        st = fm_blockmask_build(m, b, (fm_shape){1, 1, 8, 8}, NULL, d, &bm);
        if (i == 0) {
            assert_int_equal(st, FM_OK);
            fm_blockmask_info info;
            assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
            assert_int_equal(info.true_positions < 0 ? 36 : info.true_positions, 36);
        } else {
            assert_int_not_equal(st, FM_OK); /* the bound [1, 1] is not the declared shape */
            assert_null(bm);
        }
        fm_blockmask_free(bm);
        fm_bindings_free(b);
        fm_mask_free(m);
        fm_program_free(prog);
        fm_diagnostics_free(d);
    }
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blockmask_findings),
        cmocka_unit_test(test_print_long_unary_runs),
        cmocka_unit_test(test_empty_and_huge_input_dims),
    };
    return TU_RUN(tests, argc, argv);
}
