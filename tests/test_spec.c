/* The language contract (the specification's mask-language.md), rule by
 * rule: each test names the rules it pins. Rules already pinned elsewhere
 * (the malformed-file table in dsl_cases.h, test_ir's floor-division and
 * guard tables, test_blockmask's property tests) are not repeated here.
 *
 * The last part builds random programs through the public API and checks
 * them against a reference evaluator written from the specification alone
 * (spec_ref.h): point for point, tile for tile, refusal for refusal. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "dsl/ast.h"
#include "flexmask.h"
#include "mask_gen.h"
#include "spec_ref.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct sp_param {
    const char *name;
    int64_t value;
} sp_param;

typedef struct sp_input {
    const char *name;
    size_t rank;
    int64_t dims[FMD_MAX_RANK];
    const int32_t *data; /* NULL: zeros */
} sp_input;

typedef struct sp_build {
    const char *src;
    const char *mask; /* NULL: the last */
    fm_shape shape;   /* zero: 1 x 1 x 8 x 8 */
    int64_t block;    /* 0: 4 */
    sp_param params[4];
    sp_input inputs[2];
} sp_build;

typedef struct sp_result {
    fm_status st;     /* of the first step that failed, or of the build */
    char *diags;      /* every message, rendered */
    fm_blockmask *bm; /* on success */
    fm_mask *mask;
    fm_program *prog;
    int32_t *zeros[2];
} sp_result;

static void sp_result_free(sp_result *r) {
    fm_blockmask_free(r->bm);
    fm_mask_free(r->mask);
    fm_program_free(r->prog);
    fm_free(r->diags);
    for (int i = 0; i < 2; i++)
        free(r->zeros[i]);
    memset(r, 0, sizeof *r);
}

static sp_result sp_run(const sp_build *c) {
    sp_result r;
    memset(&r, 0, sizeof r);
    fm_diagnostics *d = fm_diagnostics_create();
    fm_bindings *bind = NULL;
    assert_non_null(d);
    r.st = fm_compile_string("t.mask", c->src, strlen(c->src), d, &r.prog);
    if (r.st == FM_OK) r.st = fm_mask_select(r.prog, c->mask, d, &r.mask);
    if (r.st == FM_OK) r.st = fm_bindings_create(r.mask, &bind);
    for (int i = 0; i < 4 && c->params[i].name && r.st == FM_OK; i++)
        r.st = fm_bindings_set_param(bind, c->params[i].name, c->params[i].value, d);
    for (int i = 0; i < 2 && c->inputs[i].name && r.st == FM_OK; i++) {
        const sp_input *in = &c->inputs[i];
        const int32_t *data = in->data;
        if (!data) {
            int64_t n = 1;
            for (size_t k = 0; k < in->rank; k++)
                n *= in->dims[k];
            r.zeros[i] = calloc((size_t)(n > 0 ? n : 1), sizeof(int32_t));
            data = r.zeros[i];
        }
        /* Borrowed: the arrays outlive the BlockMask (freed after it). */
        r.st = fm_bindings_set_input(bind, in->name, data, in->rank, in->dims, FM_BORROW, d);
    }
    if (r.st == FM_OK) {
        fm_shape s = c->shape;
        if (!s.batch) s = (fm_shape){1, 1, 8, 8};
        fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = c->block ? c->block : 4,
                              .block_kv = c->block ? c->block : 4};
        r.st = fm_blockmask_build(r.mask, bind, s, &o, d, &r.bm);
    }
    r.diags = fm_diagnostics_format(d, false);
    fm_bindings_free(bind);
    fm_diagnostics_free(d);
    return r;
}

/* Builds c; fails the test unless the status is want and (when given) the
 * diagnostics contain what. */
static void expect(const sp_build *c, fm_status want, const char *what) {
    sp_result r = sp_run(c);
    if (r.st != want || (what && !strstr(r.diags ? r.diags : "", what)))
        fail_msg("%s\n-> %s, expected %s%s%s; diagnostics:\n%s", c->src, fm_status_string(r.st),
                 fm_status_string(want), what ? " with " : "", what ? what : "",
                 r.diags ? r.diags : "");
    sp_result_free(&r);
}

/* Like expect, with a second part the diagnostics must contain too. */
static void expect2(const sp_build *c, fm_status want, const char *what, const char *also) {
    expect(c, want, what);
    expect(c, want, also);
}

static void expect_ok(const char *src) {
    sp_build c = {.src = src};
    expect(&c, FM_OK, NULL);
}

/* A compile error whose first line is exactly "t.mask:" + located (LINE:COL:
 * error: MESSAGE). */
static void expect_compile_error(const char *src, const char *located) {
    sp_build c = {.src = src};
    char want[512];
    snprintf(want, sizeof want, "t.mask:%s\n", located);
    sp_result r = sp_run(&c);
    if (r.st != FM_ERR_COMPILE || !r.diags || strncmp(r.diags, want, strlen(want)))
        fail_msg("%s\n-> %s; expected the compile error\n%sgot:\n%s", src, fm_status_string(r.st),
                 want, r.diags ? r.diags : "");
    sp_result_free(&r);
}

/* Evaluates a mask that does not depend on the point at one point: the
 * value of a closed expression. */
static bool closed_value(const sp_build *c) {
    sp_result r = sp_run(c);
    if (r.st != FM_OK)
        fail_msg("%s\n-> %s:\n%s", c->src, fm_status_string(r.st), r.diags ? r.diags : "");
    bool v = false;
    assert_int_equal(fm_blockmask_eval(r.bm, 0, 0, 0, 0, &v), FM_OK);
    sp_result_free(&r);
    return v;
}

/* ---- files and tokens ---------------------------------------------------- */

/* "# starts a comment that runs to the end of the line"; "Whitespace and
 * newlines are insignificant"; literals with leading zeros and '_' between
 * digits; identifiers [A-Za-z_][A-Za-z0-9_]*, case-sensitive. */
