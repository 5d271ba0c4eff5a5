/* The scenario helpers: token-tree tables and batched-prefill arrays,
 * checked against brute-force definitions, alone and through the example
 * masks they feed. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexmask.h"
#include "testutil.h"

/* Is a an ancestor of t, or t itself, by walking parents. */
static bool brute_ancestor(const int32_t *parent, int32_t a, int32_t t) {
    for (int32_t x = t; x >= 0; x = parent[x])
        if (x == a) return true;
    return false;
}

static int32_t brute_depth(const int32_t *parent, int32_t t) {
    int32_t d = 0;
    for (int32_t x = parent[t]; x >= 0; x = parent[x])
        d++;
    return d;
}

static void check_tables(const int32_t *parent, int32_t n, const int32_t *enter,
                         const int32_t *leave, const int32_t *depth) {
    for (int32_t t = 0; t < n; t++) {
        assert_int_equal(depth[t], brute_depth(parent, t));
        assert_true(enter[t] >= 0 && enter[t] <= leave[t] && leave[t] < n);
        for (int32_t a = 0; a < n; a++) {
            bool by_tables = enter[a] <= enter[t] && leave[t] <= leave[a];
            if (by_tables != brute_ancestor(parent, a, t)) {
                fprintf(stderr, "token %d, candidate ancestor %d: tables say %d\n", t, a,
                        by_tables);
                fail();
            }
        }
    }
}

static void test_tree_six_tokens(void **state) {
    /* "You -> are -> a" and "You -> are -> {not, a}" */
    int32_t parent[6] = {-1, 0, 1, 0, 3, 3}, enter[6], leave[6], depth[6];
    assert_int_equal(fm_tree_tables(parent, 6, enter, leave, depth, NULL), FM_OK);
    int32_t want_depth[6] = {0, 1, 2, 1, 2, 2};
    assert_memory_equal(depth, want_depth, sizeof want_depth);
    /* Preorder in index order: 0, 1, 2, 3, 4, 5. */
    int32_t want_enter[6] = {0, 1, 2, 3, 4, 5}, want_leave[6] = {5, 2, 2, 5, 4, 5};
    assert_memory_equal(enter, want_enter, sizeof want_enter);
    assert_memory_equal(leave, want_leave, sizeof want_leave);
    check_tables(parent, 6, enter, leave, depth);
    /* depth may be NULL. */
    assert_int_equal(fm_tree_tables(parent, 6, enter, leave, NULL, NULL), FM_OK);
    /* n = 0 is an empty forest. */
    assert_int_equal(fm_tree_tables(NULL, 0, NULL, NULL, NULL, NULL), FM_OK);
}

/* A random forest whose tokens are numbered in a random order (so parents
 * may have larger indices than their children). */
static void random_forest(tu_rng *rng, int32_t n, int32_t *parent) {
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    for (int32_t i = 0; i < n; i++)
        perm[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)tu_rng_range(rng, 0, i);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int64_t root_pct = tu_rng_range(rng, 1, 30);
    for (int32_t k = 0; k < n; k++) {
        bool root = k == 0 || tu_rng_range(rng, 1, 100) <= root_pct;
        /* Chains sometimes: the previous token as parent. */
        int32_t pk = tu_rng_range(rng, 0, 3) == 0
                         ? k - 1
                         : (int32_t)tu_rng_range(rng, 0, k - 1 < 0 ? 0 : k - 1);
        parent[perm[k]] = root ? -1 : perm[pk];
    }
    free(perm);
}

static void test_tree_random_forests(void **state) {
    tu_rng rng = {42};
    for (int iter = 0; iter < tu_cases(200); iter++) {
        int32_t n = (int32_t)tu_rng_range(&rng, 1, 60);
        int32_t parent[60], enter[60], leave[60], depth[60];
        random_forest(&rng, n, parent);
        assert_int_equal(fm_tree_tables(parent, n, enter, leave, depth, NULL), FM_OK);
        check_tables(parent, n, enter, leave, depth);
    }
}

static void test_tree_deep_chain(void **state) {
    /* A million-token chain: the walk must not recurse. */
    int32_t n = 1000000;
    int32_t *parent = malloc((size_t)n * 4), *enter = malloc((size_t)n * 4),
            *leave = malloc((size_t)n * 4), *depth = malloc((size_t)n * 4);
    for (int32_t i = 0; i < n; i++)
        parent[i] = i - 1;
    assert_int_equal(fm_tree_tables(parent, n, enter, leave, depth, NULL), FM_OK);
    for (int32_t i = 0; i < n; i += 9973) {
        assert_int_equal(depth[i], i);
        assert_int_equal(enter[i], i);
        assert_int_equal(leave[i], n - 1);
    }
    free(parent);
    free(enter);
    free(leave);
    free(depth);
}

