/* fmd_print: idempotent, and the printed program means the same.
 *
 * "The same meaning" is checked by evaluating every mask of the original
 * and of the reprinted program at every point of a small shape, with a
 * direct evaluator over the AST written for this test (short circuits,
 * floor division, overflow and index errors included). */
#define _POSIX_C_SOURCE 200809L
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsl/ast.h"
#include "testutil.h"

static fmd_program *compile_ok(const char *name, const char *text) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmd_source *src = fmd_source_new(name, text, strlen(text));
    assert_non_null(src);
    fmd_program *p = fmd_parse(src, &d);
    assert_non_null(p);
    bool ok = fmd_check(p, &d) && d.errors == 0;
    if (!ok) {
        fmd_diags_render(&d, stdout, false);
        print_message("%s does not check:\n%s", name, text);
    }
    assert_true(ok);
    fmd_diags_clear(&d);
    return p;
}

/* ---- a reference evaluator ---------------------------------------------- */

typedef struct point {
    int64_t var[FMD_VAR_COUNT];
    bool err; /* some rule broke: index, division by zero, overflow */
} point;

static int64_t param_value(const fmd_decl *d) {
    return d->has_default ? d->default_value : 7;
}

static int64_t eval(point *pt, const fmd_expr *e);

static int64_t dim_size(point *pt, const fmd_dim *dim) {
    switch (dim->kind) {
    case FMD_DIM_LITERAL: return dim->value;
    case FMD_DIM_PARAM: return param_value(dim->param);
    default: return pt->var[dim->shape];
    }
}

static int64_t binop(point *pt, fmd_binop op, int64_t a, int64_t b) {
    int64_t r = 0;
    switch (op) {
    case FMD_OP_ADD: pt->err |= __builtin_add_overflow(a, b, &r); return r;
    case FMD_OP_SUB: pt->err |= __builtin_sub_overflow(a, b, &r); return r;
    case FMD_OP_MUL: pt->err |= __builtin_mul_overflow(a, b, &r); return r;
    case FMD_OP_DIV:
    case FMD_OP_MOD:
        if (b == 0 || (op == FMD_OP_DIV && a == INT64_MIN && b == -1)) {
            pt->err = true;
            return 0;
        }
        return op == FMD_OP_DIV ? fmd_floordiv(a, b) : fmd_floormod(a, b);
    case FMD_OP_EQ: return a == b;
    case FMD_OP_NE: return a != b;
    case FMD_OP_LT: return a < b;
    case FMD_OP_LE: return a <= b;
    case FMD_OP_GT: return a > b;
    case FMD_OP_GE: return a >= b;
    default: return 0;
    }
}

static int64_t eval_chain(point *pt, const fmd_expr *e) {
    int64_t acc = eval(pt, e->u.chain.operands[0]);
    for (size_t i = 1; i < e->u.chain.count && !pt->err; i++) {
        fmd_binop op = e->u.chain.ops[i - 1];
        if (op == FMD_OP_OR || op == FMD_OP_AND) {
            if ((op == FMD_OP_OR) == (acc != 0)) continue; /* decided: skip the rest */
            acc = eval(pt, e->u.chain.operands[i]) != 0;
        } else {
            acc = binop(pt, op, acc, eval(pt, e->u.chain.operands[i]));
        }
    }
    return acc;
}

