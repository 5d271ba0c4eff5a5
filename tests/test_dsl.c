/* The language front end: lexer, parser, checker, printer, fmc check/print. */
#define _POSIX_C_SOURCE 200809L
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsl/ast.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------- */

/* Parses and checks text; the program (NULL only when out of memory) and
 * whether it is free of errors. */
static fmd_program *compile(const char *text, size_t len, fmd_diags *d, bool *ok) {
    fmd_diags_init(d);
    fmd_source *src = fmd_source_new("t.mask", text, len);
    assert_non_null(src);
    fmd_program *p = fmd_parse(src, d);
    assert_non_null(p);
    *ok = fmd_check(p, d) && d->errors == 0;
    return p;
}

static char *render(fmd_diags *d, bool json) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    fmd_diags_sort(d, 0);
    fmd_diags_render(d, f, json);
    fclose(f);
    return buf;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A growable string for generated sources. */
typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void add(text *t, const char *s) {
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
    }
    memcpy(t->s + t->len, s, n + 1);
    t->len += n;
}

static void add_repeat(text *t, const char *s, size_t times) {
    for (size_t i = 0; i < times; i++)
        add(t, s);
}

/* ---- (a) malformed files, exact diagnostics ---------------------------- */

typedef struct bad_case {
    const char *name;
    const char *src;
    size_t len;
    const char *expected;
} bad_case;

#define BAD(name, src, expected)                                                                   \
    { name, src, sizeof(src) - 1, expected }
static const bad_case bad_cases[] = {
#include "dsl_cases.h"
};

static void test_malformed_table(void **state) {
    (void)state;
    size_t n = sizeof bad_cases / sizeof *bad_cases, failures = 0;
    assert_true(n >= 45);
    for (size_t i = 0; i < n; i++) {
        const bad_case *c = &bad_cases[i];
        fmd_diags d;
        bool ok;
        fmd_program *p = compile(c->src, c->len, &d, &ok);
        char *got = render(&d, false);
        if (ok || strcmp(got, c->expected)) {
            failures++;
            print_message("case %s:\n--- expected\n%s--- got (%s)\n%s", c->name, c->expected,
                          ok ? "accepted" : "rejected", got);
        }
        free(got);
        fmd_diags_clear(&d);
        fmd_program_free(p);
    }
    assert_int_equal(failures, 0);
}

/* Independent errors are all reported, up to the limit, then a note. */
static void test_error_limit(void **state) {
    (void)state;
    text t = {0};
    for (int i = 0; i < 30; i++)
        add(&t, "mask m = q < nothere;\n");
    fmd_diags d;
    bool ok;
    fmd_program *p = compile(t.s, t.len, &d, &ok);
    assert_false(ok);
    assert_int_equal(d.count, FMD_DEFAULT_MAX_ERRORS);
    assert_true(d.truncated);
    char *out = render(&d, false);
    assert_non_null(strstr(out, "error: too many errors (20 shown); stopping\n"));
    free(out);
    fmd_diags_clear(&d);
    fmd_program_free(p);
    free(t.s);
}

/* ---- (b) constant folding --------------------------------------------- */

typedef struct fold_case {
    const char *expr;
    int64_t value;
} fold_case;

static const fold_case folds[] = {
    {"-7 / 2", -4},
    {"-7 % 2", 1},
    {"7 % -2", -1},
    {"7 / -2", -4},
    {"-7 / -2", 3},
    {"-7 % -2", -1},
    {"7 / 2", 3},
    {"7 % 2", 1},
    {"-6 / 3", -2},
    {"-6 % 3", 0},
    {"0 / -5", 0},
    {"0 % -5", 0},
    {"1 / 3", 0},
    {"-1 / 3", -1},
    {"-1 % 3", 2},
    {"7 % -1", 0},
    {"-7 % -1", 0},
    {"-9223372036854775808 % -1", 0},
    {"9223372036854775807 % -1", 0},
    {"-9223372036854775808 / 1", INT64_MIN},
    {"-9223372036854775808", INT64_MIN},
    {"9223372036854775807", INT64_MAX},
    {"131_072", 131072},
    {"1 + 2 * 3", 7},
    {"(1 + 2) * 3", 9},
    {"10 - 3 - 2", 5},
    {"10 - (3 - 2)", 9},
    {"100 / 10 / 5", 2},
    {"-(-5)", 5},
    {"abs(-3)", 3},
    {"min(3, -4)", -4},
    {"max(3, -4)", 3},
    {"2 < 3", 1},
    {"3 <= 2", 0},
    {"true && false", 0},
    {"false || true", 1},
    {"!true", 0},
    {"1 == 1 == true", 1},
    {"1 != 1", 0},
    {"true ? 11 : 22", 11},
    {"2 > 3 ? 11 : 22", 22},
};