static void test_tokens(void **state) {
    (void)state;
    expect_ok("mask m = true; # a comment at the end, no newline");
    expect_ok("# only\n# comments\nmask m = q # inside an expression\n  >= kv # still\n;");
    expect_ok("param\tw\r\n=\n4\n;let c=kv<=q;mask m=c&&q-kv<w;");
    expect_ok("let _ = 1; let _x9_ = _ + 1; let X = 2; mask m = _x9_ == X;");
    /* 007 is 7 and 0_0 is 0; the value, not the spelling, matters. */
    sp_build c = {.src = "mask m = 007 + 1_000 + 0_0 == 1007 && 1_2_3 == 123 && "
                         "00000000000000000000000000000000000009223372036854775807 > 0;"};
    assert_true(closed_value(&c));
    /* Window and window are two names. */
    c.src = "param Window = 1; param window = 2; mask m = window - Window == 1;";
    assert_true(closed_value(&c));
    expect_compile_error("mask m = q < 1_;", "1:14: error: malformed integer literal '1_'");
    expect_compile_error("mask m = q < 0x1F;", "1:14: error: malformed integer literal '0x1F'");
    expect_compile_error("mask m = q < 2e3;", "1:14: error: malformed integer literal '2e3'");
    expect_compile_error("mask m = q < _1;", "1:14: error: unknown name '_1'");
    expect_compile_error("mask m = q < 1.5;", "1:15: error: unexpected character '.'");
    expect_compile_error("mask m = +q < 1;", "1:10: error: expected an expression, found '+'");
}

/* "COL counts bytes from the start of the line": after a two-byte
 * character, the next error is two columns on. */
static void test_columns_count_bytes(void **state) {
    (void)state;
    sp_build c = {.src = "mask m = \xc3\xa9 \xc3\xa9 < q;"};
    sp_result r = sp_run(&c);
    assert_int_equal(r.st, FM_ERR_COMPILE);
    assert_non_null(strstr(r.diags, "t.mask:1:10: error: unexpected character"));
    assert_non_null(strstr(r.diags, "t.mask:1:13: error: unexpected character"));
    sp_result_free(&r);
    /* In a comment too: the bad byte after 'é' is at byte 20, character 19. */
    expect_compile_error("mask m = true; # \xc3\xa9\xff\n", "1:20: error: invalid UTF-8 byte 0xff");
    /* A tab is one byte; CRLF ends a line like LF. */
    expect_compile_error("\tparam w = 4;\r\n\t\tmask m = q < ww;\r\n",
                         "2:16: error: unknown name 'ww'");
}

/* "Reserved words: param input let mask true false min max abs, and the
 * names listed under Names in scope. Using one as a declared name is an
 * error", for every kind of declaration. */
static void test_reserved_words(void **state) {
    (void)state;
    static const char *const words[] = {"param", "input", "let",    "mask",  "true", "false",
                                        "min",   "max",   "abs",    "b",     "h",    "q",
                                        "kv",    "Q_LEN", "KV_LEN", "BATCH", "HEADS"};
    static const char *const forms[] = {"param %s = 1;", "param %s;", "input %s[4];", "let %s = 1;",
                                        "mask %s = true;"};
    for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
        for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
            char src[128], want[128];
            int n = snprintf(src, sizeof src, forms[f], words[w]);
            snprintf(src + n, sizeof src - (size_t)n, "\nmask ok = true;");
            snprintf(want, sizeof want, "error: cannot declare '%s'", words[w]);
            sp_build c = {.src = src};
            expect(&c, FM_ERR_COMPILE, want);
        }
    }
    /* Near misses are ordinary names. */
    expect_ok("param Min = 1; let q_len = 2; let kv2 = 3; let True = 4; mask Mask = q >= 0;");
}

/* ---- declarations ------------------------------------------------------- */

/* "param NAME = INT; ... a default (an integer literal, optionally preceded
 * by -, within the signed 64-bit range)". */
static void test_param_defaults(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int64_t value;
    } ok[] = {{"0", 0},
              {"-0", 0},
              {"- 5", -5},
              {"1_024", 1024},
              {"9223372036854775807", INT64_MAX},
              {"-9223372036854775808", INT64_MIN},
              {"-9_223_372_036_854_775_808", INT64_MIN}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char src[128];
        snprintf(src, sizeof src, "param p = %s;\nmask m = q < p || true;", ok[i].text);
        sp_build c = {.src = src};
        sp_result r = sp_run(&c);
        if (r.st != FM_OK) fail_msg("%s: %s", src, r.diags);
        assert_int_equal(fm_mask_param_count(r.mask), 1);
        int64_t v = 0;
        assert_true(fm_mask_param_default(r.mask, 0, &v));
        assert_int_equal(v, ok[i].value);
        sp_result_free(&r);
    }
    expect_compile_error("param p = 9223372036854775808;\nmask m = true;",
                         "1:11: error: integer literal out of the 64-bit range");
    expect_compile_error("param p = --5;\nmask m = true;",
                         "1:12: error: expected an integer, found '-'");
    expect_compile_error("param p = +5;\nmask m = true;",
                         "1:11: error: expected an integer, found '+'");
    expect_compile_error("param p = 2 * 3;\nmask m = true;",
                         "1:13: error: expected ';', found '*'");
}

/* "param NAME; building without a value is an error that names it"; a
 * value given at build time overrides a default; "Only the selected mask and
 * the declarations it uses ... need values". */
static void test_param_values(void **state) {
    (void)state;
    sp_build c = {.src = "param w;\nmask m = q - kv < w;"};
    expect(&c, FM_ERR_BINDING, "t.mask:1:7: error: param 'w' has no default");
    c.params[0] = (sp_param){"w", 3};
    expect(&c, FM_OK, NULL);
    /* The default is only a default. */
    sp_build d = {.src = "param w = 1;\nmask m = w == 7;", .params = {{"w", 7}}};
    assert_true(closed_value(&d));
    /* A param without a default that the selected mask does not reach, not
     * even through a let, another mask or an input's dimension. */
    const char *src = "param n;\nparam w;\ninput doc[n];\nlet far = q - kv < w;\n"
                      "mask uses_all = far && doc[0] == 0;\nmask causal = kv <= q;";
    sp_build e = {.src = src, .mask = "causal"};
    expect(&e, FM_OK, NULL);
    e.mask = "uses_all";
    expect(&e, FM_ERR_BINDING, "param 'n' has no default");
    /* Reached only through the dimension of an input that is read. */
    sp_build f = {.src = "param n;\ninput doc[n];\nmask m = doc[0] == 0;",
                  .inputs = {{"doc", 1, {2}, NULL}}};
    expect(&f, FM_ERR_BINDING, "param 'n' has no default");
    f.params[0] = (sp_param){"n", 2};
    expect(&f, FM_OK, NULL);
}