static void expect_tree_error(const int32_t *parent, int32_t n, const char *mention) {
    int32_t enter[16], leave[16], depth[16];
    for (int i = 0; i < 16; i++)
        enter[i] = leave[i] = depth[i] = 77;
    fm_diagnostics *d = fm_diagnostics_create();
    assert_int_equal(fm_tree_tables(parent, n, enter, leave, depth, d), FM_ERR_INVALID_ARGUMENT);
    assert_true(tu_diags_mention(d, mention));
    for (int i = 0; i < 16; i++)
        assert_true(enter[i] == 77 && leave[i] == 77 && depth[i] == 77);
    fm_diagnostics_free(d);
}

static void test_tree_errors(void **state) {
    int32_t out_of_range[4] = {-1, 0, 4, 1};
    expect_tree_error(out_of_range, 4, "token 2 has parent 4");
    int32_t negative[3] = {-1, -2, 0};
    expect_tree_error(negative, 3, "token 1 has parent -2");
    int32_t self[3] = {-1, 1, 0};
    expect_tree_error(self, 3, "token 1 is its own parent");
    /* 0 is a root; 1 -> 2 -> 3 -> 1 is a cycle that 4 hangs from. */
    int32_t cycle[5] = {-1, 3, 1, 2, 2};
    expect_tree_error(cycle, 5, "cycle");
    expect_tree_error(cycle, 5, "2 -> 1 -> 3 -> 2");
    /* No root at all. */
    int32_t ring[2] = {1, 0};
    expect_tree_error(ring, 2, "is on a cycle of parents");
    fm_diagnostics *d = fm_diagnostics_create();
    assert_int_equal(fm_tree_tables(ring, -1, NULL, NULL, NULL, d), FM_ERR_INVALID_ARGUMENT);
    fm_diagnostics_free(d);
}

/* ---- batched prefill ---- */

static void brute_prefill_check(const int32_t *qo, const int32_t *kv, int n, const int32_t *q_req,
                                const int32_t *q_pos, const int32_t *kv_req,
                                const int32_t *kv_pos) {
    /* Query i of request r at index j sees key k of request r' exactly when
     * r' == r and k's index in r is <= kv_len_r - qo_len_r + j. */
    for (int r = 0; r < n; r++) {
        int qo_len = qo[r + 1] - qo[r], kv_len = kv[r + 1] - kv[r];
        for (int j = 0; j < qo_len; j++) {
            int qi = qo[r] + j;
            for (int r2 = 0; r2 < n; r2++) {
                for (int k = 0; k < kv[r2 + 1] - kv[r2]; k++) {
                    int ki = kv[r2] + k;
                    bool want = r2 == r && k <= kv_len - qo_len + j;
                    bool got = q_req[qi] == kv_req[ki] && kv_pos[ki] <= q_pos[qi];
                    assert_int_equal(want, got);
                }
            }
        }
    }
}

static void test_prefill_example(void **state) {
    /* qo_len = [3, 5, 1], kv_len = [10, 5, 7] */
    int32_t qo[4] = {0, 3, 8, 9}, kv[4] = {0, 10, 15, 22};
    int32_t q_req[9], q_pos[9], kv_req[22], kv_pos[22];
    assert_int_equal(
        fm_batched_prefill_arrays(qo, kv, 3, 9, 22, q_req, q_pos, kv_req, kv_pos, NULL), FM_OK);
    int32_t want_q_req[9] = {0, 0, 0, 1, 1, 1, 1, 1, 2};
    int32_t want_q_pos[9] = {7, 8, 9, 0, 1, 2, 3, 4, 6};
    assert_memory_equal(q_req, want_q_req, sizeof want_q_req);
    assert_memory_equal(q_pos, want_q_pos, sizeof want_q_pos);
    for (int k = 0; k < 22; k++) {
        int r = k < 10 ? 0 : k < 15 ? 1 : 2;
        assert_int_equal(kv_req[k], r);
        assert_int_equal(kv_pos[k], k - kv[r]);
    }
    brute_prefill_check(qo, kv, 3, q_req, q_pos, kv_req, kv_pos);
}

static void test_prefill_random(void **state) {
    tu_rng rng = {7};
    for (int iter = 0; iter < tu_cases(300); iter++) {
        int n = (int)tu_rng_range(&rng, 0, 8);
        int32_t qo[9] = {0}, kv[9] = {0};
        for (int r = 0; r < n; r++) {
            int kvl = (int)tu_rng_range(&rng, 0, 20);
            int qol = (int)tu_rng_range(&rng, 0, kvl);
            qo[r + 1] = qo[r] + qol;
            kv[r + 1] = kv[r] + kvl;
        }
        int32_t q_req[160], q_pos[160], kv_req[160], kv_pos[160];
        assert_int_equal(
            fm_batched_prefill_arrays(qo, kv, n, qo[n], kv[n], q_req, q_pos, kv_req, kv_pos, NULL),
            FM_OK);
        brute_prefill_check(qo, kv, n, q_req, q_pos, kv_req, kv_pos);
    }
}

