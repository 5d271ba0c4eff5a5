/* Lowering, the interpreters and the safety messages.
 *
 * Lowering: sharing (CSE) and where it must not happen (across guards),
 * canonical comparisons, lets inlined, params and inputs given slots only
 * when reached, b / h reads. Interpreters: floor division and remainder by
 * the spec's table, overflow, short-circuit guards (the accepted/rejected
 * pairs), the row evaluator against the point evaluator. Messages: the
 * spec's wording, with file:line:col. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "compiler/blockmask.h"
#include "compiler/eval.h"
#include "compiler/ir.h"
#include "dsl/ast.h"

typedef struct prog {
    fmd_program *ast;
    fmc_program *p;
} prog;

static prog compile_named(const char *file, const char *src, const char *mask) {
    fmd_diags d;
    fmd_diags_init(&d);
    prog r = {0};
    r.ast = fmd_parse(fmd_source_new(file, src, strlen(src)), &d);
    if (r.ast && fmd_check(r.ast, &d) && d.errors == 0) r.p = fmc_lower(r.ast, mask, &d);
    if (!r.p) {
        fmd_diags_render(&d, stderr, false);
        fail_msg("cannot compile: %s", src);
    }
    fmd_diags_clear(&d);
    return r;
}

static prog compile(const char *src) {
    return compile_named("t.mask", src, NULL);
}

static void prog_free(prog *p) {
    fmc_program_free(p->p);
    fmd_program_free(p->ast);
}

static int count_op(const fmc_program *p, fmc_op op) {
    int n = 0;
    for (size_t i = 0; i < p->count; i++) n += p->insns[i].op == op;
    return n;
}

static const fmc_insn *find_op(const fmc_program *p, fmc_op op) {
    for (size_t i = 0; i < p->count; i++)
        if (p->insns[i].op == op) return &p->insns[i];
    return NULL;
}

static fmc_env shape(int64_t B, int64_t H, int64_t Q, int64_t KV, const int64_t *params) {
    fmc_env e = {B, H, Q, KV, params, NULL, NULL, NULL};
    return e;
}

/* ---- lowering ---------------------------------------------------------------- */

static void test_lower_guards_and_canon(void **state) {
    (void)state;
    prog c = compile("mask m = kv <= q && q - kv < 256;");
    const fmc_program *p = c.p;
    assert_int_equal(p->insns[p->result].op, FMC_OP_AND);
    const fmc_insn *sub = find_op(p, FMC_OP_SUB);
    assert_non_null(sub);
    /* q - kv is evaluated only where kv <= q holds. */
    assert_true(sub->guard >= 0);
    assert_int_equal(p->insns[sub->guard].op, FMC_OP_LE);
    assert_false(p->reads_batch || p->reads_heads);
    prog_free(&c);

    /* > and >= become < and <= with swapped arguments. */
    c = compile("mask m = q > kv || q >= 3;");
    assert_int_equal(count_op(c.p, FMC_OP_LT), 1);
    assert_int_equal(count_op(c.p, FMC_OP_LE), 1);
    const fmc_insn *lt = find_op(c.p, FMC_OP_LT);
    assert_int_equal(c.p->insns[lt->args[0]].op, FMC_OP_VAR);
    assert_int_equal(c.p->insns[lt->args[0]].imm, FMD_VAR_KV);
    prog_free(&c);
}

static void test_lower_cse(void **state) {
    (void)state;
    /* One subtraction for both uses, lets inlined. */
    prog c = compile("let d = q - kv; mask m = d * d > 4 || d < -3;");
    assert_int_equal(count_op(c.p, FMC_OP_SUB), 1);
    assert_int_equal(count_op(c.p, FMC_OP_MUL), 1);
    prog_free(&c);
    /* A division shared across a guard that does not imply the first
     * guard must not be reused: the second one is evaluated where kv == 0. */
    c = compile("mask m = (kv != 0 && q / kv > 1) || q / kv < 0;");
    assert_int_equal(count_op(c.p, FMC_OP_DIV), 2);
    prog_free(&c);
    /* Under a stronger guard the unguarded one is reused. */
    c = compile("mask m = q / 3 > 1 && (kv < 5 || q / 3 < kv);");
    assert_int_equal(count_op(c.p, FMC_OP_DIV), 1);
    prog_free(&c);
    /* Commutative operands are shared in either order. */
    c = compile("mask m = min(q, kv) + max(kv, q) == max(q, kv) + min(kv, q);");
    assert_int_equal(count_op(c.p, FMC_OP_MIN), 1);
    assert_int_equal(count_op(c.p, FMC_OP_MAX), 1);
    assert_int_equal(count_op(c.p, FMC_OP_ADD), 1);
    prog_free(&c);
}