/* "input NAME[DIM, ...]; int32 array of rank 1 to 4 ... Each DIM is an
 * integer literal, a param, or one of Q_LEN KV_LEN BATCH HEADS; a bound
 * array must have exactly these dimensions". */
static void test_inputs(void **state) {
    (void)state;
    /* Every kind of dimension, rank 4. */
    const char *src = "param n = 3;\ninput t[BATCH, HEADS, n, 2];\n"
                      "mask m = t[b, h, q % n, kv % 2] == 0;";
    sp_build c = {.src = src, .shape = {2, 3, 8, 8}, .inputs = {{"t", 4, {2, 3, 3, 2}, NULL}}};
    expect(&c, FM_OK, NULL);
    /* The same element count in another rank or order is not the same. */
    c.inputs[0] = (sp_input){"t", 3, {6, 3, 2}, NULL};
    expect(&c, FM_ERR_BINDING, "input 't' is bound with shape [6, 3, 2]");
    c.inputs[0] = (sp_input){"t", 4, {3, 2, 3, 2}, NULL};
    expect(&c, FM_ERR_BINDING, "declares shape [2, 3, 3, 2]");
    /* The dimensions follow the shape and the params of the build. */
    c.inputs[0] = (sp_input){"t", 4, {2, 3, 5, 2}, NULL};
    c.params[0] = (sp_param){"n", 5};
    expect(&c, FM_OK, NULL);
    /* An input the mask reads must be bound; one it does not need not be. */
    sp_build d = {.src = "input doc[KV_LEN];\nmask a = doc[kv] == 0;\nmask b2 = kv <= q;"};
    d.mask = "a";
    expect(&d, FM_ERR_BINDING, "doc");
    d.mask = "b2";
    expect(&d, FM_OK, NULL);
    /* "Array reads take exactly as many indices as a has dimensions"; a
     * name that is not declared is an unknown name, read or not. */
    expect_compile_error("input t[4, 4];\nmask m = t[0] == 0;",
                         "2:10: error: 't' has 2 dimensions, but 1 index is given");
    expect_compile_error("mask m = doc[q] == 0;", "1:10: error: unknown name 'doc'");
    expect_compile_error("input t[1, 2, 3, 4, 5];\nmask m = true;",
                         "1:21: error: input 't' has 5 dimensions; at most 4 are allowed");
    expect_compile_error("input t[4, q];\nmask m = true;",
                         "1:12: error: 'q' cannot be a dimension");
}

/* A literal dimension may be 0, like one from a param: an empty array
 * makes every read out of bounds, and a mask that reads none is valid. */
static void test_empty_inputs(void **state) {
    (void)state;
    sp_build c = {.src = "input e[0];\nmask m = kv <= q;"};
    expect(&c, FM_OK, NULL);
    c.src = "input e[0];\nmask m = kv < 0 && e[0] == 0;";
    c.inputs[0] = (sp_input){"e", 1, {0}, NULL};
    expect(&c, FM_OK, NULL);
    c.src = "input e[0];\nmask m = kv < 1 && e[0] == 0;";
    expect(&c, FM_ERR_SAFETY, "t.mask:2:22: error: index 0 of 'e'");
    sp_build d = {.src = "param n = 0;\ninput e[n, 4];\nmask m = kv <= q;"};
    expect(&d, FM_OK, NULL);
    expect_compile_error("input e[4, -2];\nmask m = true;",
                         "1:12: error: dimension of input 'e' cannot be negative, found -2");
}

/* "let NAME = EXPR; ... A use means the expression itself at that place:
 * nothing is evaluated where the use is not reached"; "a mask used inside
 * another is its boolean value at the same (b, h, q, kv)". */
static void test_lets_and_masks(void **state) {
    (void)state;
    const int32_t ids[8] = {0, 0, 1, 1, 1, 2, 2, 2};
    /* Each read or division below breaks a rule at some point, but only
     * where the use of the let or mask is not reached. */
    static const char *const safe[] = {
        "let bad = q / (kv - kv);\nmask m = kv < 0 && bad == 0;",
        "let bad = doc[kv + 1];\nmask m = kv + 1 < KV_LEN && bad == doc[kv];",
        "mask next = doc[kv + 1] == doc[kv];\nmask m = kv == KV_LEN - 1 || next;",
        "let big = 9223372036854775807;\nlet over = q + big;\nmask m = q == 0 ? over > 0 : true;",
        "let bad = doc[q + 100];\nmask m = true;", /* never used at all */
    };
    for (size_t i = 0; i < sizeof safe / sizeof *safe; i++) {
        sp_build c = {.src = safe[i]};
        if (strstr(safe[i], "doc")) {
            char full[256];
            snprintf(full, sizeof full, "input doc[KV_LEN];\n%s", safe[i]);
            c.src = full;
            /* A mask that never reads doc needs no binding (and takes none). */
            if (!strstr(safe[i], "mask m = true")) c.inputs[0] = (sp_input){"doc", 1, {8}, ids};
            expect(&c, FM_OK, NULL);
        } else {
            expect(&c, FM_OK, NULL);
        }
    }
    /* The same uses, reached: refused at the let's or the mask's text. */
    sp_build c = {.src = "input doc[KV_LEN];\nmask next = doc[kv + 1] == doc[kv];\n"
                         "mask m = kv <= q || next;",
                  .inputs = {{"doc", 1, {8}, ids}}};
    expect(&c, FM_ERR_SAFETY, "t.mask:2:17: error: index kv + 1 of 'doc' reaches 8 at q=");
    sp_build d = {.src = "let d = kv - 3;\nmask m = q / d >= 0;"};
    expect2(&d, FM_ERR_SAFETY, "t.mask:2:14: error: divisor 'd' is zero at q=", ", kv=3");
    /* A mask inside another: its value at the same point. */
    sp_build e = {.src = "mask same = doc[q] == doc[kv];\nmask m = kv <= q && same;",
                  .inputs = {{"doc", 1, {8}, ids}}};
    char full[160];
    snprintf(full, sizeof full, "input doc[KV_LEN];\n%s", e.src);
    e.src = full;
    sp_result r = sp_run(&e);
    assert_int_equal(r.st, FM_OK);
    for (int64_t q = 0; q < 8; q++)
        for (int64_t kv = 0; kv < 8; kv++) {
            bool v;
            assert_int_equal(fm_blockmask_eval(r.bm, 0, 0, q, kv, &v), FM_OK);
            assert_int_equal(v, kv <= q && ids[q] == ids[kv]);
        }
    sp_result_free(&r);
}