static void test_fold_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof folds / sizeof *folds; i++) {
        char src[160];
        snprintf(src, sizeof src, "let x = %s;\nmask m = true;\n", folds[i].expr);
        fmd_diags d;
        bool ok;
        fmd_program *p = compile(src, strlen(src), &d, &ok);
        if (!ok) print_message("%s: %s", folds[i].expr, d.count ? d.items[0].message : "?");
        assert_true(ok);
        fmd_expr *e = fmd_program_find(p, "x")->expr;
        if (!e->is_const || e->const_value != folds[i].value)
            print_message("%s: got %s%" PRId64 "\n", folds[i].expr,
                          e->is_const ? "" : "non-constant ", e->const_value);
        assert_true(e->is_const);
        assert_int_equal(e->const_value, folds[i].value);
        fmd_diags_clear(&d);
        fmd_program_free(p);
    }
}

/* Only literal arithmetic folds: names (even of constant lets) do not. */
static void test_fold_only_literals(void **state) {
    (void)state;
    const char *src =
        "param w = 4;\nlet x1 = 3;\nlet x2 = x1 + 1;\nlet x3 = w * 2;\nlet x4 = q / 2;\n"
        "mask m = x2 < x3 && x4 < 1;\n";
    fmd_diags d;
    bool ok;
    fmd_program *p = compile(src, strlen(src), &d, &ok);
    assert_true(ok);
    assert_true(fmd_program_find(p, "x1")->expr->is_const);
    assert_false(fmd_program_find(p, "x2")->expr->is_const);
    assert_false(fmd_program_find(p, "x3")->expr->is_const);
    assert_false(fmd_program_find(p, "x4")->expr->is_const);
    assert_int_equal(fmd_program_find(p, "x2")->type, FMD_TYPE_INT);
    assert_int_equal(fmd_program_find(p, "m")->type, FMD_TYPE_BOOL);
    fmd_diags_clear(&d);
    fmd_program_free(p);
}

/* The spec's definition, checked against the library for every small pair:
 * n == d * q + r, with r zero or of the sign of d and |r| < |d|. */
static void test_floor_division_property(void **state) {
    (void)state;
    for (int64_t n = -40; n <= 40; n++) {
        for (int64_t dv = -9; dv <= 9; dv++) {
            if (dv == 0) continue;
            int64_t q = fmd_floordiv(n, dv), r = fmd_floormod(n, dv);
            assert_int_equal(n, dv * q + r);
            assert_true(r == 0 || (r < 0) == (dv < 0));
            assert_true(llabs(r) < llabs(dv));
        }
    }
    assert_int_equal(fmd_floormod(INT64_MIN, -1), 0);
    assert_int_equal(fmd_floordiv(INT64_MIN, 2), INT64_MIN / 2);
    assert_int_equal(fmd_floordiv(INT64_MAX, -2), -(INT64_MAX / 2) - 1);
    assert_int_equal(fmd_floormod(INT64_MAX, INT64_MIN), -1);
}

/* ---- (d) limits ------------------------------------------------------- */

static void test_long_or_chain(void **state) {
    (void)state;
    enum { TERMS = 100000 };
    text t = {0};
    add(&t, "mask m = q == 0");
    char term[40];
    for (int i = 1; i < TERMS; i++) {
        snprintf(term, sizeof term, " || q == %d", i);
        add(&t, term);
    }
    add(&t, ";\n");
    double t0 = now();
    fmd_diags d;
    bool ok;
    fmd_program *p = compile(t.s, t.len, &d, &ok);
    assert_true(ok);
    fmd_expr *e = p->decls[0]->expr;
    assert_int_equal(e->kind, FMD_EXPR_CHAIN);
    assert_int_equal(e->u.chain.count, TERMS);
    char *printed = fmd_print(p);
    assert_non_null(printed);
    assert_string_equal(printed, t.s);
    double elapsed = now() - t0;
    /* Linear work is milliseconds; allow for a loaded machine and ASan. */
    assert_true(elapsed < 10.0);
    free(printed);
    fmd_diags_clear(&d);
    fmd_program_free(p);
    free(t.s);
}