static void test_lower_slots_and_reads(void **state) {
    (void)state;
    prog c = compile("param p0 = 1; param p1 = 2; param p2;\n"
                     "input x[5]; input y[p0, KV_LEN];\n"
                     "mask unused = x[0] == p1;\n"
                     "mask m = y[0, kv] < p2 && h >= 0;");
    const fmc_program *p = c.p;
    assert_string_equal(p->mask_name, "m");
    assert_int_equal(p->nparams, 2);
    assert_string_equal(p->params[0].name, "p0");
    assert_string_equal(p->params[1].name, "p2");
    assert_false(p->params[1].has_default);
    assert_int_equal(p->ninputs, 1);
    assert_string_equal(p->inputs[0].name, "y");
    assert_int_equal(p->inputs[0].rank, 2);
    assert_int_equal(p->inputs[0].dims[0].kind, FMD_DIM_PARAM);
    assert_int_equal(p->inputs[0].dims[0].value, 0); /* p0's slot */
    assert_int_equal(p->inputs[0].dims[1].kind, FMD_DIM_SHAPE);
    assert_true(p->reads_heads);
    assert_false(p->reads_batch);
    prog_free(&c);
    /* Selecting by name; a branch never taken does not count as a read. */
    c = compile_named("t.mask", "mask a = b == 0; mask z = false && b == 1;", "a");
    assert_true(c.p->reads_batch);
    prog_free(&c);
    c = compile_named("t.mask", "mask a = b == 0; mask z = false && b == 1;", NULL);
    assert_string_equal(c.p->mask_name, "z");
    assert_false(c.p->reads_batch);
    prog_free(&c);
    /* The program owns a copy of its source. */
    c = compile("mask m = q >= kv;");
    fmd_program_free(c.ast);
    c.ast = NULL;
    assert_non_null(c.p->source);
    assert_string_equal(c.p->source->text, "mask m = q >= kv;");
    prog_free(&c);
}

static void test_lower_errors(void **state) {
    (void)state;
    fmd_diags d;
    fmd_diags_init(&d);
    const char *src = "mask a = true; mask c = false;";
    fmd_program *ast = fmd_parse(fmd_source_new("t.mask", src, strlen(src)), &d);
    assert_true(fmd_check(ast, &d));
    assert_null(fmc_lower(ast, "nope", &d));
    assert_int_equal(d.errors, 1);
    assert_non_null(strstr(d.items[0].message, "no mask named 'nope'"));
    assert_non_null(strstr(d.items[0].message, "a, c"));
    fmd_program_free(ast);
    fmd_diags_clear(&d);
}

/* A let chain whose inlined size doubles at each step: sharing keeps it
 * small, and nothing recurses per level. */
static void test_lower_deep_lets(void **state) {
    (void)state;
    size_t cap = 1 << 16, n = 0;
    char *src = malloc(cap);
    n += (size_t)snprintf(src + n, cap - n, "let l0 = q - kv;\n");
    for (int i = 1; i < 60; i++)
        n += (size_t)snprintf(src + n, cap - n, "let l%d = l%d + l%d;\n", i, i - 1, i - 1);
    n += (size_t)snprintf(src + n, cap - n, "mask m = l59 > 0 || l58 < 3;\n");
    prog c = compile(src);
    assert_true(c.p->count < 200);
    prog_free(&c);
    free(src);
}

/* Issue 11, finding 5: a let used under two guards is one value, computed
 * where either use is reached, not one copy per guard. */