/* "Tools and the C API pick a mask by name; with no name given they take
 * the last mask in the file"; a let is not a mask. */
static void test_mask_selection(void **state) {
    (void)state;
    sp_build c = {.src =
                      "mask yes = true;\nlet no = false;\nmask last = false;\nlet after = true;"};
    assert_false(closed_value(&c));
    c.mask = "yes";
    assert_true(closed_value(&c));
    c.mask = "no";
    expect(&c, FM_ERR_NOT_FOUND, "no mask named 'no'");
    c.mask = "after";
    expect(&c, FM_ERR_NOT_FOUND, "no mask named 'after'");
    /* A typo of a mask's name gets the name back as a hint. */
    c.mask = "lsat";
    expect2(&c, FM_ERR_NOT_FOUND, "no mask named 'lsat' (the file declares 'yes', 'last')",
            "hint: did you mean 'last'?");
}

/* "A name may be used only after its declaration, and declared once",
 * dimensions included. */
static void test_order_and_uniqueness(void **state) {
    (void)state;
    expect_compile_error("input d[n];\nparam n = 3;\nmask m = true;",
                         "1:9: error: 'n' is used before its declaration");
    expect_compile_error("mask a = b2;\nmask b2 = true;",
                         "1:10: error: 'b2' is used before its declaration");
    expect_compile_error("mask m = true;\nmask m = false;", "2:6: error: 'm' is already declared");
    expect_compile_error("input d[4];\nparam d = 1;\nmask m = true;",
                         "2:7: error: 'd' is already declared");
    expect_compile_error("let x = x;\nmask m = true;",
                         "1:9: error: 'x' is used in its own declaration");
}

/* ---- expressions ---------------------------------------------------------- */

/* The precedence table, associativity, and "?: is right-associative":
 * each expression is true under the specified reading and false or
 * ill-typed under another. */
static void test_precedence(void **state) {
    (void)state;
    static const char *const truths[] = {
        "(true || false && false) == true", /* && binds tighter than || */
        "(false && true || true) == true",
        "(true ? false : true ? false : true) == false", /* a ? b : (c ? d : e) */
        "(true ? 1 : 2 + 3) == 1",                       /* ?: is the loosest */
        "(false || true ? 1 : 2) == 1",                  /* the condition is the whole || */
        "(1 < 2 == 2 < 3) == true",                      /* < binds tighter than == */
        "(1 == 1 == true) == true",                      /* == is left-associative */
        "-2 * 3 == -6 && -7 / 2 == -4",                  /* unary - binds tighter than * and / */
        "1 + 2 * 3 == 7 && 10 - 3 - 2 == 5",
        "100 / 10 / 5 == 2 && 2 * 7 % 4 == 2", /* * / % left to right */
        "7 - -2 == 9 && - -3 == 3 && !!true",
        "min(2, 3) * 2 == 4 && -abs(-3) == -3",
    };
    for (size_t i = 0; i < sizeof truths / sizeof *truths; i++) {
        char src[256];
        snprintf(src, sizeof src, "mask m = %s;", truths[i]);
        sp_build c = {.src = src};
        if (!closed_value(&c)) fail_msg("false: %s", truths[i]);
    }
    /* On bools the two readings of !a == b agree; on ints only one types. */
    expect_compile_error("mask m = !1 == 2;",
                         "1:11: error: operand of '!' must be bool, found int");
    expect_compile_error(
        "mask m = 1 == (1 == true);",
        "1:16: error: operands of '==' must have the same type, found int and bool");
    /* The same at run time (params are not folded when compiling). */
    sp_build c = {.src = "param t = 1; param f = 0;\nlet T = t == 1; let F = f == 1;\n"
                         "mask m = (T || F && F) && (T ? F : T ? F : T) == F && "
                         "(t < 2 == 2 < 3) && (T == F == F) && (-t * 3 == -3) && "
                         "t - -t == 2 && (T ? 1 : t + 3) == 1;"};
    assert_true(closed_value(&c));
}

/* "< <= > >= ... not chainable: a < b < c is an error"; == between two
 * comparisons is not a chain. */
static void test_comparisons_do_not_chain(void **state) {
    (void)state;
    expect_compile_error("mask m = 0 < kv > 10;", "1:10: error: comparisons do not chain");
    expect_compile_error("mask m = 0 <= q <= kv <= 10;", "1:10: error: comparisons do not chain");
    expect_compile_error("mask m = kv < q == true < false;",
                         "1:20: error: operand of '<' must be int, found bool");
    expect_ok("mask m = kv < q == q > kv && (kv <= q) != (kv > q);");
}

/* "Nothing converts implicitly" for every operator, argument and branch. */
static void test_no_implicit_conversion(void **state) {
    (void)state;
    expect_compile_error("mask m = !(q - kv) ;",
                         "1:11: error: operand of '!' must be bool, found int");
    expect_compile_error("mask m = q + (kv < 2) > 0;",
                         "1:14: error: operand of '+' must be int, found bool");
    expect_compile_error("mask m = abs(q < kv) > 0;",
                         "1:14: error: argument of 'abs' must be int, found bool");
    expect_compile_error("mask m = (q < kv ? true : 1) ;",
                         "1:20: error: branches of '?:' have different types: bool and int");
    expect_compile_error("let x = q < kv;\nmask m = x * 2 > 0;",
                         "2:10: error: operand of '*' must be int, found bool");
    expect_compile_error("mask a = true;\nmask m = a + 1 > 0;",
                         "2:10: error: operand of '+' must be int, found bool");
    expect_compile_error(
        "mask m = true != 1;",
        "1:10: error: operands of '!=' must have the same type, found bool and int");
}

/* ---- integer semantics ---------------------------------------------------- */

/* Floor division and remainder ("-7 / 2 == -4, -7 % 2 == 1, 7 % -2 == -1;
 * x % -1 == 0 for every x"), overflow ("no value may leave the signed
 * 64-bit range (so x / -1 with x the smallest 64-bit value is refused)"),
 * min, max and abs, at the edges of the range: folded when written as
 * literals, and at build time when the operands are params. */