/* Every kind of nesting, each exactly at the limit, is accepted. */
static void test_nesting_at_limit(void **state) {
    (void)state;
    const char *open[] = {"(", "!", "true ? ", "abs(", "d["};
    const char *close[] = {")", "", " : false", ")", "]"};
    const char *inner[] = {"q < kv", "(q < kv)", "q < kv", "q", "0"};
    const char *outer[] = {"", "", "", " < 3", " < 3"};
    for (int k = 0; k < 5; k++) {
        text t = {0};
        add(&t, "input d[4];\nmask m = ");
        add_repeat(&t, open[k], FMD_MAX_NESTING - (k == 1)); /* (q < kv) is one more */
        add(&t, inner[k]);
        add_repeat(&t, close[k], FMD_MAX_NESTING - (k == 1));
        add(&t, outer[k]);
        add(&t, ";\n");
        fmd_diags d;
        bool ok;
        fmd_program *p = compile(t.s, t.len, &d, &ok);
        if (!ok) print_message("nesting kind %d: %s\n", k, d.items[0].message);
        assert_true(ok);
        char *printed = fmd_print(p);
        assert_non_null(printed);
        free(printed);
        fmd_diags_clear(&d);
        fmd_program_free(p);
        free(t.s);
    }
}

/* One level more is a located error, and the next statement is still
 * checked. */
static void test_nesting_over_limit(void **state) {
    (void)state;
    text t = {0};
    add(&t, "mask m = ");
    add_repeat(&t, "(", FMD_MAX_NESTING + 1);
    add(&t, "q < kv");
    add_repeat(&t, ")", FMD_MAX_NESTING + 1);
    add(&t, ";\nmask n = q < nothere;\n");
    fmd_diags d;
    bool ok;
    fmd_program *p = compile(t.s, t.len, &d, &ok);
    assert_false(ok);
    assert_int_equal(d.count, 2);
    fmd_diags_sort(&d, 0);
    assert_string_equal(d.items[0].message, "expression nested too deeply");
    assert_int_equal(d.items[0].line, 1);
    assert_int_equal(d.items[0].col, 10 + FMD_MAX_NESTING); /* the 1001st '(' */
    assert_string_equal(d.items[1].message, "unknown name 'nothere'");
    assert_int_equal(d.items[1].line, 2);
    fmd_diags_clear(&d);
    fmd_program_free(p);
    free(t.s);
}

/* A million levels of each nesting kind: the same clean error, quickly. */
static void test_nesting_million(void **state) {
    (void)state;
    const char *open[] = {"(", "!", "-", "q < kv ? true : "};
    const size_t levels[] = {1000000, 1000000, 1000000, 1000000};
    for (int k = 0; k < 4; k++) {
        text t = {0};
        add(&t, "mask m = ");
        add_repeat(&t, open[k], levels[k]);
        add(&t, "q < kv");
        if (k == 0) add_repeat(&t, ")", levels[k]);
        add(&t, ";\n");
        double t0 = now();
        fmd_diags d;
        bool ok;
        fmd_program *p = compile(t.s, t.len, &d, &ok);
        assert_false(ok);
        assert_int_equal(d.count, 1);
        assert_string_equal(d.items[0].message, "expression nested too deeply");
        assert_true(now() - t0 < 20.0);
        fmd_diags_clear(&d);
        fmd_program_free(p);
        free(t.s);
    }
}

/* ---- robustness: mutated example files ---------------------------------- */

/* Whatever the bytes, the front end reports errors or accepts, never
 * crashes (the sanitizer build watches memory); what it accepts prints to
 * a fixed point. */