static int64_t eval(point *pt, const fmd_expr *e) {
    if (pt->err) return 0;
    if (e->is_const) return e->const_value;
    switch (e->kind) {
    case FMD_EXPR_INT: return (int64_t)e->u.lit.magnitude;
    case FMD_EXPR_BOOL: return e->u.boolean;
    case FMD_EXPR_NAME:
        if (e->u.name.ref == FMD_REF_BUILTIN) return pt->var[e->u.name.var];
        if (e->u.name.decl->kind == FMD_DECL_PARAM) return param_value(e->u.name.decl);
        return eval(pt, e->u.name.decl->expr);
    case FMD_EXPR_UNARY: {
        int64_t v = eval(pt, e->u.unary.operand);
        if (e->u.unary.op == FMD_UNOP_NOT) return !v;
        pt->err |= v == INT64_MIN;
        return pt->err ? 0 : -v;
    }
    case FMD_EXPR_CHAIN: return eval_chain(pt, e);
    case FMD_EXPR_COND:
        return eval(pt, e->u.cond.cond) ? eval(pt, e->u.cond.then_expr)
                                        : eval(pt, e->u.cond.else_expr);
    case FMD_EXPR_CALL: {
        int64_t a = eval(pt, e->u.call.args[0]);
        if (e->u.call.fn == FMD_FN_ABS) {
            pt->err |= a == INT64_MIN;
            return a < 0 ? -a : a;
        }
        int64_t b = eval(pt, e->u.call.args[1]);
        return e->u.call.fn == FMD_FN_MIN ? (a < b ? a : b) : (a > b ? a : b);
    }
    case FMD_EXPR_INDEX: {
        /* Input contents: a fixed function of the name and the position. */
        const fmd_decl *d = e->u.index.decl;
        uint64_t h = 1469598103934665603u;
        for (const char *s = d->name; *s; s++)
            h = (h ^ (unsigned char)*s) * 1099511628211u;
        for (size_t i = 0; i < e->u.index.count; i++) {
            int64_t x = eval(pt, e->u.index.indices[i]);
            if (x < 0 || x >= dim_size(pt, &d->dims[i])) pt->err = true;
            h = (h ^ (uint64_t)x) * 1099511628211u;
        }
        return pt->err ? 0 : (int64_t)(h % 9) - 3;
    }
    default: return 0;
    }
}

/* Both programs give every mask the same value (or the same error) at
 * every point of a small shape. */
static void assert_same_meaning(const fmd_program *a, const fmd_program *b) {
    for (size_t i = 0; i < a->count; i++) {
        const fmd_decl *da = a->decls[i];
        if (da->kind != FMD_DECL_MASK) continue;
        const fmd_decl *db = fmd_program_find(b, da->name);
        assert_non_null(db);
        point pa = {{0}, false}, pb;
        pa.var[FMD_VAR_BATCH] = 2, pa.var[FMD_VAR_HEADS] = 2;
        pa.var[FMD_VAR_Q_LEN] = 9, pa.var[FMD_VAR_KV_LEN] = 13;
        for (int64_t bb = 0; bb < 2; bb++)
            for (int64_t hh = 0; hh < 2; hh++)
                for (int64_t q = 0; q < 9; q++)
                    for (int64_t kv = 0; kv < 13; kv++) {
                        pa.var[FMD_VAR_B] = bb, pa.var[FMD_VAR_H] = hh;
                        pa.var[FMD_VAR_Q] = q, pa.var[FMD_VAR_KV] = kv;
                        pa.err = false;
                        pb = pa;
                        int64_t va = eval(&pa, da->expr), vb = eval(&pb, db->expr);
                        assert_int_equal(pa.err, pb.err);
                        if (!pa.err) assert_int_equal(va, vb);
                    }
    }
}

/* print(x) checks, declares the same names and kinds, means the same, and
 * prints to itself. */
static void check_roundtrip(const char *name, const char *text) {
    fmd_program *p1 = compile_ok(name, text);
    char *t1 = fmd_print(p1);
    assert_non_null(t1);
    fmd_program *p2 = compile_ok(name, t1);
    char *t2 = fmd_print(p2);
    assert_non_null(t2);
    if (strcmp(t1, t2)) print_message("%s: not idempotent:\n%s---\n%s", name, t1, t2);
    assert_string_equal(t1, t2);
    assert_int_equal(p1->count, p2->count);
    for (size_t i = 0; i < p1->count; i++) {
        assert_string_equal(p1->decls[i]->name, p2->decls[i]->name);
        assert_int_equal(p1->decls[i]->kind, p2->decls[i]->kind);
        assert_int_equal(p1->decls[i]->type, p2->decls[i]->type);
        assert_int_equal(p1->decls[i]->has_default, p2->decls[i]->has_default);
        assert_int_equal(p1->decls[i]->default_value, p2->decls[i]->default_value);
        assert_int_equal(p1->decls[i]->rank, p2->decls[i]->rank);
    }
    assert_same_meaning(p1, p2);
    free(t1);
    free(t2);
    fmd_program_free(p1);
    fmd_program_free(p2);
}