static void expect_prefill_error(const int32_t *qo, const int32_t *kv, int n, int64_t q_len,
                                 int64_t kv_len, const char *mention) {
    int32_t a[64], b[64], c[64], d[64];
    for (int i = 0; i < 64; i++)
        a[i] = b[i] = c[i] = d[i] = -5;
    fm_diagnostics *diags = fm_diagnostics_create();
    assert_int_equal(fm_batched_prefill_arrays(qo, kv, n, q_len, kv_len, a, b, c, d, diags),
                     FM_ERR_INVALID_ARGUMENT);
    assert_true(tu_diags_mention(diags, mention));
    for (int i = 0; i < 64; i++)
        assert_true(a[i] == -5 && b[i] == -5 && c[i] == -5 && d[i] == -5);
    fm_diagnostics_free(diags);
}

static void test_prefill_errors(void **state) {
    int32_t ok_qo[4] = {0, 3, 8, 9}, ok_kv[4] = {0, 10, 15, 22};
    int32_t start[4] = {1, 3, 8, 9};
    expect_prefill_error(start, ok_kv, 3, 9, 22, "qo_indptr[0] is 1");
    int32_t decreasing[4] = {0, 10, 9, 22};
    expect_prefill_error(ok_qo, decreasing, 3, 9, 22, "kv_indptr decreases at request 1");
    int32_t too_many[4] = {0, 3, 9, 10}; /* request 1 has 6 queries, 5 keys */
    expect_prefill_error(too_many, ok_kv, 3, 10, 22, "request 1 has 6 queries but only 5");
    expect_prefill_error(ok_qo, ok_kv, 3, 10, 22, "qo_indptr ends at 9");
    expect_prefill_error(ok_qo, ok_kv, 3, 9, 21, "kv_indptr ends at 22");
    expect_prefill_error(ok_qo, ok_kv, -1, 9, 22, "requests");
    fm_diagnostics *d = fm_diagnostics_create();
    assert_int_equal(fm_batched_prefill_arrays(NULL, ok_kv, 3, 9, 22, NULL, NULL, NULL, NULL, d),
                     FM_ERR_INVALID_ARGUMENT);
    fm_diagnostics_free(d);
}

/* ---- through the example masks ---- */

static fm_mask *load_mask(const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/examples/masks/%s", FM_SOURCE_DIR, file);
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *p = NULL;
    fm_mask *m = NULL;
    fm_status st = fm_compile_file(path, d, &p);
    if (st == FM_OK) st = fm_mask_select(p, NULL, d, &m);
    if (st != FM_OK) {
        char *text = fm_diagnostics_format(d, false);
        fprintf(stderr, "%s: %s\n%s", path, fm_status_string(st), text ? text : "");
        fm_free(text);
    }
    assert_int_equal(st, FM_OK);
    fm_program_free(p);
    fm_diagnostics_free(d);
    return m;
}

static fm_blockmask *build_or_fail(fm_mask *m, fm_bindings *b, fm_shape s, int64_t block) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = block, .block_kv = block};
    fm_blockmask *bm = NULL;
    fm_status st = fm_blockmask_build(m, b, s, &o, d, &bm);
    if (st != FM_OK) {
        char *text = fm_diagnostics_format(d, false);
        fprintf(stderr, "build: %s\n%s", fm_status_string(st), text ? text : "");
        fm_free(text);
    }
    assert_int_equal(st, FM_OK);
    fm_diagnostics_free(d);
    return bm;
}