static void test_mutations(void **state) {
    (void)state;
    static const char pool[] = "();?:-!#\n\t q9_[],=<>&|a\0\xff\xc3\x80";
    int rounds = tu_sanitizer_run() ? 40 : 300;
    glob_t g;
    assert_int_equal(glob(FM_SOURCE_DIR "/examples/masks/*.mask", 0, NULL, &g), 0);
    tu_rng rng = {12345};
    size_t accepted = 0, rejected = 0;
    for (size_t f = 0; f < g.gl_pathc; f++) {
        size_t len;
        char *orig = tu_read_file(g.gl_pathv[f], &len);
        assert_non_null(orig);
        char *buf = malloc(len + 64);
        for (int r = 0; r < rounds; r++) {
            memcpy(buf, orig, len);
            size_t n = len;
            int edits = (int)tu_rng_range(&rng, 1, 4);
            for (int e = 0; e < edits && n > 0; e++) {
                size_t at = (size_t)tu_rng_range(&rng, 0, (int64_t)n - 1);
                switch (tu_rng_range(&rng, 0, 2)) {
                case 0: buf[at] = pool[tu_rng_range(&rng, 0, sizeof pool - 2)]; break;
                case 1: memmove(buf + at, buf + at + 1, n - at - 1), n--; break;
                default:
                    memmove(buf + at + 1, buf + at, n - at), n++;
                    buf[at] = pool[tu_rng_range(&rng, 0, sizeof pool - 2)];
                    break;
                }
            }
            fmd_diags d;
            bool ok;
            fmd_program *p = compile(buf, n, &d, &ok);
            char *out = render(&d, r % 2);
            free(out);
            if (ok) {
                accepted++;
                char *t1 = fmd_print(p);
                fmd_diags d2;
                bool ok2;
                fmd_program *p2 = compile(t1, strlen(t1), &d2, &ok2);
                assert_true(ok2);
                char *t2 = fmd_print(p2);
                assert_string_equal(t1, t2);
                free(t1), free(t2);
                fmd_diags_clear(&d2);
                fmd_program_free(p2);
            } else {
                rejected++;
                assert_true(d.count > 0);
            }
            fmd_diags_clear(&d);
            fmd_program_free(p);
        }
        free(buf);
        free(orig);
    }
    globfree(&g);
    /* Both outcomes happen, or the mutations test nothing. */
    assert_true(accepted > 0);
    assert_true(rejected > 0);
}

/* ---- (e) the fmc command ------------------------------------------------ */

static char *write_case(const char *name, const char *src) {
    char *path = tu_write_temp(name, src, strlen(src));
    assert_non_null(path);
    return path;
}

/* The value of "key" in a one-line JSON object: a string (unescaped
 * enough for these messages), a number, or null. Caller frees. */
static char *json_field(const char *obj, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *at = strstr(obj, pat);
    if (!at) return NULL;
    at += strlen(pat);
    size_t n = 0;
    if (*at == '"') {
        at++;
        while (at[n] && !(at[n] == '"' && at[n - 1] != '\\'))
            n++;
    } else {
        while (at[n] && at[n] != ',' && at[n] != '}')
            n++;
    }
    char *v = malloc(n + 1);
    memcpy(v, at, n);
    v[n] = '\0';
    return v;
}

static void expect_field(const char *obj, const char *key, const char *want) {
    char *v = json_field(obj, key);
    if (!v || strcmp(v, want)) print_message("%s: want %s, got %s in %s\n", key, want, v, obj);
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void test_fmc_check_json(void **state) {
    (void)state;
    char *bad =
        write_case("bad.mask", "param window = 8;\nmask m = q < windw;\nmask n = q && kv;\n");
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s check --diagnostics json %s", FM_FMC_PATH, bad);
    assert_int_equal(tu_run(cmd, &out, &err), 1);
    assert_string_equal(out, "");
    /* One object per line: unknown name, then the two operands of &&. */
    char *lines[4] = {0};
    int n = 0;
    for (char *s = err, *nl; *s && n < 4; s = nl + 1) {
        nl = strchr(s, '\n');
        assert_non_null(nl);
        *nl = '\0';
        lines[n++] = s;
    }
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        assert_int_equal(lines[i][0], '{');
        assert_int_equal(lines[i][strlen(lines[i]) - 1], '}');
        expect_field(lines[i], "file", bad);
        expect_field(lines[i], "severity", "error");
    }
    expect_field(lines[0], "line", "2");
    expect_field(lines[0], "col", "14");
    expect_field(lines[0], "end_line", "2");
    expect_field(lines[0], "end_col", "19");
    expect_field(lines[0], "message", "unknown name 'windw'");
    expect_field(lines[0], "hint", "did you mean 'window'?");
    expect_field(lines[1], "line", "3");
    expect_field(lines[1], "col", "10");
    expect_field(lines[1], "end_col", "11");
    expect_field(lines[1], "message", "operand of '&&' must be bool, found int");
    expect_field(lines[1], "hint", "null");
    expect_field(lines[2], "col", "15");
    free(out);
    free(err);
    free(bad);
}