static void test_lower_let_once_under_two_guards(void **state) {
    (void)state;
    static const char *const masks[] = {
        "mask m = kv > 2 ? x > 0 : x < 5;\n",               /* both branches */
        "mask m = kv > 2 ? x > 0 : kv < 1 ? x < 5 : false;\n", /* an OR of two guards */
        "mask m = (kv > 2 && x > 0) || (q < 1 && x < 5);\n", /* the second guard reads x */
        "mask m = c && x > 0 || !c && x < 5;\n",             /* a named condition */
    };
    for (size_t i = 0; i < sizeof masks / sizeof *masks; i++) {
        char src[256];
        snprintf(src, sizeof src, "input t[KV_LEN];\nlet x = t[kv] / (q - 3);\nlet c = q > kv;\n%s",
                 masks[i]);
        prog c = compile(src);
        if (count_op(c.p, FMC_OP_DIV) != 1 || count_op(c.p, FMC_OP_LOAD) != 1)
            fail_msg("%s: %d divisions, %d reads", masks[i], count_op(c.p, FMC_OP_DIV),
                     count_op(c.p, FMC_OP_LOAD));
        /* Guarded (never evaluated everywhere), except where every point
         * reaches a use (the first mask's condition is always evaluated). */
        const fmc_insn *div = find_op(c.p, FMC_OP_DIV);
        if (i > 0) assert_true(div->guard >= 0);
        else assert_int_equal(div->guard, -1);
        prog_free(&c);
    }
}

/* Each let of a chain is lowered once: the program grows with the chain,
 * whatever guards its lets are used under. */
static void test_lower_let_chains_linear(void **state) {
    (void)state;
    static const char *const bodies[] = {
        "kv > %d ? l%d : l%d + 1",
        "kv > %d ? l%d / 2 : q > 3 ? l%d + 1 : 0",
        "(kv > %d && l%d > 0) || (q < 3 && l%d < 3) ? kv : q",
    };
    for (size_t k = 0; k < sizeof bodies / sizeof *bodies; k++) {
        size_t cap = 1 << 16, n = 0;
        char *src = malloc(cap);
        n += (size_t)snprintf(src + n, cap - n, "let l0 = q - kv;\n");
        for (int i = 1; i < 60; i++) {
            n += (size_t)snprintf(src + n, cap - n, "let l%d = ", i);
            n += (size_t)snprintf(src + n, cap - n, bodies[k], i, i - 1, i - 1);
            n += (size_t)snprintf(src + n, cap - n, ";\n");
        }
        n += (size_t)snprintf(src + n, cap - n, "mask m = l59 > 0;\n");
        prog c = compile(src);
        if (c.p->count > 60 * 16) fail_msg("%s: %zu instructions", bodies[k], c.p->count);
        prog_free(&c);
        free(src);
    }
}

/* ---- interpreters ------------------------------------------------------------- */

static bool eval1(const fmc_program *p, const fmc_env *env, int64_t q, int64_t kv,
                  fmc_violation *v) {
    int64_t regs[512];
    assert_true(p->count <= 512);
    bool val = false;
    fmc_violation tmp;
    if (!fmc_eval_point(p, env, 0, 0, q, kv, regs, &val, v ? v : &tmp)) fail_msg("violation");
    return val;
}

static void test_floor_semantics(void **state) {
    (void)state;
    /* The spec's table, with operands computed at run time (not folded):
     * q = 0 contributes nothing but keeps the arithmetic in the IR. */
    static const struct {
        int64_t n, d, div, mod;
    } t[] = {{-7, 2, -4, 1}, {7, -2, -4, -1}, {-7, -2, 3, -1}, {7, 2, 3, 1},
             {0, -5, 0, 0},  {6, 3, 2, 0},    {-6, 3, -2, 0},  {5, -1, -5, 0}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char src[256];
        snprintf(src, sizeof src,
                 "param n = 0; param d = 1; mask m = (n + q) / d == %lld + q && (n + q) %% d == "
                 "%lld;",
                 (long long)t[i].div, (long long)t[i].mod);
        prog c = compile(src);
        int64_t params[2] = {t[i].n, t[i].d};
        fmc_env env = shape(1, 1, 1, 1, params);
        assert_true(eval1(c.p, &env, 0, 0, NULL));
        prog_free(&c);
    }
    /* x % -1 == 0 for every x, the smallest included; x / -1 of the
     * smallest overflows. */
    prog c = compile("param n = 0; param d = -1; mask m = n % d == 0;");
    int64_t params[2] = {INT64_MIN, -1};
    fmc_env env = shape(1, 1, 1, 1, params);
    assert_true(eval1(c.p, &env, 0, 0, NULL));
    prog_free(&c);
    c = compile_named("o.mask", "param n = 0; param d = -1;\nmask m = n / d == 0;", NULL);
    int64_t regs[64];
    bool val;
    fmc_violation v;
    assert_false(fmc_eval_point(c.p, &env, 0, 0, 0, 0, regs, &val, &v));
    assert_int_equal(v.kind, FMC_VIOLATION_OVERFLOW);
    fmd_diags d;
    fmd_diags_init(&d);
    fmc_report_violation(c.p, &env, &v, &d);
    assert_int_equal(d.errors, 1);
    assert_string_equal(d.items[0].message, "'n / d' overflows 64 bits at q=0, kv=0");
    assert_int_equal(d.items[0].line, 2);
    assert_int_equal(d.items[0].col, 10);
    fmd_diags_clear(&d);
    prog_free(&c);
}