static void test_arithmetic_edges(void **state) {
    (void)state;
    static const int64_t v[] = {
        INT64_MIN, INT64_MIN + 1,       -4611686018427387904, -7,       -2, -1, 0, 1, 2,
        7,         4611686018427387904, INT64_MAX - 1,        INT64_MAX};
    static const char ops[] = "+-*/%nam";
    static const char *const spell[] = {"x + y", "x - y", "x * y",  "x / y",
                                        "x % y", "-x",    "abs(x)", "min(x, y)"};
    const size_t nv = sizeof v / sizeof *v;
    int refused = 0, built = 0;
    for (size_t o = 0; o < strlen(ops); o++) {
        for (size_t i = 0; i < nv; i++) {
            for (size_t j = 0; j < nv; j++) {
                bool unary = ops[o] == 'n' || ops[o] == 'a';
                if (unary && j > 0) break;
                int64_t want = 0;
                bool ok = ref_arith(ops[o], v[i], v[j], &want);
                /* At build time: x, y and the expected value are params. */
                char src[160];
                snprintf(src, sizeof src, "param x; param y; param e;\nmask m = %s == e || y == y;",
                         spell[o]);
                sp_build c = {.src = src, .params = {{"x", v[i]}, {"y", v[j]}, {"e", want}}};
                sp_result r = sp_run(&c);
                if ((r.st == FM_OK) != ok || (!ok && r.st != FM_ERR_SAFETY))
                    fail_msg("%s with x=%" PRId64 ", y=%" PRId64 ": %s, expected %s\n%s", spell[o],
                             v[i], v[j], fm_status_string(r.st), ok ? "ok" : "a refusal", r.diags);
                if (ok) {
                    bool val = false;
                    assert_int_equal(fm_blockmask_eval(r.bm, 0, 0, 0, 0, &val), FM_OK);
                    if (!val)
                        fail_msg("%s with x=%" PRId64 ", y=%" PRId64 " is not %" PRId64, spell[o],
                                 v[i], v[j], want);
                    built++;
                } else {
                    const char *what = ops[o] == '/' || ops[o] == '%'
                                           ? (v[j] == 0 ? "is zero at" : "overflows 64 bits")
                                           : "overflows 64 bits";
                    if (!strstr(r.diags, what)) fail_msg("%s: %s", spell[o], r.diags);
                    refused++;
                }
                sp_result_free(&r);
                /* Folded when compiling: the same value, or a compile error. */
                char lit[2][32];
                for (int k = 0; k < 2; k++)
                    snprintf(lit[k], sizeof lit[k], "%s%" PRId64 "%s",
                             (k ? v[j] : v[i]) < 0 ? "(" : "", k ? v[j] : v[i],
                             (k ? v[j] : v[i]) < 0 ? ")" : "");
                char expr[128];
                switch (ops[o]) {
                case 'n': snprintf(expr, sizeof expr, "-%s", lit[0]); break;
                case 'a': snprintf(expr, sizeof expr, "abs(%s)", lit[0]); break;
                case 'm': snprintf(expr, sizeof expr, "min(%s, %s)", lit[0], lit[1]); break;
                default: snprintf(expr, sizeof expr, "%s %c %s", lit[0], ops[o], lit[1]);
                }
                snprintf(src, sizeof src, "param e;\nmask m = %s == e;", expr);
                sp_build f = {.src = src, .params = {{"e", want}}};
                r = sp_run(&f);
                if (ok && r.st != FM_OK) fail_msg("%s: %s", expr, r.diags);
                if (!ok && r.st != FM_ERR_COMPILE) fail_msg("%s compiles: %s", expr, r.diags);
                if (ok) {
                    bool val = false;
                    assert_int_equal(fm_blockmask_eval(r.bm, 0, 0, 0, 0, &val), FM_OK);
                    if (!val) fail_msg("%s does not fold to %" PRId64, expr, want);
                }
                sp_result_free(&r);
            }
        }
    }
    /* Both outcomes, many times each. */
    assert_true(refused > 50 && built > 200);
    /* max, by the identity max(x, y) == -min(-x, -y) away from the edge. */
    sp_build c = {.src = "param x; param y;\nmask m = max(x, y) >= x && max(x, y) >= y && "
                         "(max(x, y) == x || max(x, y) == y);"};
    for (size_t i = 0; i < nv; i++)
        for (size_t j = 0; j < nv; j++) {
            c.params[0] = (sp_param){"x", v[i]};
            c.params[1] = (sp_param){"y", v[j]};
            assert_true(closed_value(&c));
        }
}

/* "Integer literals: decimal digits" within 64 bits; only the negation
 * written directly before 9223372036854775808 makes it a value. */
static void test_literal_range(void **state) {
    (void)state;
    sp_build c = {.src = "mask m = 9223372036854775807 > 0 && -9223372036854775808 < 0 && "
                         "- 9223372036854775808 < -9223372036854775807;"};
    assert_true(closed_value(&c));
    expect_compile_error("mask m = q < 9223372036854775808;",
                         "1:14: error: integer literal out of the 64-bit range");
    expect_compile_error("mask m = q < -(9223372036854775808);",
                         "1:15: error: integer literal out of the 64-bit range");
    expect_compile_error("mask m = q < -9223372036854775809;",
                         "1:14: error: integer literal out of the 64-bit range");
    expect_compile_error(
        "mask m = q < --9223372036854775808;",
        "1:14: error: integer overflow: -(-9223372036854775808) is out of the 64-bit range");
    expect_compile_error("mask m = q < 0 - 9223372036854775808;",
                         "1:18: error: integer literal out of the 64-bit range");
}

/* ---- safety rules ------------------------------------------------------------ */

/* "The build fails if and only if some point breaks a rule"; "the error
 * names the file, line and column of the offending expression and one
 * point that breaks it"; a rule broken only for one shape or one param
 * value refuses only that build. */