static void test_fmc_check_cli(void **state) {
    (void)state;
    char *good = write_case("good.mask", "param w = 4;\nmask m = kv <= q && q - kv < w;\n");
    char *bad = write_case("bad2.mask", "mask m = q +;\n");
    char cmd[2048], *out = NULL, *err = NULL;
    /* Success prints nothing. */
    snprintf(cmd, sizeof cmd, "%s check %s", FM_FMC_PATH, good);
    assert_int_equal(tu_run(cmd, &out, &err), 0);
    assert_string_equal(out, "");
    assert_string_equal(err, "");
    free(out), free(err);
    /* Every file is checked, even after one fails. */
    snprintf(cmd, sizeof cmd, "%s check %s /nonexistent/x.mask %s", FM_FMC_PATH, bad, good);
    assert_int_equal(tu_run(cmd, &out, &err), 1);
    assert_non_null(strstr(err, "bad2.mask:1:13: error: expected an expression, found ';'\n"));
    assert_non_null(
        strstr(err, "error: fmc check: cannot read '/nonexistent/x.mask': No such file or "
                    "directory\n"));
    free(out), free(err);
    /* Usage errors exit 2; help exits 0 and explains. */
    snprintf(cmd, sizeof cmd, "%s check --frobnicate %s", FM_FMC_PATH, good);
    assert_int_equal(tu_run(cmd, &out, &err), 2);
    assert_non_null(strstr(err, "unknown flag '--frobnicate'"));
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s check --diagnostics xml %s", FM_FMC_PATH, good);
    assert_int_equal(tu_run(cmd, &out, &err), 2);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s check", FM_FMC_PATH);
    assert_int_equal(tu_run(cmd, &out, &err), 2);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s check --help", FM_FMC_PATH);
    assert_int_equal(tu_run(cmd, &out, &err), 0);
    assert_non_null(strstr(out, "usage: fmc check"));
    assert_non_null(strstr(out, "exit status"));
    assert_non_null(strstr(out, "example"));
    free(out), free(err);
    /* print: the canonical text on stdout. */
    snprintf(cmd, sizeof cmd, "%s print %s", FM_FMC_PATH, good);
    assert_int_equal(tu_run(cmd, &out, &err), 0);
    assert_string_equal(out, "param w = 4;\nmask m = kv <= q && q - kv < w;\n");
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s print %s", FM_FMC_PATH, bad);
    assert_int_equal(tu_run(cmd, &out, &err), 1);
    assert_string_equal(out, "");
    free(out), free(err);
    free(good);
    free(bad);
}

static void test_fmc_file_too_big(void **state) {
    (void)state;
    size_t len = FMD_MAX_SOURCE_BYTES + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);
    char *path = tu_write_temp("big.mask", big, len);
    free(big);
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s check %s", FM_FMC_PATH, path);
    assert_int_equal(tu_run(cmd, &out, &err), 1);
    assert_non_null(strstr(err, "is larger than the 16 MiB limit"));
    free(out), free(err);
    remove(path);
    free(path);
}

/* The one JSON string rule (diagnostics, fmc blockmask's JSON, safetensors
 * headers; the last two used to differ on \r and invalid UTF-8): short
 * escapes, \u00XX for other control bytes and DEL, U+FFFD for each byte
 * that does not start valid UTF-8 (overlong, surrogate, past U+10FFFF). */
static char *json_of(const char *s, size_t n) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    fmd_json_string_n(f, s, n);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void test_json_string_rule(void **state) {
    (void)state;
    static const char in[] = "q\"\\\n\r\t\x01\x1f\x7f\xc3\xa9\xf0\x9f\x98\x80|\xff|\xc0\xaf|"
                             "\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x82";
    char *out = json_of(in, sizeof in - 1);
    assert_string_equal(out, "\"q\\\"\\\\\\n\\r\\t\\u0001\\u001f\\u007f\xc3\xa9\xf0\x9f\x98\x80|"
                             "\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
                             "\\ufffd\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"");
    free(out);
    out = json_of("a\0b", 3);
    assert_string_equal(out, "\"a\\u0000b\"");
    free(out);
    /* Every valid sequence length, and what the echo of a source line uses. */
    assert_int_equal(fmd_utf8_len((const unsigned char *)"a", 1), 1);
    assert_int_equal(fmd_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);
    assert_int_equal(fmd_utf8_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(fmd_utf8_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
    assert_int_equal(fmd_utf8_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
    assert_int_equal(fmd_utf8_len((const unsigned char *)"\xe0\x80\x80", 3), 0);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_error_limit),
        cmocka_unit_test(test_fold_table),
        cmocka_unit_test(test_fold_only_literals),
        cmocka_unit_test(test_floor_division_property),
        cmocka_unit_test(test_long_or_chain),
        cmocka_unit_test(test_nesting_at_limit),
        cmocka_unit_test(test_nesting_over_limit),
        cmocka_unit_test(test_nesting_million),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_fmc_check_json),
        cmocka_unit_test(test_fmc_check_cli),
        cmocka_unit_test(test_fmc_file_too_big),
        cmocka_unit_test(test_json_string_rule),
    };
    return TU_RUN(tests, argc, argv);
}