static void test_print_examples(void **state) {
    (void)state;
    glob_t g;
    int rc = glob(FM_SOURCE_DIR "/examples/masks/*.mask", 0, NULL, &g);
    assert_int_equal(rc, 0);
    assert_true(g.gl_pathc >= 1);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char *text = tu_read_file(g.gl_pathv[i], NULL);
        assert_non_null(text);
        check_roundtrip(g.gl_pathv[i], text);
        free(text);
    }
    globfree(&g);
}

static const char *const inline_programs[] = {
    "param window = 256; param sinks = 4;\n"
    "let causal = kv <= q;\n"
    "mask sliding_with_sinks = causal && (q - kv < window || kv < sinks);\n",
    /* Parentheses that matter and parentheses that do not. */
    "let a1 = (q - kv) - (1 - h);\n"
    "let b1 = q - (kv - (h - (b + 1)));\n"
    "let c1 = ((q * 3) / 2) % (kv + 1) * -(-q) - abs(-kv) + min(q, kv - 20) * max(1, 2);\n"
    "mask m = (a1 < b1) == (kv < q) || !(!(q < kv)) && ((c1 > 0) != (a1 >= 3));\n"
    "mask n = (q < kv ? 1 : 2) + (true ? q : kv) < (h == 0 ? 3 : (b == 1 ? 4 : 5));\n"
    "mask o = (q > 4 ? q < kv : kv < q) ? m : (n ? true : false);\n"
    "mask p = ((q < 3) == (kv < 3)) == (h == 1);\n",
    /* Floor division, limits, params without defaults, inputs of rank 2. */
    "param lo = -9223372036854775808; param hi = 9223372036854775807; param k;\n"
    "input t[Q_LEN, 4];\n"
    "input u[6];\n"
    "let w = (q - 5) / (kv % 3 - 1) + (q - 4) % -3;\n"
    "mask m = kv < Q_LEN && t[q, kv % 4] < u[h + 2 * b] || w * k == 2 && lo < hi;\n"
    "mask n = kv < 6 && u[kv] == 0 ? t[q, 0] > 0 : hi - kv > -(lo + 1) - 5;\n",
    /* Short circuits that guard errors. */
    "input d[KV_LEN];\n"
    "mask m = kv != 0 && 100 / kv > 20 || kv + 1 < KV_LEN && d[kv + 1] > 0;\n"
    "mask n = q == 0 ? false : kv % q == 0;\n",
};

static void test_print_inline(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof inline_programs / sizeof *inline_programs; i++)
        check_roundtrip("inline.mask", inline_programs[i]);
}

/* Random well-typed programs: operands are primaries or parenthesized,
 * so the printer has every precedence decision to make itself. */
typedef struct gen {
    tu_rng rng;
    char *s;
    size_t len, cap;
} gen;

static void emit(gen *g, const char *t) {
    size_t n = strlen(t);
    if (g->len + n + 1 > g->cap) {
        g->cap = (g->len + n + 1) * 2;
        g->s = realloc(g->s, g->cap);
        assert_non_null(g->s);
    }
    memcpy(g->s + g->len, t, n + 1);
    g->len += n;
}

static int pick(gen *g, int n) {
    return (int)tu_rng_range(&g->rng, 0, n - 1);
}

static void gen_expr(gen *g, bool want_bool, int depth);

static void gen_operand(gen *g, bool want_bool, int depth) {
    emit(g, "(");
    gen_expr(g, want_bool, depth);
    emit(g, ")");
}