static void test_safety_per_build(void **state) {
    (void)state;
    sp_build c = {.src = "input doc[KV_LEN];\nmask m = doc[q] >= 0;",
                  .shape = {1, 1, 8, 8},
                  .inputs = {{"doc", 1, {8}, NULL}}};
    expect(&c, FM_OK, NULL);
    c.shape.q_len = 9;
    expect(&c, FM_ERR_SAFETY, "t.mask:2:14: error: index q of 'doc' reaches 8 at q=8, kv=");
    sp_build d = {.src = "param chunk = 4;\nmask m = q / chunk == kv / chunk;"};
    expect(&d, FM_OK, NULL);
    d.params[0] = (sp_param){"chunk", 0};
    expect(&d, FM_ERR_SAFETY, "t.mask:2:14: error: divisor 'chunk' is zero at q=");
    d.params[0] = (sp_param){"chunk", -3};
    expect(&d, FM_OK, NULL);
    /* With several batches and heads the point names b and h too. */
    sp_build e = {.src = "mask m = kv % (h - 1) == 0;", .shape = {2, 3, 4, 4}};
    expect2(&e, FM_ERR_SAFETY, "t.mask:1:15: error: modulus 'h - 1' is zero at b=", ", h=1, q=");
    /* Overflow only at the last query of a long shape: found, not guessed. */
    char src[128];
    snprintf(src, sizeof src, "param big = %" PRId64 ";\nmask m = q * big >= 0;", INT64_MAX / 1000);
    sp_build f = {.src = src, .shape = {1, 1, 1000, 16}, .block = 64};
    expect(&f, FM_OK, NULL);
    f.shape.q_len = 1002;
    expect(&f, FM_ERR_SAFETY, "t.mask:2:10: error: 'q * big' overflows 64 bits at q=1001, kv=");
}

/* "?: ... do not evaluate what cannot matter": the branch not taken; the
 * condition is always evaluated, even when both branches are the same
 * expression (lowering once dropped it then, and with it the check of a
 * division or a read inside it). */
static void test_condition_always_evaluated(void **state) {
    (void)state;
    static const char *const refused[] = {
        "mask m = (q / (kv - kv) > 0 ? q : q) >= 0;",
        "mask m = q / (kv - kv) > 0 ? true : true;",
        "let c = q % (kv - kv) == 0;\nmask m = c ? kv <= q : kv <= q;",
        "input a[KV_LEN];\nmask m = (a[kv + 1] > 0 ? 1 : 1) == 1;",
        "param big = 9223372036854775807;\nmask m = (q + big > 0 ? h : h) == 0;",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        sp_build c = {.src = refused[i], .inputs = {{"a", 1, {8}, NULL}}};
        if (!strstr(refused[i], "input")) c.inputs[0].name = NULL;
        expect(&c, FM_ERR_SAFETY, NULL);
    }
    /* Guarded, the same conditions are fine. */
    expect_ok("mask m = kv != 0 && (q / kv > 0 ? q : q) >= 0;");
    expect_ok("mask m = q + 0 == q ? true : true;");
}

/* "A program that is wrong for every shape (a type error, an unknown name,
 * a division by the literal 0) is rejected when it is compiled", even on a
 * branch never taken and in a let never used. */
static void test_wrong_for_every_shape(void **state) {
    (void)state;
    expect_compile_error("mask m = false && q / 0 == 0;", "1:23: error: division by zero");
    expect_compile_error("let unused = kv % (2 - 2);\nmask m = true;",
                         "1:19: error: modulo by zero");
    expect_compile_error("mask m = true || nothere;", "1:18: error: unknown name 'nothere'");
    expect_compile_error("mask m = true || q;",
                         "1:18: error: operand of '||' must be bool, found int");
}

/* "No mask file, however malformed, may ... hang [a tool]": lets used
 * under ever more guards double the lowered program at each level. Sixteen
 * levels once took a minute and a half to lower (every emission scanned
 * all earlier instances of the same read), and forty stopped at the
 * lowering limit after seconds; now each let is lowered once, under the OR
 * of its uses' guards, and both lower at once. */
static void test_let_blowup_is_bounded(void **state) {
    (void)state;
    for (int levels = 16; levels <= 40; levels += 24) {
        char src[4096];
        size_t n = (size_t)snprintf(src, sizeof src, "input a[KV_LEN];\nlet l0 = a[kv] > 0;\n");
        for (int i = 1; i < levels; i++)
            n += (size_t)snprintf(src + n, sizeof src - n,
                                  "let l%d = (q > %d && l%d) || (kv > %d && l%d);\n", i, i, i - 1,
                                  i, i - 1);
        snprintf(src + n, sizeof src - n, "mask m = l%d;\n", levels - 1);
        fm_program *prog = NULL;
        fm_mask *m = NULL;
        fm_diagnostics *d = fm_diagnostics_create();
        assert_int_equal(fm_compile_string("t.mask", src, strlen(src), d, &prog), FM_OK);
        fm_status st = fm_mask_select(prog, NULL, d, &m);
        assert_int_equal(st, FM_OK);
        fm_mask_free(m);
        fm_program_free(prog);
        fm_diagnostics_free(d);
    }
}

/* ---- BlockMask semantics -------------------------------------------------------- */

/* "full when the mask is true at every position inside it and the tile is
 * not clipped"; "empty when false at every position"; "partial
 * otherwise"; broadcast "where the selected mask, after constant folding,
 * never reads b (or h) ... through an input read, lets and masks". */