static void test_tree_mask_end_to_end(void **state) {
    fm_mask *m = load_mask("tree.mask");
    tu_rng rng = {99};
    for (int iter = 0; iter < tu_cases(20); iter++) {
        int32_t n = (int32_t)tu_rng_range(&rng, 1, 40);
        int64_t prefix = tu_rng_range(&rng, 0, 9);
        int32_t parent[40], enter[40], leave[40], depth[40];
        random_forest(&rng, n, parent);
        assert_int_equal(fm_tree_tables(parent, n, enter, leave, depth, NULL), FM_OK);
        fm_bindings *b = NULL;
        assert_int_equal(fm_bindings_create(m, &b), FM_OK);
        int64_t dim = n;
        assert_int_equal(fm_bindings_set_param(b, "prefix", prefix, NULL), FM_OK);
        assert_int_equal(fm_bindings_set_input(b, "enter", enter, 1, &dim, FM_COPY, NULL), FM_OK);
        assert_int_equal(fm_bindings_set_input(b, "leave", leave, 1, &dim, FM_COPY, NULL), FM_OK);
        fm_shape s = {1, 1, n, prefix + n};
        fm_blockmask *bm = build_or_fail(m, b, s, tu_rng_range(&rng, 1, 8));
        for (int32_t q = 0; q < n; q++) {
            for (int64_t kv = 0; kv < prefix + n; kv++) {
                bool want = kv < prefix || brute_ancestor(parent, (int32_t)(kv - prefix), q), got;
                assert_int_equal(fm_blockmask_eval(bm, 0, 0, q, kv, &got), FM_OK);
                assert_int_equal(want, got);
            }
        }
        /* Classification agrees with the points: no full tile holds a false
         * position and no empty one a true one. */
        fm_blockmask_info info;
        assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
        int64_t truths = 0;
        for (int32_t q = 0; q < n; q++)
            for (int64_t kv = 0; kv < prefix + n; kv++)
                truths += kv < prefix || brute_ancestor(parent, (int32_t)(kv - prefix), q);
        /* -1 means the build did not count them (allowed by the info). */
        if (info.true_positions >= 0) assert_int_equal(info.true_positions, truths);
        fm_blockmask_free(bm);
        fm_bindings_free(b);
    }
    fm_mask_free(m);
}

static void test_prefill_mask_end_to_end(void **state) {
    fm_mask *m = load_mask("batched_prefill.mask");
    tu_rng rng = {5};
    for (int iter = 0; iter < tu_cases(20); iter++) {
        int n = (int)tu_rng_range(&rng, 1, 5);
        int32_t qo[6] = {0}, kv[6] = {0};
        if (iter == 0) {
            n = 3;
            int32_t q0[4] = {0, 3, 8, 9}, k0[4] = {0, 10, 15, 22};
            memcpy(qo, q0, sizeof q0);
            memcpy(kv, k0, sizeof k0);
        } else {
            for (int r = 0; r < n; r++) {
                int kvl = (int)tu_rng_range(&rng, 1, 24);
                int qol = (int)tu_rng_range(&rng, 1, kvl);
                qo[r + 1] = qo[r] + qol;
                kv[r + 1] = kv[r] + kvl;
            }
        }
        int64_t ql = qo[n], kl = kv[n];
        int32_t *a = malloc((size_t)ql * 4), *bq = malloc((size_t)ql * 4),
                *c = malloc((size_t)kl * 4), *d = malloc((size_t)kl * 4);
        assert_int_equal(fm_batched_prefill_arrays(qo, kv, n, ql, kl, a, bq, c, d, NULL), FM_OK);
        fm_bindings *b = NULL;
        assert_int_equal(fm_bindings_create(m, &b), FM_OK);
        assert_int_equal(fm_bindings_set_input(b, "q_req", a, 1, &ql, FM_COPY, NULL), FM_OK);
        assert_int_equal(fm_bindings_set_input(b, "q_pos", bq, 1, &ql, FM_COPY, NULL), FM_OK);
        assert_int_equal(fm_bindings_set_input(b, "kv_req", c, 1, &kl, FM_COPY, NULL), FM_OK);
        assert_int_equal(fm_bindings_set_input(b, "kv_pos", d, 1, &kl, FM_COPY, NULL), FM_OK);
        fm_shape s = {1, 1, ql, kl};
        fm_blockmask *bm = build_or_fail(m, b, s, tu_rng_range(&rng, 1, 8));
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < qo[r + 1] - qo[r]; j++) {
                for (int64_t k = 0; k < kl; k++) {
                    bool same = k >= kv[r] && k < kv[r + 1];
                    bool want = same && k - kv[r] <= (kv[r + 1] - kv[r]) - (qo[r + 1] - qo[r]) + j;
                    bool got;
                    assert_int_equal(fm_blockmask_eval(bm, 0, 0, qo[r] + j, k, &got), FM_OK);
                    assert_int_equal(want, got);
                }
            }
        }
        fm_blockmask_free(bm);
        fm_bindings_free(b);
        free(a);
        free(bq);
        free(c);
        free(d);
    }
    fm_mask_free(m);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_six_tokens),         cmocka_unit_test(test_tree_random_forests),
        cmocka_unit_test(test_tree_deep_chain),         cmocka_unit_test(test_tree_errors),
        cmocka_unit_test(test_prefill_example),         cmocka_unit_test(test_prefill_random),
        cmocka_unit_test(test_prefill_errors),          cmocka_unit_test(test_tree_mask_end_to_end),
        cmocka_unit_test(test_prefill_mask_end_to_end),
    };
    return TU_RUN(tests, argc, argv);
}