static void test_min_max_abs_select(void **state) {
    (void)state;
    prog c = compile("mask m = min(q, kv) + max(q, kv) == q + kv && abs(q - kv) == max(q - kv, "
                     "kv - q) && (q < kv ? kv - q : q - kv) == abs(kv - q) && -q <= 0;");
    fmc_env env = shape(1, 1, 10, 10, NULL);
    for (int64_t q = 0; q < 10; q++)
        for (int64_t kv = 0; kv < 10; kv++) assert_true(eval1(c.p, &env, q, kv, NULL));
    prog_free(&c);
    c = compile("mask m = (q == 3) == (kv == 3) && (q != kv) != (q == kv);");
    assert_true(eval1(c.p, &env, 3, 3, NULL));
    assert_false(eval1(c.p, &env, 3, 4, NULL));
    assert_true(eval1(c.p, &env, 1, 2, NULL));
    prog_free(&c);
}

/* Builds and returns the status; the message lands in *msg (caller frees). */
static fmc_build_status build(const fmc_program *p, fmc_env *env, char **msg) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmc_build_status st;
    fmc_blockmask *m = fmc_blockmask_build(p, env, 16, 16, 0, &d, &st);
    fmc_blockmask_free(m);
    if (msg) {
        *msg = NULL;
        if (d.count) {
            size_t n = strlen(d.items[0].file) + strlen(d.items[0].message) + 64;
            *msg = malloc(n);
            snprintf(*msg, n, "%s:%d:%d: %s", d.items[0].file, d.items[0].line, d.items[0].col,
                     d.items[0].message);
        }
    }
    fmd_diags_clear(&d);
    return st;
}