static void test_tiles_and_broadcast(void **state) {
    (void)state;
    /* 10 x 10 with 4 x 4 tiles: the last row and column are clipped. */
    sp_build c = {.src = "mask m = true;", .shape = {2, 3, 10, 10}};
    sp_result r = sp_run(&c);
    assert_int_equal(r.st, FM_OK);
    fm_blockmask_info in;
    assert_int_equal(fm_blockmask_get_info(r.bm, &in), FM_OK);
    /* Counted over every batch and head, stored once. */
    assert_int_equal(in.full_tiles, 2 * 3 * 4);
    assert_int_equal(in.partial_tiles, 2 * 3 * 5);
    assert_int_equal(in.empty_tiles, 0);
    assert_true(in.broadcast_batch && in.broadcast_heads);
    sp_result_free(&r);
    c.src = "mask m = q < 8 && kv < 8;"; /* the clipped tiles hold no true position */
    r = sp_run(&c);
    assert_int_equal(fm_blockmask_get_info(r.bm, &in), FM_OK);
    assert_int_equal(in.full_tiles, 2 * 3 * 4);
    assert_int_equal(in.partial_tiles, 0);
    assert_int_equal(in.empty_tiles, 2 * 3 * 5);
    sp_result_free(&r);
    static const struct {
        const char *src;
        bool batch, heads; /* broadcast */
    } bc[] = {
        {"mask m = true || b == 0;", true, true},
        {"mask m = false && h == 1 || kv <= q;", true, true},
        {"let x = b;\nmask n = h == 0;\nmask m = kv <= q;", true, true},
        {"input t[BATCH, HEADS];\nmask m = kv < t[0, 1] + BATCH + HEADS;", true, true},
        {"input t[BATCH, HEADS];\nmask m = kv < t[b, 1];", false, true},
        {"let x = h;\nmask n = x == 0;\nmask m = n || kv <= q;", true, false},
    };
    for (size_t i = 0; i < sizeof bc / sizeof *bc; i++) {
        sp_build k = {.src = bc[i].src, .shape = {2, 3, 8, 8}, .inputs = {{"t", 2, {2, 3}, NULL}}};
        if (!strstr(k.src, "input")) k.inputs[0].name = NULL;
        r = sp_run(&k);
        if (r.st != FM_OK) fail_msg("%s: %s", bc[i].src, r.diags);
        assert_int_equal(fm_blockmask_get_info(r.bm, &in), FM_OK);
        if (in.broadcast_batch != bc[i].batch || in.broadcast_heads != bc[i].heads ||
            fm_mask_reads_batch(r.mask) == bc[i].batch ||
            fm_mask_reads_heads(r.mask) == bc[i].heads)
            fail_msg("%s: broadcast batch %d heads %d", bc[i].src, in.broadcast_batch,
                     in.broadcast_heads);
        sp_result_free(&r);
    }
}

/* ---- against the reference evaluator (spec_ref.h) ------------------------------ */

/* Edge values a param may take in the random builds. */
static int64_t random_param(tu_rng *r, int64_t dflt) {
    static const int64_t edges[] = {INT64_MIN,
                                    INT64_MAX,
                                    INT64_MIN + 1,
                                    INT64_MAX - 1,
                                    4611686018427387904,
                                    -4611686018427387904,
                                    3037000500,
                                    -3037000500,
                                    2147483648,
                                    0,
                                    -1,
                                    1};
    if (tu_rng_range(r, 0, 2)) return dflt;
    return edges[tu_rng_range(r, 0, (int64_t)(sizeof edges / sizeof *edges) - 1)];
}

static void random_data(tu_rng *r, int32_t *x, int64_t n) {
    mg_fill(r, x, n);
    if (tu_rng_range(r, 0, 4) == 0)
        for (int64_t i = 0; i < n; i++)
            if (tu_rng_range(r, 0, 5) == 0) x[i] = tu_rng_range(r, 0, 1) ? INT32_MAX : INT32_MIN;
}

typedef struct ref_stats {
    int cases, refused, built;
} ref_stats;