static void gen_expr(gen *g, bool want_bool, int depth) {
    static const char *const ints[] = {"q", "kv", "h", "b", "w", "0", "1", "3", "-2", "7", "Q_LEN"};
    static const char *const arith[] = {" + ", " - ", " * ", " / ", " % "};
    static const char *const rel[] = {" < ", " <= ", " > ", " >= ", " == ", " != "};
    int choice = depth <= 0 ? 0 : pick(g, 6);
    if (choice == 0) {
        emit(g, want_bool ? (pick(g, 2) ? "true" : "false") : ints[pick(g, 11)]);
    } else if (choice == 1) { /* a chain of one level */
        int n = 2 + pick(g, 3), level = pick(g, 2);
        for (int i = 0; i < n; i++) {
            if (i)
                emit(g, want_bool ? (level ? " && " : " || ")
                                  : arith[level ? 2 + pick(g, 3) : pick(g, 2)]);
            gen_operand(g, want_bool, depth - 1);
        }
    } else if (choice == 2) {
        if (want_bool) {
            gen_operand(g, false, depth - 1);
            emit(g, rel[pick(g, 6)]);
            gen_operand(g, false, depth - 1);
        } else {
            emit(g, pick(g, 2) ? "min(" : "max(");
            gen_expr(g, false, depth - 1);
            emit(g, ", ");
            gen_expr(g, false, depth - 1);
            emit(g, ")");
        }
    } else if (choice == 3) {
        emit(g, want_bool ? "!" : "-");
        gen_operand(g, want_bool, depth - 1);
    } else if (choice == 4) {
        gen_operand(g, true, depth - 1);
        emit(g, " ? ");
        gen_operand(g, want_bool, depth - 1);
        emit(g, " : ");
        gen_operand(g, want_bool, depth - 1);
    } else {
        bool b = pick(g, 2);
        gen_operand(g, b, depth - 1);
        emit(g, pick(g, 2) ? " == " : " != ");
        gen_operand(g, b, depth - 1);
        if (!want_bool) emit(g, " ? 1 : 0");
    }
}

static void test_print_random(void **state) {
    (void)state;
    int rounds = tu_sanitizer_run() ? 60 : 400;
    gen g = {{99}, NULL, 0, 0};
    int checked = 0;
    for (int r = 0; r < rounds; r++) {
        g.len = 0;
        emit(&g, "param w = 5;\nlet x = ");
        gen_expr(&g, false, 4);
        emit(&g, ";\nmask m = ");
        gen_expr(&g, true, 4);
        emit(&g, " || x < 0;\n");
        /* Literal arithmetic may fold to a zero divisor or overflow: such
         * a program is rightly rejected and has nothing to print. */
        fmd_diags d;
        fmd_diags_init(&d);
        fmd_program *p = fmd_parse(fmd_source_new("random.mask", g.s, g.len), &d);
        assert_non_null(p);
        bool ok = fmd_check(p, &d);
        if (!ok) {
            assert_non_null(strstr(d.items[0].message, "zero")
                                ? d.items[0].message
                                : strstr(d.items[0].message, "overflow"));
        }
        fmd_diags_clear(&d);
        fmd_program_free(p);
        if (ok) {
            checked++;
            check_roundtrip("random.mask", g.s);
        }
    }
    assert_true(checked > rounds / 2);
    free(g.s);
}

/* The exact canonical form of a few statements. */
static void test_print_canonical(void **state) {
    (void)state;
    fmd_program *p =
        compile_ok("c.mask", "# comment\nparam   w=1_024 ;param x ;input t [ 3,Q_LEN ] ;\n"
                             "let a=((q-kv)-w);let bb=q-(kv-w);let c=-(-q);\n"
                             "mask  m=((a<bb))==(kv<q)?(true):!(!(t[0,q]>x));\n"
                             "mask n=(q<kv?true:false)?m:(m?false:true);\n");
    char *text = fmd_print(p);
    assert_string_equal(text, "param w = 1024;\n"
                              "param x;\n"
                              "input t[3, Q_LEN];\n"
                              "let a = q - kv - w;\n"
                              "let bb = q - (kv - w);\n"
                              "let c = - -q;\n"
                              "mask m = a < bb == kv < q ? true : !!(t[0, q] > x);\n"
                              "mask n = (q < kv ? true : false) ? m : m ? false : true;\n");
    free(text);
    fmd_program_free(p);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_print_examples),
        cmocka_unit_test(test_print_inline),
        cmocka_unit_test(test_print_canonical),
        cmocka_unit_test(test_print_random),
    };
    return TU_RUN(tests, argc, argv);
}