static void test_guards_accept_reject(void **state) {
    (void)state;
    static const struct {
        const char *src;
        bool ok;
    } cases[] = {
        {"q < KV_LEN - 1 && doc[q + 1] == doc[q]", true},
        {"doc[q + 1] == doc[q] && q < KV_LEN - 1", false},
        {"q + 1 >= KV_LEN || doc[q + 1] == doc[q]", true},
        {"q + 1 < KV_LEN ? doc[q + 1] == doc[q] : false", true},
        {"q + 1 < KV_LEN ? false : doc[q + 1] == doc[q]", false},
        {"kv != 0 && q / kv > 1", true},
        {"kv != 0 || q / kv > 1", false},
        {"kv == 0 || q % kv == 0", true},
        {"false && doc[q + 100] == 0", true},
        {"kv > 0 && doc[kv - 1] < doc[kv]", true},
        {"doc[kv - 1] < doc[kv]", false},
        {"(kv >= 1 && kv <= 30) && doc[q - kv + 31] >= 0", false},
        {"q >= kv && doc[q - kv] >= 0", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[256];
        snprintf(src, sizeof src, "input doc[KV_LEN];\nmask m = %s;", cases[i].src);
        prog c = compile(src);
        int32_t doc[64];
        for (int k = 0; k < 64; k++) doc[k] = k / 10;
        const int32_t *ins[1] = {doc};
        int64_t dims[1][FMD_MAX_RANK] = {{64}};
        fmc_env env = shape(1, 1, 64, 64, NULL);
        env.inputs = ins;
        env.input_dims = (const int64_t(*)[FMD_MAX_RANK])dims;
        char *msg;
        fmc_build_status st = build(c.p, &env, &msg);
        if ((st == FMC_BUILD_OK) != cases[i].ok)
            fail_msg("'%s': expected %s, got status %d (%s)", cases[i].src,
                     cases[i].ok ? "accepted" : "rejected", (int)st, msg ? msg : "");
        if (!cases[i].ok) assert_int_equal(st, FMC_BUILD_SAFETY);
        free(msg);
        prog_free(&c);
    }
}

/* ---- messages ------------------------------------------------------------------- */

static void test_messages(void **state) {
    (void)state;
    /* The spec's example, at the point it names. */
    prog c = compile_named("doc.mask", "# packed documents\ninput doc[KV_LEN];\n\n"
                                       "mask m = doc[kv+1] == doc[q];\n",
                           NULL);
    int32_t doc[2048] = {0};
    const int32_t *ins[1] = {doc};
    int64_t dims[1][FMD_MAX_RANK] = {{2048}};
    fmc_env env = shape(1, 1, 2048, 2048, NULL);
    env.inputs = ins;
    env.input_dims = (const int64_t(*)[FMD_MAX_RANK])dims;
    int64_t regs[64];
    bool val;
    fmc_violation v;
    assert_false(fmc_eval_point(c.p, &env, 0, 0, 2047, 2047, regs, &val, &v));
    fmd_diags d;
    fmd_diags_init(&d);
    fmc_report_violation(c.p, &env, &v, &d);
    assert_string_equal(d.items[0].message,
                        "index kv+1 of 'doc' reaches 2048 at q=2047, kv=2047, but 'doc' has "
                        "length 2048");
    assert_string_equal(d.items[0].file, "doc.mask");
    assert_int_equal(d.items[0].line, 4);
    assert_int_equal(d.items[0].col, 14);
    fmd_diags_clear(&d);
    /* The build finds one such point and says so. */
    char *msg;
    assert_int_equal(build(c.p, &env, &msg), FMC_BUILD_SAFETY);
    assert_non_null(strstr(msg, "doc.mask:4:14: index kv+1 of 'doc' reaches 2048 at q="));
    assert_non_null(strstr(msg, "kv=2047, but 'doc' has length 2048"));
    free(msg);
    prog_free(&c);

    /* Below zero; with several batches the point names b and h. */
    c = compile("input doc[KV_LEN];\nmask m = doc[kv - 1] >= 0;");
    env = shape(2, 1, 4, 2048, NULL);
    env.inputs = ins;
    env.input_dims = (const int64_t(*)[FMD_MAX_RANK])dims;
    assert_int_equal(build(c.p, &env, &msg), FMC_BUILD_SAFETY);
    assert_non_null(strstr(msg, "t.mask:2:14: index kv - 1 of 'doc' is -1 at b=0, h=0, q="));
    assert_non_null(strstr(msg, "kv=0, but indices start at 0"));
    free(msg);
    prog_free(&c);

    /* Division by zero names the divisor as written (parentheses dropped). */
    c = compile("param w = 4;\nmask m = q / (w - 4) > 0;");
    int64_t params[1] = {4};
    env = shape(1, 1, 8, 8, params);
    assert_int_equal(build(c.p, &env, &msg), FMC_BUILD_SAFETY);
    assert_non_null(strstr(msg, "t.mask:2:14: divisor 'w - 4' is zero at q="));
    free(msg);
    prog_free(&c);
    c = compile("param w = 4;\nmask m = kv % (w - 4) > 0;");
    assert_int_equal(build(c.p, &env, &msg), FMC_BUILD_SAFETY);
    assert_non_null(strstr(msg, "modulus 'w - 4' is zero at q="));
    free(msg);
    prog_free(&c);

    /* Overflow, first at q = 2 in row order. */
    c = compile("param big = 4611686018427387904;\nmask m = q * big > kv;");
    int64_t pb[1] = {4611686018427387904LL};
    env = shape(1, 1, 8, 8, pb);
    assert_int_equal(build(c.p, &env, &msg), FMC_BUILD_SAFETY);
    assert_non_null(strstr(msg, "t.mask:2:10: 'q * big' overflows 64 bits at q=2, kv="));
    free(msg);
    prog_free(&c);

    /* Bindings that do not match the declaration. */
    c = compile("input doc[KV_LEN];\nmask m = doc[kv] == 0;");
    int64_t bad[1][FMD_MAX_RANK] = {{100}};
    env = shape(1, 1, 8, 8, NULL);
    env.inputs = ins;
    env.input_dims = (const int64_t(*)[FMD_MAX_RANK])bad;
    assert_int_equal(build(c.p, &env, &msg), FMC_BUILD_BINDING);
    assert_non_null(strstr(msg, "input 'doc' is bound with dimensions [100] but is declared with "
                                "dimensions [8]"));
    free(msg);
    prog_free(&c);
}

/* ---- rows against points ------------------------------------------------------------ */

static void test_row_matches_points(void **state) {
    (void)state;
    static const char *const srcs[] = {
        "mask m = kv <= q && q - kv < 5;",
        "param c = 3; mask m = (q - 7) / c == kv % 4 - 1 || abs(q - kv) * 3 > 7;",
        "input a[KV_LEN]; mask m = kv + 2 < KV_LEN && a[kv + 2] > a[q % KV_LEN];",
        "input t[BATCH, KV_LEN]; mask m = t[b, kv] == h || min(kv, q) == 3;",
        "mask m = kv != 0 ? q / kv == 1 : q % 2 == 0;",
    };
    tu_rng r = {99};
    for (size_t i = 0; i < 2 * sizeof srcs / sizeof srcs[0]; i++) {
        prog c = compile(srcs[i / 2]);
        /* Rows are shared between values by liveness; a program without
         * the map (hand-built) uses one row per instruction. */
        assert_non_null(c.p->row_slot);
        assert_true(c.p->nrow_slots <= c.p->count);
        if (i % 2) {
            free(c.p->row_slot);
            c.p->row_slot = NULL;
        }
        int32_t arr[2 * 37];
        for (int k = 0; k < 2 * 37; k++) arr[k] = (int32_t)tu_rng_range(&r, -2, 5);
        const int32_t *ins[1] = {arr};
        int64_t dims[1][FMD_MAX_RANK] = {{37}};
        if (c.p->ninputs && c.p->inputs[0].rank == 2) dims[0][0] = 2, dims[0][1] = 37;
        int64_t params[1] = {3};
        fmc_env env = shape(2, 2, 29, 37, params);
        env.inputs = ins;
        env.input_dims = (const int64_t(*)[FMD_MAX_RANK])dims;
        void *scratch = malloc(fmc_row_scratch_bytes(c.p, 37));
        for (int it = 0; it < 200; it++) {
            int64_t b = tu_rng_range(&r, 0, 1), h = tu_rng_range(&r, 0, 1);
            int64_t q = tu_rng_range(&r, 0, 28), k0 = tu_rng_range(&r, 0, 36);
            int64_t n = tu_rng_range(&r, 1, 37 - k0);
            uint8_t out[37];
            fmc_violation v;
            assert_true(fmc_eval_row(c.p, &env, b, h, q, k0, n, out, scratch, &v));
            for (int64_t j = 0; j < n; j++) {
                int64_t regs[128];
                bool val;
                assert_true(fmc_eval_point(c.p, &env, b, h, q, k0 + j, regs, &val, &v));
                assert_int_equal(out[j], val);
            }
        }
        free(scratch);
        prog_free(&c);
    }
}

/* Rank-1 loads (int32 and byte arrays) with indices out of range under
 * false guards, true guards and no guard, and uniform loads under a varying
 * guard (doc[q] with Q_LEN > KV_LEN): the row evaluator's fast paths give
 * the point evaluator's values, and its first violation in kv order. */
static void test_row_loads_and_guards(void **state) {
    (void)state;
    static const char *const srcs[] = {
        "mask m = kv <= q && doc[q] == doc[kv];",
        "mask m = kv >= q - 3 || doc[kv + 5] > doc[q % KV_LEN];",
        "mask m = doc[kv - 2] >= 0;",
        "mask m = kv > 3 && doc[kv - 4 + q] != 1;",
        "mask m = q < 3 && doc[q - 1 + kv] == 2;",
        "mask m = kv < q ? doc[q - kv - 5] > 0 : doc[kv] < 3;",
        "mask m = kv == 7 || doc[q] == 1;",
    };
    enum { KV = 32, Q = 40 };
    tu_rng r = {7};
    int fails = 0, oks = 0;
    for (size_t i = 0; i < 4 * sizeof srcs / sizeof srcs[0]; i++) {
        char src[256];
        snprintf(src, sizeof src, "input doc[KV_LEN];\n%s", srcs[i / 4]);
        prog c = compile(src);
        bool bytes = i % 2, slots = i / 2 % 2;
        if (!slots) {
            free(c.p->row_slot);
            c.p->row_slot = NULL;
        }
        int32_t arr[KV];
        uint8_t arr8[KV];
        for (int k = 0; k < KV; k++) {
            arr[k] = (int32_t)tu_rng_range(&r, bytes ? 0 : -2, 5);
            arr8[k] = (uint8_t)arr[k];
        }
        const int32_t *ins[1] = {arr};
        const uint8_t *bys[1] = {arr8};
        if (bytes) c.p->inputs[0].elem_bytes = 1;
        int64_t dims[1][FMD_MAX_RANK] = {{KV}};
        fmc_env env = shape(1, 1, Q, KV, NULL);
        env.inputs = bytes ? NULL : ins;
        env.bytes = bytes ? bys : NULL;
        env.input_dims = (const int64_t(*)[FMD_MAX_RANK])dims;
        void *scratch = malloc(fmc_row_scratch_bytes(c.p, KV));
        for (int it = 0; it < 300; it++) {
            int64_t q = tu_rng_range(&r, 0, Q - 1), k0 = tu_rng_range(&r, 0, KV - 1);
            int64_t n = tu_rng_range(&r, 1, KV - k0);
            uint8_t out[KV], want[KV];
            fmc_violation v, pv;
            memset(&v, 0, sizeof v);
            memset(&pv, 0, sizeof pv);
            bool pok = true;
            for (int64_t j = 0; j < n && pok; j++) {
                int64_t regs[128];
                bool val = false;
                pok = fmc_eval_point(c.p, &env, 0, 0, q, k0 + j, regs, &val, &pv);
                want[j] = val;
            }
            bool rok = fmc_eval_row(c.p, &env, 0, 0, q, k0, n, out, scratch, &v);
            if (rok != pok)
                fail_msg("'%s' (bytes %d) q %lld kv %lld+%lld: row %d, points %d", srcs[i / 4],
                         bytes, (long long)q, (long long)k0, (long long)n, rok, pok);
            if (!pok) {
                fails++;
                assert_int_equal(v.kind, pv.kind);
                assert_int_equal(v.insn, pv.insn);
                assert_int_equal(v.arg, pv.arg);
                assert_int_equal(v.value, pv.value);
                assert_int_equal(v.limit, pv.limit);
                assert_int_equal(v.q, pv.q);
                assert_int_equal(v.kv, pv.kv);
                continue;
            }
            oks++;
            for (int64_t j = 0; j < n; j++) assert_int_equal(out[j], want[j]);
        }
        free(scratch);
        prog_free(&c);
    }
    /* Both outcomes are exercised, not just one. */
    assert_true(fails > 100);
    assert_true(oks > 100);
}

static void test_fits_int32(void **state) {
    (void)state;
    prog c = compile("param w = 1024; mask m = kv <= q && q - kv < w;");
    int64_t params[1] = {1024};
    fmc_env env = shape(4, 8, 131072, 131072, params);
    assert_true(fmc_program_fits_int32(c.p, &env));
    prog_free(&c);
    c = compile("mask m = q * 100000 < kv;");
    env = shape(1, 1, 131072, 131072, NULL);
    assert_false(fmc_program_fits_int32(c.p, &env));
    env = shape(1, 1, 1000, 1000, NULL);
    assert_true(fmc_program_fits_int32(c.p, &env));
    prog_free(&c);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lower_guards_and_canon),
        cmocka_unit_test(test_lower_cse),
        cmocka_unit_test(test_lower_slots_and_reads),
        cmocka_unit_test(test_lower_errors),
        cmocka_unit_test(test_lower_deep_lets),
        cmocka_unit_test(test_lower_let_once_under_two_guards),
        cmocka_unit_test(test_lower_let_chains_linear),
        cmocka_unit_test(test_floor_semantics),
        cmocka_unit_test(test_min_max_abs_select),
        cmocka_unit_test(test_guards_accept_reject),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_row_matches_points),
        cmocka_unit_test(test_row_loads_and_guards),
        cmocka_unit_test(test_fits_int32),
    };
    return TU_RUN(tests, argc, argv);
}