static void reference_case(tu_rng *r, ref_stats *st) {
    char *src = mg_program(r, (int)tu_rng_range(r, 20, 95), NULL);
    /* The public path. */
    fm_diagnostics *diags = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_status s = fm_compile_string("r.mask", src, strlen(src), diags, &prog);
    if (s == FM_ERR_COMPILE) {
        /* The generator may write a divisor that folds to 0; the language
         * refuses that when compiling, wherever it sits. */
        char *text = fm_diagnostics_format(diags, false);
        if (!strstr(text, "by zero")) fail_msg("%s does not compile:\n%s", src, text);
        fm_free(text);
        fm_diagnostics_free(diags);
        free(src);
        return;
    }
    assert_int_equal(s, FM_OK);
    /* The reference's own tree of the same text. */
    fmd_diags fd;
    fmd_diags_init(&fd);
    fmd_program *ast = fmd_parse(fmd_source_new("r.mask", src, strlen(src)), &fd);
    assert_non_null(ast);
    assert_true(fmd_check(ast, &fd));
    const fmd_decl *mask = NULL;
    int64_t params[8] = {0};
    size_t nparams = 0, ninputs = 0;
    for (size_t i = 0; i < ast->count; i++) {
        const fmd_decl *d = ast->decls[i];
        if (d->kind == FMD_DECL_MASK) mask = d;
        if (d->kind == FMD_DECL_PARAM) params[nparams++] = random_param(r, d->default_value);
        if (d->kind == FMD_DECL_INPUT) ninputs++;
    }
    assert_true(nparams <= 8 && ninputs <= 8);
    fm_mask *m = NULL;
    assert_int_equal(fm_mask_select(prog, NULL, diags, &m), FM_OK);
    fm_bindings *bind = NULL;
    assert_int_equal(fm_bindings_create(m, &bind), FM_OK);
    ref_world w = {.B = tu_rng_range(r, 1, 2),
                   .H = tu_rng_range(r, 1, 3),
                   .Q = tu_rng_range(r, 1, 24),
                   .params = params};
    w.KV = tu_rng_range(r, 0, 1) ? w.Q : tu_rng_range(r, 1, 24);
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = tu_rng_range(r, 1, 9), .block_kv = tu_rng_range(r, 1, 9)};
    if (tu_rng_range(r, 0, 7) == 0) {
        /* Larger tiles, where the analysis settles regions inside a tile. */
        w.B = w.H = 1;
        w.Q = tu_rng_range(r, 20, 130);
        w.KV = tu_rng_range(r, 0, 1) ? w.Q : tu_rng_range(r, 20, 130);
        opts.block_q = tu_rng_range(r, 16, 70);
        opts.block_kv = tu_rng_range(r, 16, 70);
    }
    int32_t *data[8] = {NULL};
    w.data = (const int32_t *const *)data;
    /* Bind what the mask says it reaches; the reference notices if the
     * mask reaches anything else. */
    for (size_t i = 0; i < ast->count; i++) {
        const fmd_decl *d = ast->decls[i];
        bool reached = false;
        if (d->kind == FMD_DECL_PARAM) {
            for (size_t k = 0; k < fm_mask_param_count(m); k++)
                reached |= !strcmp(fm_mask_param_name(m, k), d->name);
            if (reached)
                assert_int_equal(fm_bindings_set_param(bind, d->name, params[d->index], diags),
                                 FM_OK);
        }
        if (d->kind != FMD_DECL_INPUT) continue;
        for (size_t k = 0; k < fm_mask_input_count(m); k++)
            reached |= !strcmp(fm_mask_input_name(m, k), d->name);
        if (!reached) continue;
        int64_t dims[FMD_MAX_RANK], n = 1;
        for (size_t k = 0; k < d->rank; k++)
            n *= dims[k] = ref_dim(&w, &d->dims[k]);
        data[d->index] = malloc((size_t)n * sizeof(int32_t));
        random_data(r, data[d->index], n);
        assert_int_equal(
            fm_bindings_set_input(bind, d->name, data[d->index], d->rank, dims, FM_BORROW, diags),
            FM_OK);
    }
    fm_shape shape = {w.B, w.H, w.Q, w.KV};
    fm_blockmask *bm = NULL;
    s = fm_blockmask_build(m, bind, shape, &opts, diags, &bm);
    /* The reference, at every point. */
    size_t npts = (size_t)(w.B * w.H * w.Q * w.KV);
    uint8_t *val = malloc(npts);
    bool violation = false;
    int64_t vpt[4] = {0};
    size_t at = 0;
    for (w.pt[0] = 0; w.pt[0] < w.B; w.pt[0]++)
        for (w.pt[1] = 0; w.pt[1] < w.H; w.pt[1]++)
            for (w.pt[2] = 0; w.pt[2] < w.Q; w.pt[2]++)
                for (w.pt[3] = 0; w.pt[3] < w.KV; w.pt[3]++) {
                    int64_t v = 0;
                    if (!ref_eval(&w, mask->expr, &v) && !violation) {
                        violation = true;
                        memcpy(vpt, w.pt, sizeof vpt);
                    }
                    val[at++] = v != 0;
                }
    char *text = fm_diagnostics_format(diags, false);
    if (w.read_unbound) fail_msg("%s\nreaches an input that fm_mask_input_name does not list", src);
    if (violation != (s == FM_ERR_SAFETY) || (!violation && s != FM_OK))
        fail_msg("%s\nshape %lld %lld %lld %lld: the reference %s (first at b=%lld h=%lld q=%lld "
                 "kv=%lld); the build gives %s:\n%s",
                 src, (long long)w.B, (long long)w.H, (long long)w.Q, (long long)w.KV,
                 violation ? "finds a violation" : "finds none", (long long)vpt[0],
                 (long long)vpt[1], (long long)vpt[2], (long long)vpt[3], fm_status_string(s),
                 text);
    if (s == FM_OK) {
        /* Every tile classified as the specification defines it. */
        fm_blockmask_info in;
        assert_int_equal(fm_blockmask_get_info(bm, &in), FM_OK);
        int64_t bq = opts.block_q, bkv = opts.block_kv, counts[3] = {0};
        for (int64_t b = 0; b < w.B; b++)
            for (int64_t h = 0; h < w.H; h++)
                for (int64_t i = 0; i < in.num_q_blocks; i++) {
                    const int32_t *full, *part;
                    int64_t nf, np;
                    assert_int_equal(fm_blockmask_row(bm, b, h, i, &full, &nf, &part, &np), FM_OK);
                    for (int64_t j = 0; j < in.num_kv_blocks; j++) {
                        int64_t q1 = (i + 1) * bq, k1 = (j + 1) * bkv, t = 0, n = 0;
                        bool clipped = q1 > w.Q || k1 > w.KV;
                        for (int64_t q = i * bq; q < q1 && q < w.Q; q++)
                            for (int64_t kv = j * bkv; kv < k1 && kv < w.KV; kv++, n++)
                                t += val[((b * w.H + h) * w.Q + q) * w.KV + kv];
                        int want = t == 0 ? 0 : t == n && !clipped ? 2 : 1, got = 0;
                        for (int64_t k = 0; k < nf; k++)
                            got = full[k] == j ? 2 : got;
                        for (int64_t k = 0; k < np; k++)
                            got = part[k] == j ? 1 : got;
                        if (got != want)
                            fail_msg("%s\ntile b=%lld h=%lld (%lld, %lld) is %d, should be %d", src,
                                     (long long)b, (long long)h, (long long)i, (long long)j, got,
                                     want);
                        counts[want]++;
                    }
                }
        assert_int_equal(in.empty_tiles, counts[0]);
        assert_int_equal(in.partial_tiles, counts[1]);
        assert_int_equal(in.full_tiles, counts[2]);
        st->built++;
    } else {
        st->refused++;
    }
    st->cases++;
    fm_free(text);
    free(val);
    for (int i = 0; i < 8; i++)
        free(data[i]);
    fm_blockmask_free(bm);
    fm_bindings_free(bind);
    fm_mask_free(m);
    fm_program_free(prog);
    fm_diagnostics_free(diags);
    fmd_program_free(ast);
    fmd_diags_clear(&fd);
    free(src);
}

static void test_reference_evaluator(void **state) {
    (void)state;
    tu_rng r = {0x5bec1f1ed};
    ref_stats st = {0};
    int n = tu_full_run() ? 100000 : tu_cases(4000);
    for (int i = 0; i < n; i++)
        reference_case(&r, &st);
    printf("reference evaluator: %d programs, %d built, %d refused\n", st.cases, st.built,
           st.refused);
    /* Both outcomes, often. */
    assert_true(st.built > st.cases / 2 && st.refused > st.cases / 30);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_columns_count_bytes),
        cmocka_unit_test(test_reserved_words),
        cmocka_unit_test(test_param_defaults),
        cmocka_unit_test(test_param_values),
        cmocka_unit_test(test_inputs),
        cmocka_unit_test(test_empty_inputs),
        cmocka_unit_test(test_lets_and_masks),
        cmocka_unit_test(test_mask_selection),
        cmocka_unit_test(test_order_and_uniqueness),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_comparisons_do_not_chain),
        cmocka_unit_test(test_no_implicit_conversion),
        cmocka_unit_test(test_arithmetic_edges),
        cmocka_unit_test(test_literal_range),
        cmocka_unit_test(test_safety_per_build),
        cmocka_unit_test(test_condition_always_evaluated),
        cmocka_unit_test(test_wrong_for_every_shape),
        cmocka_unit_test(test_let_blowup_is_bounded),
        cmocka_unit_test(test_tiles_and_broadcast),
        cmocka_unit_test(test_reference_evaluator),
    };
    return TU_RUN(tests, argc, argv);
}
