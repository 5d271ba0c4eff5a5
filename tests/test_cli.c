/* The command-line tools against the CLI contract: exit statuses, the
 * JSON and text output of `fmc blockmask`, and fmviz (picture, --check on
 * every example mask, PNG and SVG). Runs the built programs. */
#define _GNU_SOURCE /* setenv, memmem */
#include <ctype.h>
#include <errno.h>
#include <png.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flexmask.h"
#include "testutil.h"

#define FMC FM_FMC_PATH
#define FMVIZ FM_FMVIZ_PATH
#define MASKS FM_SOURCE_DIR "/examples/masks"

/* ---- helpers ------------------------------------------------------------ */

/* Runs a command line; returns the exit status, keeps stdout/stderr in the
 * given (freed by the caller; may be NULL). */
static int run(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char **out, char **err, const char *fmt, ...) {
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    char *o = NULL, *e = NULL;
    int rc = tu_run(cmd, &o, &e);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return rc;
}

static char *write_mask(const char *name, const char *text) {
    char *p = tu_write_temp(name, text, strlen(text));
    assert_non_null(p);
    return p;
}

static void expect_status(int want, const char *needle, const char *cmdfmt, const char *arg) {
    char *out = NULL, *err = NULL;
    int rc = run(&out, &err, cmdfmt, arg);
    if (rc != want || (needle && (!err || !strstr(err, needle)))) {
        fprintf(stderr, "command: ");
        fprintf(stderr, cmdfmt, arg);
        fprintf(stderr, "\nexit %d (want %d), stderr should mention '%s':\n%s\n", rc, want,
                needle ? needle : "", err ? err : "(null)");
    }
    assert_int_equal(rc, want);
    if (needle) assert_non_null(strstr(err, needle));
    assert_null(strstr(err, "Sanitizer"));
    assert_null(strstr(err, "runtime error"));
    free(out);
    free(err);
}

/* A version 1.0 .npy file of little-endian integers (descr '<i4' or
 * '<i8'); shape as numpy writes it, e.g. "(4,)". */
static char *write_npy(const char *name, const char *descr, const char *shape, const void *data,
                       size_t nbytes) {
    unsigned char buf[4096];
    char dict[200];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    assert_true(n > 0 && n < 117 && nbytes <= sizeof buf - 128);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = 118; /* header length: data starts at 128 */
    buf[9] = 0;
    memset(buf + 10, ' ', 118);
    memcpy(buf + 10, dict, (size_t)n);
    buf[127] = '\n';
    memcpy(buf + 128, data, nbytes);
    char *p = tu_write_temp(name, buf, 128 + nbytes);
    assert_non_null(p);
    return p;
}

/* ---- a small JSON reader (enough for the contract's output) ------------- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jkind;
typedef struct jval {
    jkind kind;
    long long num;
    bool b;
    char *str;
    struct jval *items; /* array elements or object values */
    char **keys;        /* object keys, in order */
    size_t n;
} jval;

typedef struct jparser {
    const char *s;
    bool ok;
} jparser;

static void jskip(jparser *p) {
    while (*p->s && isspace((unsigned char)*p->s))
        p->s++;
}

static bool jparse(jparser *p, jval *v, int depth);

static char *jstring(jparser *p) {
    if (*p->s != '"') return NULL;
    p->s++;
    size_t cap = 16, n = 0;
    char *buf = malloc(cap);
    while (*p->s && *p->s != '"') {
        char ch = *p->s++;
        if (ch == '\\') {
            ch = *p->s++;
            if (ch == 'n')
                ch = '\n';
            else if (ch == 't')
                ch = '\t';
            else if (ch == 'u') { /* not produced for identifiers; keep a marker */
                for (int i = 0; i < 4 && *p->s; i++)
                    p->s++;
                ch = '?';
            }
        }
        if (n + 2 > cap) buf = realloc(buf, cap *= 2);
        buf[n++] = ch;
    }
    if (*p->s != '"') {
        free(buf);
        return NULL;
    }
    p->s++;
    buf[n] = '\0';
    return buf;
}

static bool jparse(jparser *p, jval *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > 64) return false;
    jskip(p);
    if (*p->s == '{' || *p->s == '[') {
        bool obj = *p->s == '{';
        char close = obj ? '}' : ']';
        v->kind = obj ? J_OBJ : J_ARR;
        p->s++;
        jskip(p);
        if (*p->s == close) {
            p->s++;
            return true;
        }
        for (;;) {
            v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
            if (obj) {
                v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
                jskip(p);
                if (!(v->keys[v->n] = jstring(p))) return false;
                jskip(p);
                if (*p->s++ != ':') return false;
            }
            if (!jparse(p, &v->items[v->n++], depth + 1)) return false;
            jskip(p);
            if (*p->s == ',') {
                p->s++;
                continue;
            }
            if (*p->s++ != close) return false;
            return true;
        }
    }
    if (*p->s == '"') {
        v->kind = J_STR;
        return (v->str = jstring(p)) != NULL;
    }
    if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
        v->kind = J_BOOL;
        v->b = *p->s == 't';
        p->s += v->b ? 4 : 5;
        return true;
    }
    if (!strncmp(p->s, "null", 4)) {
        p->s += 4;
        return true;
    }
    if (*p->s == '-' || isdigit((unsigned char)*p->s)) {
        char *end;
        v->kind = J_NUM;
        v->num = strtoll(p->s, &end, 10);
        p->s = end;
        return true;
    }
    return false;
}

static void jfree(jval *v) {
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

static jval *jget(jval *obj, const char *key) {
    assert_int_equal(obj->kind, J_OBJ);
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    fail_msg("JSON object has no key '%s'", key);
    return NULL;
}

static long long jnum(jval *obj, const char *key) {
    jval *v = jget(obj, key);
    assert_int_equal(v->kind, J_NUM);
    return v->num;
}

static void parse_json(const char *text, jval *root) {
    jparser p = {text, true};
    assert_true(jparse(&p, root, 0));
    jskip(&p);
    assert_int_equal(*p.s, '\0'); /* one object, nothing after it */
}

/* A list of ints as "[a, b]" for comparison. */
static void jlist_text(jval *arr, char *buf, size_t cap) {
    assert_int_equal(arr->kind, J_ARR);
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (size_t i = 0; i < arr->n; i++) {
        assert_int_equal(arr->items[i].kind, J_NUM);
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", arr->items[i].num);
    }
    snprintf(buf + n, cap - n, "]");
}

/* ---- exit statuses ------------------------------------------------------- */

static const char sliding_src[] =
    "# the contract's example\nmask sliding_window = kv <= q && q - kv < 256;\n";
static const char param_src[] =
    "param window = 256;\nparam sinks;\nmask m = kv <= q && (q - kv < window || kv < sinks);\n";

static void test_usage_errors(void **state) {
    (void)state;
    char *f = write_mask("usage.mask", sliding_src);
    expect_status(2, "--bogus", FMC " blockmask '%s' --q-len 16 --bogus", f);
    expect_status(2, "--q-len", FMC " blockmask '%s' --q-len", f);
    expect_status(2, "--q-len", FMC " blockmask '%s' --q-len 12x", f);
    expect_status(2, "--q-len", FMC " blockmask '%s' --q-len 0", f);
    expect_status(2, "--kv-len", FMC " blockmask '%s' --q-len 8 --kv-len -3", f);
    expect_status(2, "--block", FMC " blockmask '%s' --q-len 8 --block 0", f);
    expect_status(2, "--batch", FMC " blockmask '%s' --q-len 8 --batch 1_", f);
    expect_status(2, "--heads", FMC " blockmask '%s' --q-len 8 --heads 99999999999999999999", f);
    expect_status(2, "--q-len", FMC " blockmask '%s'", f);
    expect_status(2, "-D", FMC " blockmask '%s' --q-len 8 -D window", f);
    expect_status(2, "-D", FMC " blockmask '%s' --q-len 8 -D", f);
    expect_status(2, "-D", FMC " blockmask '%s' --q-len 8 -Dwindow=1__0", f);
    expect_status(2, "-D", FMC " blockmask '%s' --q-len 8 -D window=abc", f);
    expect_status(2, "-D", FMC " blockmask '%s' --q-len 8 -D window=9223372036854775808", f);
    expect_status(2, "-D", FMC " blockmask '%s' --q-len 8 -D=5", f);
    expect_status(2, "-D", FMC " blockmask '%s' --q-len 8 -D 1x=5", f);
    expect_status(2, "--input", FMC " blockmask '%s' --q-len 8 --input doc", f);
    expect_status(2, "--input", FMC " blockmask '%s' --q-len 8 --input doc=1,,2", f);
    expect_status(2, "--input", FMC " blockmask '%s' --q-len 8 --input doc=1,2,3000000000", f);
    expect_status(2, "--diagnostics", FMC " blockmask '%s' --q-len 8 --diagnostics xml", f);
    expect_status(2, "--format", FMC " blockmask '%s' --q-len 8 --format yaml", f);
    expect_status(2, "--format", FMC " blockmask '%s' --q-len 8 --format", f);
    expect_status(2, "--frobnicate", FMVIZ " '%s' --q-len 8 --frobnicate", f);
    expect_status(2, "--png", FMVIZ " '%s' --q-len 8 --png", f);
    expect_status(2, "--width", FMVIZ " '%s' --q-len 8 --width 2", f);
    expect_status(2, "--q-len", FMVIZ " '%s' --check", f);
    /* A usage error with --diagnostics json is one JSON object. */
    char *err = NULL;
    assert_int_equal(run(NULL, &err, FMC " blockmask '%s' --diagnostics json --q-len x", f), 2);
    jval root;
    parse_json(err, &root);
    assert_string_equal(jget(&root, "severity")->str, "error");
    assert_non_null(strstr(jget(&root, "message")->str, "--q-len"));
    jfree(&root);
    free(err);
    /* Help is not an error. */
    char *out = NULL;
    assert_int_equal(run(&out, NULL, FMC " blockmask --help"), 0);
    assert_non_null(strstr(out, "--format"));
    assert_non_null(strstr(out, "-D NAME=VALUE"));
    free(out);
    assert_int_equal(run(&out, NULL, FMVIZ " --help"), 0);
    assert_non_null(strstr(out, "--check"));
    assert_non_null(strstr(out, "--png"));
    free(out);
    free(f);
}

static void test_accepted_flag_forms(void **state) {
    (void)state;
    char *f = write_mask("forms.mask", param_src);
    /* -D both ways, underscores, negative values, the int64 extremes, and
     * --flag=value. */
    expect_status(0, NULL, FMC " blockmask '%s' --q-len 64 -D sinks=4 -Dwindow=1_0", f);
    expect_status(0, NULL, FMC " blockmask '%s' --q-len=64 --block=16 -D sinks=-1", f);
    expect_status(0, NULL, FMC " blockmask '%s' --q-len 64 -D sinks=-9223372036854775808", f);
    expect_status(0, NULL, FMC " blockmask '%s' --q-len 64 -D sinks=9223372036854775807", f);
    expect_status(0, NULL,
                  FMC " blockmask '%s' --q-len 64 --kv-len 32 --batch 2 --heads 3 --block-q 16 "
                      "--block-kv 8 -D sinks=0 --diagnostics text --format text",
                  f);
    free(f);
    /* A param or input that only another mask of the file uses may be set:
     * the file declares it. */
    char *two = write_mask("two.mask", "param a = 1;\nparam w = 4;\nparam unused;\n"
                                       "input doc[KV_LEN];\n"
                                       "mask m1 = kv < a;\nmask m2 = q - kv < w && doc[kv] > 0;\n");
    expect_status(0, NULL, FMC " blockmask '%s' --q-len 8 --mask m1 -D w=3 --input doc=1,2", two);
    expect_status(1, "zz", FMC " blockmask '%s' --q-len 8 --mask m1 -D zz=3", two);
    expect_status(0, NULL, FMC " blockmask '%s' --q-len 8 --mask m1 -D unused=3", two);
    expect_status(1, "param", FMC " blockmask '%s' --q-len 8 --mask m1 -D m2=3", two);
    free(two);
}

/* ---- build limits ---------------------------------------------------------- */

/* False everywhere (no square is 3 or 5 mod 7), which the analysis cannot
 * see: every position of the one tile is evaluated. */
static const char number_theory_src[] = "mask m = q * q % 7 == 3 || kv * kv % 7 == 5;\n";

/* Runs cmdfmt (one %s: the mask path) and returns its stdout, which must
 * be non-empty with exit status 0. */
static char *ok_output(const char *cmdfmt, const char *arg) {
    char *out = NULL, *err = NULL;
    int rc = run(&out, &err, cmdfmt, arg);
    if (rc != 0) fprintf(stderr, "exit %d:\n%s\n", rc, err ? err : "");
    assert_int_equal(rc, 0);
    assert_non_null(out);
    assert_true(out[0] != '\0');
    free(err);
    return out;
}

static void test_max_evaluations(void **state) {
    (void)state;
    char *f = write_mask("evals.mask", number_theory_src);
    /* 300 x 300 positions in one tile: 90000 evaluations. */
    char *plain = ok_output(FMC " blockmask '%s' --q-len 300 --block 300 --format json", f);
    assert_non_null(strstr(plain, "\"evaluations\": 90000"));
    expect_status(1, "more than 1000 point evaluations",
                  FMC " blockmask '%s' --q-len 300 --block 300 --max-evaluations 1000", f);
    expect_status(1, "evaluation bound",
                  FMC " blockmask '%s' --q-len 300 --block 300 --max-evaluations=89999", f);
    expect_status(1, "more than 500 point evaluations",
                  FMVIZ " '%s' --q-len 300 --block 300 --max-evaluations 500", f);
    /* A bound the build stays within changes nothing, nor does 0 (none). */
    const char *generous[] = {"--max-evaluations 90000", "--max-evaluations 1_000_000",
                              "--max-evaluations 0"};
    for (size_t i = 0; i < sizeof generous / sizeof generous[0]; i++) {
        char fmt[256];
        snprintf(fmt, sizeof fmt, FMC " blockmask '%%s' --q-len 300 --block 300 --format json %s",
                 generous[i]);
        char *got = ok_output(fmt, f);
        assert_string_equal(got, plain);
        free(got);
    }
    /* As JSON, the library's message is one object. */
    char *err = NULL;
    assert_int_equal(run(NULL, &err,
                         FMC " blockmask '%s' --q-len 300 --block 300 --max-evaluations 10 "
                             "--diagnostics json",
                         f),
                     1);
    jval root;
    parse_json(err, &root);
    assert_non_null(strstr(jget(&root, "message")->str, "more than 10 point evaluations"));
    jfree(&root);
    free(err);
    free(plain);
    free(f);
}

static void test_memory_budget(void **state) {
    (void)state;
    char *f = write_mask("budget.mask", "mask m = kv <= q;\n");
    /* 256 x 256 tiles: the lists take about 267 KiB. */
    const char *big = FMC " blockmask '%s' --q-len 4096 --block 16 --format json";
    char *plain = ok_output(big, f);
    char fmt[256];
    expect_status(1, "memory budget of 1024 bytes",
                  FMC " blockmask '%s' --q-len 4096 --block 16 --memory-budget 1K", f);
    expect_status(1, "memory budget of 1024 bytes",
                  FMVIZ " '%s' --q-len 4096 --block 16 --memory-budget=1024", f);
    /* Over the offsets but under the lists: the build itself stops. */
    expect_status(1, "memory budget of 262144 bytes",
                  FMC " blockmask '%s' --q-len 4096 --block 16 --memory-budget 256K", f);
    const char *enough[] = {"1M", "1048576", "1G", "8G", "1_024K"};
    for (size_t i = 0; i < sizeof enough / sizeof enough[0]; i++) {
        snprintf(fmt, sizeof fmt, "%s --memory-budget %s", big, enough[i]);
        char *got = ok_output(fmt, f);
        assert_string_equal(got, plain);
        free(got);
    }
    free(plain);
    free(f);
}

/* Every malformed limit is a usage error naming the flag, in every tool
 * that builds a BlockMask. */
static void test_limit_usage_errors(void **state) {
    (void)state;
    char *f = write_mask("limits.mask", "mask m = kv <= q;\n");
    static const char *const bad_budgets[] = {"abc",
                                              "12x",
                                              "1KiB",
                                              "1k",
                                              "1.5G",
                                              "-1",
                                              "-1K",
                                              "0",
                                              "",
                                              "K",
                                              "99999999999999999999",
                                              "9000000000G",
                                              "1__0",
                                              "_1"};
    static const char *const bad_evals[] = {"abc", "1K",  "-3", "2.5", "", "99999999999999999999",
                                            "1_",  "0x10"};
    static const char *const tools[] = {FMC " blockmask", FMVIZ, FMC " attend"};
    char cmd[512];
    for (size_t t = 0; t < sizeof tools / sizeof tools[0]; t++) {
        for (size_t i = 0; i < sizeof bad_budgets / sizeof bad_budgets[0]; i++) {
            snprintf(cmd, sizeof cmd, "%s '%%s' --q-len 8 --memory-budget '%s'", tools[t],
                     bad_budgets[i]);
            expect_status(2, "--memory-budget", cmd, f);
        }
        for (size_t i = 0; i < sizeof bad_evals / sizeof bad_evals[0]; i++) {
            snprintf(cmd, sizeof cmd, "%s '%%s' --q-len 8 --max-evaluations='%s'", tools[t],
                     bad_evals[i]);
            expect_status(2, "--max-evaluations", cmd, f);
        }
        snprintf(cmd, sizeof cmd, "%s '%%s' --q-len 8 --max-evaluations", tools[t]);
        expect_status(2, "--max-evaluations needs a value", cmd, f);
        snprintf(cmd, sizeof cmd, "%s '%%s' --q-len 8 --memory-budget", tools[t]);
        expect_status(2, "--memory-budget needs a value", cmd, f);
    }
    /* The messages say what is wrong. */
    expect_status(2, "unknown suffix", FMC " blockmask '%s' --q-len 8 --memory-budget 3T", f);
    expect_status(2, "too large", FMC " blockmask '%s' --q-len 8 --memory-budget 8796093022208G",
                  f);
    expect_status(2, "negative", FMC " blockmask '%s' --q-len 8 --max-evaluations -1", f);
    expect_status(2, "not an integer", FMC " blockmask '%s' --q-len 8 --max-evaluations 5M", f);
    /* The largest budget that fits is accepted. */
    expect_status(0, NULL, FMC " blockmask '%s' --q-len 8 --memory-budget 8589934591G", f);
    expect_status(0, NULL, FMC " blockmask '%s' --q-len 8 --memory-budget 9223372036854775807", f);
    /* A usage error with --diagnostics json is one JSON object. */
    char *err = NULL;
    assert_int_equal(
        run(NULL, &err, FMVIZ " '%s' --q-len 8 --memory-budget 1X --diagnostics json", f), 2);
    jval root;
    parse_json(err, &root);
    assert_non_null(strstr(jget(&root, "message")->str, "--memory-budget"));
    assert_non_null(strstr(jget(&root, "hint")->str, "fmviz --help"));
    jfree(&root);
    free(err);
    /* Each tool's help lists both flags. */
    static const char *const helps[] = {FMC " blockmask --help", FMC " attend --help",
                                        FMVIZ " --help"};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        char *out = NULL;
        assert_int_equal(run(&out, NULL, "%s", helps[i]), 0);
        assert_non_null(strstr(out, "--max-evaluations N"));
        assert_non_null(strstr(out, "--memory-budget SIZE"));
        free(out);
    }
    free(f);
}

/* fmc attend honours the bound too, and a generous one leaves its output
 * unchanged. */
static void test_attend_limits(void **state) {
    (void)state;
    char *f = write_mask("attend-evals.mask", number_theory_src);
    float q[64 * 2];
    for (int i = 0; i < 64 * 2; i++)
        q[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    char *qp = write_npy("attend-q.npy", "<f4", "(1, 1, 64, 2)", q, sizeof q);
    char out_a[600], out_b[600];
    snprintf(out_a, sizeof out_a, "%s/attend-a.npy", tu_temp_dir());
    snprintf(out_b, sizeof out_b, "%s/attend-b.npy", tu_temp_dir());
    char fmt[2048];
    snprintf(fmt, sizeof fmt,
             FMC " attend '%%s' --block 64 --q '%s' --k '%s' --v '%s' --out '%s' --device cpu "
                 "--max-evaluations 100",
             qp, qp, qp, out_a);
    expect_status(1, "more than 100 point evaluations", fmt, f);
    snprintf(fmt, sizeof fmt,
             FMC " attend '%%s' --block 64 --q '%s' --k '%s' --v '%s' --out '%s' --device cpu", qp,
             qp, qp, out_a);
    expect_status(0, NULL, fmt, f);
    snprintf(fmt, sizeof fmt,
             FMC " attend '%%s' --block 64 --q '%s' --k '%s' --v '%s' --out '%s' --device cpu "
                 "--max-evaluations 4096 --memory-budget 1M",
             qp, qp, qp, out_b);
    expect_status(0, NULL, fmt, f);
    size_t na, nb;
    char *a = tu_read_file(out_a, &na), *b = tu_read_file(out_b, &nb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(na, nb);
    assert_true(na > 128);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
    free(qp);
    free(f);
}

/* .npy inputs that are streams: /dev/zero is refused after its first bytes
 * (it used to be read whole, until the OOM killer came), '-' reads
 * standard input, and only one input may be '-'. */
static void test_attend_streams(void **state) {
    (void)state;
    char *f = write_mask("attend-stream.mask", "mask m = kv <= q;\n");
    float q[16 * 2];
    for (int i = 0; i < 16 * 2; i++)
        q[i] = (float)((i * 5) % 7) / 7.0f - 0.5f;
    char *qp = write_npy("attend-stream-q.npy", "<f4", "(1, 1, 16, 2)", q, sizeof q);
    char out_a[600], out_b[600], fmt[2400];
    snprintf(out_a, sizeof out_a, "%s/attend-stream-a.npy", tu_temp_dir());
    snprintf(out_b, sizeof out_b, "%s/attend-stream-b.npy", tu_temp_dir());
    /* timeout: a reader that reads the whole stream never ends here. */
    snprintf(fmt, sizeof fmt,
             "timeout 20 " FMC " attend '%%s' --q /dev/zero --k '%s' --v '%s' --out '%s' "
             "--device cpu",
             qp, qp, out_a);
    expect_status(1,
                  "error: fmc attend: /dev/zero: not a NumPy .npy file (it does not start with "
                  "\\x93NUMPY)\n",
                  fmt, f);
    snprintf(fmt, sizeof fmt,
             FMC " attend '%%s' --q '%s' --k '%s' --v '%s' --out '%s' --device cpu", qp, qp, qp,
             out_a);
    expect_status(0, NULL, fmt, f);
    snprintf(fmt, sizeof fmt,
             FMC " attend '%%s' --q - --k '%s' --v '%s' --out '%s' --device cpu < '%s'", qp, qp,
             out_b, qp);
    expect_status(0, NULL, fmt, f);
    size_t na, nb;
    char *a = tu_read_file(out_a, &na), *b = tu_read_file(out_b, &nb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(b);
    snprintf(fmt, sizeof fmt,
             "cat '%s' | " FMC " attend '%%s' --q '%s' --k - --v '%s' --out '%s' --device cpu", qp,
             qp, qp, out_b);
    expect_status(0, NULL, fmt, f);
    b = tu_read_file(out_b, &nb);
    assert_non_null(b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
    snprintf(fmt, sizeof fmt,
             "(cat '%s'; printf x) | " FMC
             " attend '%%s' --q - --k '%s' --v '%s' --out '%s' --device cpu",
             qp, qp, qp, out_b);
    expect_status(1, "error: fmc attend: <stdin>: more bytes follow the data (shape (1, 1, 16, 2) "
                     "of float32 needs 128 bytes)\n",
                  fmt, f);
    snprintf(fmt, sizeof fmt,
             FMC " attend '%%s' --q - --k '%s' --v - --out '%s' --device cpu < '%s'", qp, out_b,
             qp);
    expect_status(2,
                  "error: fmc attend: --q and --v both read standard input ('-'); only one input "
                  "may be '-'\n",
                  fmt, f);
    remove(out_a);
    remove(out_b);
    free(qp);
    free(f);
}

/* fmc check and fmc print report usage errors like every other
 * subcommand. */
static void test_check_print_usage(void **state) {
    (void)state;
    char *f = write_mask("checkusage.mask", "mask m = kv <= q;\n");
    expect_status(2, "fmc check: unknown flag '--bogus'", FMC " check --bogus '%s'", f);
    expect_status(2, "run 'fmc check --help' for the flags", FMC " check --bogus '%s'", f);
    expect_status(2, "fmc check: no mask file given", FMC " check%s", "");
    expect_status(2, "fmc check: --diagnostics must be text or json, got 'xml'",
                  FMC " check --diagnostics xml '%s'", f);
    expect_status(2, "fmc check: --diagnostics needs a value", FMC " check '%s' --diagnostics", f);
    expect_status(2, "fmc print: unknown flag '-x'", FMC " print -x '%s'", f);
    expect_status(2, "run 'fmc print --help' for the flags", FMC " print -x '%s'", f);
    expect_status(2, "fmc print: no mask file given", FMC " print%s", "");
    expect_status(2, "fmc print: more than one mask file given", FMC " print '%s' other.mask", f);
    expect_status(0, NULL, FMC " check --diagnostics=text -- '%s'", f);
    expect_status(0, NULL, FMC " print --diagnostics json '%s'", f);
    /* With --diagnostics json, even when it comes after the error. */
    const char *cmds[] = {FMC " check --bogus --diagnostics json '%s'",
                          FMC " print '%s' --diagnostics=json --bogus",
                          FMC " check --diagnostics json %.0s"};
    const char *want[] = {"fmc check: unknown flag '--bogus'", "fmc print: unknown flag '--bogus'",
                          "fmc check: no mask file given"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *err = NULL;
        assert_int_equal(run(NULL, &err, cmds[i], f), 2);
        jval root;
        parse_json(err, &root);
        assert_string_equal(jget(&root, "severity")->str, "error");
        assert_string_equal(jget(&root, "message")->str, want[i]);
        assert_non_null(strstr(jget(&root, "hint")->str, "--help"));
        jfree(&root);
        free(err);
    }
    free(f);
}

static void test_input_errors(void **state) {
    (void)state;
    char *f = write_mask("inputs.mask", param_src);
    /* A param without a default, an unknown param. */
    expect_status(1, "sinks", FMC " blockmask '%s' --q-len 16", f);
    expect_status(1, "nosuch", FMC " blockmask '%s' --q-len 16 -D sinks=1 -D nosuch=3", f);
    expect_status(1, "nosuch", FMVIZ " '%s' --q-len 16 -D sinks=1 -D nosuch=3", f);
    expect_status(1, "nosuch", FMC " blockmask '%s' --q-len 16 --mask nosuch -D sinks=1", f);
    /* Inputs: wrong size, wrong rank, unknown name, unreadable .npy. */
    char *doc = write_mask("doc.mask", "input doc[KV_LEN];\nmask d = doc[q] == doc[kv];\n");
    expect_status(0, NULL, FMC " blockmask '%s' --q-len 4 --input doc=0,0,1,1", doc);
    expect_status(1, "doc", FMC " blockmask '%s' --q-len 4 --input doc=0,0,1", doc);
    expect_status(1, "doc", FMC " blockmask '%s' --q-len 4", doc);
    expect_status(1, "other", FMC " blockmask '%s' --q-len 4 --input doc=0,0,1,1 --input other=1",
                  doc);
    expect_status(1, "doc", FMC " blockmask '%s' --q-len 4 --input doc=@/nonexistent/doc.npy", doc);
    char *junk = tu_write_temp("junk.npy", "this is not numpy", 17);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, FMC " blockmask '%%s' --q-len 4 --input doc=@%s", junk);
    expect_status(1, "junk.npy", cmd, doc);
    /* A rank-2 int32 file for a rank-1 input; int64 values beyond int32;
     * floats; and good int32 and int64 files. */
    int32_t v32[4] = {0, 0, 1, 1};
    int64_t v64[4] = {0, 0, 1, 1}, big[4] = {0, 0, (int64_t)1 << 33, 1};
    float vf[4] = {0, 0, 1, 1};
    char *r2 = write_npy("rank2.npy", "<i4", "(2, 2)", v32, sizeof v32);
    snprintf(cmd, sizeof cmd, FMC " blockmask '%%s' --q-len 4 --input doc=@%s", r2);
    expect_status(1, "rank", cmd, doc);
    char *nb = write_npy("big.npy", "<i8", "(4,)", big, sizeof big);
    snprintf(cmd, sizeof cmd, FMC " blockmask '%%s' --q-len 4 --input doc=@%s", nb);
    expect_status(1, "big.npy", cmd, doc);
    char *fl = write_npy("floats.npy", "<f4", "(4,)", vf, sizeof vf);
    snprintf(cmd, sizeof cmd, FMC " blockmask '%%s' --q-len 4 --input doc=@%s", fl);
    expect_status(1, "floats.npy", cmd, doc);
    char *r1 = write_npy("rank1.npy", "<i4", "(4,)", v32, sizeof v32);
    char *r64 = write_npy("rank1_64.npy", "<i8", "(4,)", v64, sizeof v64);
    char *out = NULL;
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 FMC " blockmask '%%s' --q-len 4 --block 2 --input doc=@%s --format json",
                 k ? r64 : r1);
        assert_int_equal(run(&out, NULL, cmd, doc), 0);
        /* doc = 0,0,1,1: the two diagonal tiles full, the others empty. */
        assert_non_null(strstr(out, "\"q_block\": 0, \"full\": [0], \"partial\": []"));
        assert_non_null(strstr(out, "\"q_block\": 1, \"full\": [1], \"partial\": []"));
        free(out);
    }
    free(nb);
    free(fl);
    free(r64);
    /* A rank-2 input from a .npy file; a list for it is the wrong rank. */
    char *t2 = write_mask("table.mask",
                          "input tbl[Q_LEN, 2];\nmask m = tbl[q, 0] <= kv && kv < tbl[q, 1];\n");
    int32_t tbl[8] = {0, 2, 0, 2, 2, 4, 2, 4}; /* rows 0,1: kv in [0,2); rows 2,3: [2,4) */
    char *tn = write_npy("tbl.npy", "<i4", "(4, 2)", tbl, sizeof tbl);
    snprintf(cmd, sizeof cmd,
             FMC " blockmask '%%s' --q-len 4 --block 2 --input tbl=@%s --format json", tn);
    assert_int_equal(run(&out, NULL, cmd, t2), 0);
    assert_non_null(strstr(out, "\"q_block\": 0, \"full\": [0], \"partial\": []"));
    assert_non_null(strstr(out, "\"q_block\": 1, \"full\": [1], \"partial\": []"));
    free(out);
    expect_status(1, "tbl", FMC " blockmask '%s' --q-len 4 --input tbl=0,2,0,2,2,4,2,4", t2);
    snprintf(cmd, sizeof cmd, FMC " blockmask '%%s' --q-len 6 --input tbl=@%s", tn);
    expect_status(1, "tbl", cmd, t2); /* [4, 2] bound, [6, 2] declared */
    free(tn);
    free(t2);
    /* Input errors in JSON: one object per line, each parseable. */
    char *jerr = NULL;
    assert_int_equal(
        run(NULL, &jerr, FMC " blockmask '%s' --q-len 4 --input doc=0,1 --diagnostics json", doc),
        1);
    size_t lines = 0;
    for (char *line = jerr, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        jval o;
        parse_json(line, &o);
        assert_string_equal(jget(&o, "severity")->str, "error");
        assert_non_null(strstr(jget(&o, "message")->str, "doc"));
        jfree(&o);
        lines++;
    }
    assert_true(lines >= 1);
    free(jerr);
    /* A malformed mask file: located diagnostics, text and JSON. */
    char *bad = write_mask("bad.mask", "mask m = kv <= ;\n");
    char *err = NULL;
    assert_int_equal(run(NULL, &err, FMC " blockmask '%s' --q-len 8", bad), 1);
    assert_non_null(strstr(err, "bad.mask:1:"));
    assert_non_null(strstr(err, ": error: "));
    assert_non_null(strstr(err, "^"));
    free(err);
    assert_int_equal(run(NULL, &err, FMC " blockmask '%s' --q-len 8 --diagnostics json", bad), 1);
    jval root;
    char *nl = strchr(err, '\n'); /* the first line is one object */
    if (nl) *nl = '\0';
    parse_json(err, &root);
    assert_int_equal(jnum(&root, "line"), 1);
    assert_true(jnum(&root, "col") >= 1);
    jget(&root, "end_line");
    jget(&root, "end_col");
    jget(&root, "hint");
    assert_string_equal(jget(&root, "severity")->str, "error");
    jfree(&root);
    free(err);
    expect_status(1, NULL, FMC " blockmask '%s' --q-len 8", "/nonexistent/file.mask");
    /* A safety failure at build time is the mask's fault for this shape. */
    char *oob = write_mask("oob.mask", "input doc[KV_LEN];\nmask d = doc[q] == doc[kv];\n");
    expect_status(1, "doc", FMC " blockmask '%s' --q-len 8 --kv-len 4 --input doc=0,0,1,1", oob);
    free(oob);
    free(bad);
    free(r1);
    free(r2);
    free(junk);
    free(doc);
    free(f);
}

/* ---- fmc blockmask output -------------------------------------------------- */

/* The tile classes of `kv <= q && q - kv < w` by brute force. */
static int brute_class(int64_t qlen, int64_t kvlen, int64_t bq, int64_t bkv, int64_t w, int64_t i,
                       int64_t j) {
    bool any_t = false, any_f = false;
    for (int64_t q = i * bq; q < (i + 1) * bq && q < qlen; q++)
        for (int64_t kv = j * bkv; kv < (j + 1) * bkv && kv < kvlen; kv++) {
            bool v = kv <= q && q - kv < w;
            any_t |= v;
            any_f |= !v;
        }
    bool clipped = (i + 1) * bq > qlen || (j + 1) * bkv > kvlen;
    return !any_t ? 0 : (any_f || clipped) ? 1 : 2;
}

/* ---- messages a new user meets ------------------------------------------ */

/* stderr of a command that must exit with want. */
static char *stderr_of(int want, const char *fmt, const char *arg) {
    char *err = NULL;
    int rc = run(NULL, &err, fmt, arg);
    if (rc != want) fprintf(stderr, "exit %d (want %d):\n%s\n", rc, want, err ? err : "");
    assert_int_equal(rc, want);
    assert_non_null(err);
    return err;
}

/* Help texts: attend's shape flags are optional (they come from the
 * arrays), the others' --q-len stays required; cuda and ptx describe
 * --diagnostics and list it in their usage lines. */
static void test_help_texts(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(run(&out, NULL, FMC " attend --help"), 0);
    assert_non_null(strstr(out, "--q-len N             number of query positions (optional: "
                                "Q's dimension 2)\n"));
    assert_non_null(strstr(out, "--kv-len N            number of key/value positions (optional: "
                                "K's dimension 2)\n"));
    assert_non_null(strstr(out, "--batch N             batch size (optional: Q's dimension 0)\n"));
    assert_null(strstr(out, "positions (required)"));
    assert_non_null(strstr(out, "--max-evaluations N")); /* the rest of the common flags */
    free(out);
    const char *others[] = {FMC " blockmask --help", FMVIZ " --help"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(run(&out, NULL, "%s", others[i]), 0);
        assert_non_null(
            strstr(out, "--q-len N             number of query positions (required)\n"));
        assert_null(strstr(out, "optional: Q's"));
        free(out);
    }
    const char *gen[] = {"cuda", "ptx"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(run(&out, NULL, FMC " %s --help", gen[i]), 0);
        assert_non_null(
            strstr(out, "  --diagnostics text|json  how errors are printed (default text)\n"));
        const char *usage_end = strstr(out, "\n\n");
        const char *flag = strstr(out, "[--diagnostics text|json]");
        assert_non_null(usage_end);
        assert_non_null(flag);
        assert_true(flag < usage_end); /* in the usage lines */
        free(out);
    }
}

/* -D and --input for a name the file does not declare: placed at the
 * selected mask, in text and JSON, with what the file declares and a
 * did-you-mean; a declared name the mask does not use is accepted. */
static void test_unknown_name_messages(void **state) {
    (void)state;
    char *c = write_mask("walk_causal.mask", "mask causal = kv <= q;\n");
    char want[2048];
    snprintf(want, sizeof want,
             "%s:1:6: error: the file declares no param named 'window'\n"
             "mask causal = kv <= q;\n"
             "     ^^^^^^\n"
             "hint: the file declares no params\n",
             c);
    char *err = stderr_of(1, FMC " blockmask '%s' --q-len 8 -D window=5", c);
    assert_string_equal(err, want);
    free(err);
    err = stderr_of(1, FMC " blockmask '%s' --q-len 8 -D window=5 --diagnostics json", c);
    jval o;
    parse_json(err, &o);
    assert_string_equal(jget(&o, "file")->str, c);
    assert_int_equal(jnum(&o, "line"), 1);
    assert_int_equal(jnum(&o, "col"), 6);
    assert_int_equal(jnum(&o, "end_col"), 12);
    assert_string_equal(jget(&o, "message")->str, "the file declares no param named 'window'");
    assert_string_equal(jget(&o, "hint")->str, "the file declares no params");
    jfree(&o);
    free(err);
    char *sw = write_mask("walk_sw.mask", "param window = 4;\nparam sinks = 1;\n"
                                          "input doc[KV_LEN];\n"
                                          "mask sw = kv <= q && q - kv < window;\n"
                                          "mask docs = doc[q] == doc[kv];\n");
    err = stderr_of(1, FMC " blockmask '%s' --mask sw --q-len 8 -D windw=5", sw);
    assert_non_null(strstr(err, ":4:6: error: the file declares no param named 'windw'\n"));
    assert_non_null(strstr(err, "hint: did you mean 'window'? (declared params: window, sinks)\n"));
    free(err);
    expect_status(0, NULL, FMC " blockmask '%s' --mask sw --q-len 8 -D sinks=5", sw);
    expect_status(0, NULL, FMC " blockmask '%s' --mask sw --q-len 8 --input doc=1", sw);
    err = stderr_of(1, FMC " blockmask '%s' --mask sw --q-len 8 --input dco=1,2", sw);
    assert_non_null(strstr(err, ":4:6: error: the file declares no input named 'dco'\n"));
    assert_non_null(strstr(err, "hint: did you mean 'doc'? (declared input: doc)\n"));
    free(err);
    err = stderr_of(1, FMC " blockmask '%s' --mask docs --q-len 4 --input window=1", sw);
    assert_non_null(strstr(err, ":1:7: error: 'window' is a param, not an input\n"));
    free(err);
    err = stderr_of(1, FMVIZ " '%s' --q-len 8 -D sw=1 --diagnostics json", sw);
    parse_json(err, &o);
    assert_string_equal(jget(&o, "file")->str, sw);
    assert_int_equal(jnum(&o, "line"), 4);
    assert_string_equal(jget(&o, "message")->str, "'sw' is a mask, not a param");
    jfree(&o);
    free(err);
    free(sw);
    free(c);
}

/* Every tool error with no place in a mask file reads
 * "error: PROG: MESSAGE", usage errors and input errors alike. */
static void test_error_prefixes(void **state) {
    (void)state;
    char *err = stderr_of(2, FMC " frob%s", "");
    assert_string_equal(err, "error: fmc: unknown subcommand 'frob'\n"
                             "hint: run 'fmc --help' for the subcommands\n");
    free(err);
    err = stderr_of(2, FMC " chek%s", "");
    assert_non_null(strstr(err, "hint: did you mean 'check'? run 'fmc --help'"));
    free(err);
    err = stderr_of(2, FMC " frob --diagnostics json%s", "");
    jval o;
    parse_json(err, &o);
    assert_string_equal(jget(&o, "message")->str, "fmc: unknown subcommand 'frob'");
    jfree(&o);
    free(err);
    char *c = write_mask("walk_prefix.mask", "mask causal = kv <= q;\n");
    float q[8 * 4] = {0};
    char *qp = write_npy("walk-q.npy", "<f4", "(1, 1, 8, 4)", q, sizeof q);
    char fmt[2048];
    snprintf(fmt, sizeof fmt,
             FMC " attend '%%s' --q '%s' --k '%s' --v '%s' --out '%s/walk-o.npy' --device cpu "
                 "--q-len 200",
             qp, qp, qp, tu_temp_dir());
    err = stderr_of(1, fmt, c);
    snprintf(fmt, sizeof fmt,
             "error: fmc attend: --q-len 200 disagrees with %s, whose Q_LEN (dimension 2) is 8\n",
             qp);
    assert_string_equal(err, fmt);
    free(err);
    /* Library messages with no place get the prefix too. */
    err = stderr_of(1, FMC " blockmask '%s' --q-len 2147483648", c);
    assert_string_equal(err,
                        "error: fmc blockmask: q_len is 2147483648; the limit is 2147483647\n");
    free(err);
    err = stderr_of(1, FMC " check /nonexistent/walk.mask%s", "");
    assert_non_null(strstr(err, "error: fmc check: cannot read '/nonexistent/walk.mask'"));
    free(err);
    err = stderr_of(1, FMVIZ " /nonexistent/walk.mask --q-len 8%s", "");
    assert_non_null(strstr(err, "error: fmviz: cannot read '/nonexistent/walk.mask'"));
    free(err);
    free(qp);
    free(c);
}

/* An input of the wrong size says what the declared dimensions are here. */
static void test_input_size_hint(void **state) {
    (void)state;
    char *doc = write_mask("walk_doc.mask", "param n = 2;\ninput doc[KV_LEN];\ninput t[Q_LEN, n];\n"
                                            "mask m = doc[q] == doc[kv] && t[q, 0] >= 0;\n");
    int32_t t[16] = {0};
    char *t82 = write_npy("walk_t82.npy", "<i4", "(8, 2)", t, sizeof t);
    char fmt[2048];
    snprintf(fmt, sizeof fmt, FMC " blockmask '%%s' --q-len 8 --input doc=1,2,3 --input t=@%s",
             t82);
    char *err = stderr_of(1, fmt, doc);
    assert_non_null(strstr(err, "error: input 'doc' is bound with shape [3] but the mask declares "
                                "shape [8] for this shape and params\n"));
    assert_non_null(strstr(err, "hint: KV_LEN is 8 here\n"));
    free(err);
    char *tn = write_npy("walk_t.npy", "<i4", "(4, 2)", t, 8 * sizeof *t); /* n is 3: [4, 3] */
    snprintf(fmt, sizeof fmt,
             FMC " blockmask '%%s' --q-len 4 --kv-len 8 --input doc=0,0,0,0,0,0,0,0 "
                 "--input t=@%s -D n=3 --diagnostics json",
             tn);
    err = stderr_of(1, fmt, doc);
    assert_null(strstr(err, "\n{")); /* one object */
    jval o;
    parse_json(err, &o);
    assert_string_equal(jget(&o, "hint")->str, "Q_LEN is 4 and n is 3 here");
    jfree(&o);
    free(err);
    free(tn);
    free(t82);
    free(doc);
}

static void test_json_contract_example(void **state) {
    (void)state;
    char *f = write_mask("sliding_window.mask", sliding_src);
    char *out = NULL;
    assert_int_equal(run(&out, NULL, FMC " blockmask '%s' --q-len 1000 --format json", f), 0);
    jval root;
    parse_json(out, &root);
    static const char *const keys[] = {"mask",          "shape",     "block", "num_q_blocks",
                                       "num_kv_blocks", "broadcast", "rows",  "stats"};
    assert_int_equal(root.n, 8);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(root.keys[i], keys[i]);
    assert_string_equal(jget(&root, "mask")->str, "sliding_window");
    jval *shape = jget(&root, "shape");
    assert_string_equal(shape->keys[0], "batch");
    assert_string_equal(shape->keys[3], "kv_len");
    assert_int_equal(jnum(shape, "batch"), 1);
    assert_int_equal(jnum(shape, "heads"), 1);
    assert_int_equal(jnum(shape, "q_len"), 1000);
    assert_int_equal(jnum(shape, "kv_len"), 1000);
    assert_int_equal(jnum(jget(&root, "block"), "q"), 128);
    assert_int_equal(jnum(jget(&root, "block"), "kv"), 128);
    assert_int_equal(jnum(&root, "num_q_blocks"), 8);
    assert_int_equal(jnum(&root, "num_kv_blocks"), 8);
    assert_true(jget(jget(&root, "broadcast"), "batch")->b);
    assert_true(jget(jget(&root, "broadcast"), "heads")->b);
    jval *rows = jget(&root, "rows");
    assert_int_equal(rows->kind, J_ARR);
    assert_int_equal(rows->n, 8);
    /* The rows the contract shows, verbatim. */
    static const char *const shown[8][2] = {{"[]", "[0]"}, {"[0]", "[1]"},     {"[1]", "[0, 2]"},
                                            {NULL, NULL},  {NULL, NULL},       {NULL, NULL},
                                            {NULL, NULL},  {"[]", "[5, 6, 7]"}};
    for (size_t i = 0; i < 8; i++) {
        jval *r = &rows->items[i];
        static const char *const rkeys[] = {"b", "h", "q_block", "full", "partial"};
        assert_int_equal(r->n, 5);
        for (size_t k = 0; k < 5; k++)
            assert_string_equal(r->keys[k], rkeys[k]);
        assert_int_equal(jnum(r, "b"), 0);
        assert_int_equal(jnum(r, "h"), 0);
        assert_int_equal(jnum(r, "q_block"), (long long)i);
        char fl[256], pl[256], want_f[256] = "[", want_p[256] = "[";
        jlist_text(jget(r, "full"), fl, sizeof fl);
        jlist_text(jget(r, "partial"), pl, sizeof pl);
        /* Every row against brute force. */
        for (int64_t j = 0; j < 8; j++) {
            int c = brute_class(1000, 1000, 128, 128, 256, (int64_t)i, j);
            char *dst = c == 2 ? want_f : c == 1 ? want_p : NULL;
            if (dst)
                snprintf(dst + strlen(dst), 256 - strlen(dst), "%s%lld", dst[1] ? ", " : "",
                         (long long)j);
        }
        strcat(want_f, "]");
        strcat(want_p, "]");
        assert_string_equal(fl, want_f);
        assert_string_equal(pl, want_p);
        if (shown[i][0]) {
            assert_string_equal(fl, shown[i][0]);
            assert_string_equal(pl, shown[i][1]);
        }
    }
    jval *stats = jget(&root, "stats");
    static const char *const skeys[] = {"full", "partial", "empty", "evaluations"};
    for (size_t k = 0; k < 4; k++)
        assert_string_equal(stats->keys[k], skeys[k]);
    assert_int_equal(jnum(stats, "full"), 6);
    assert_int_equal(jnum(stats, "partial"), 15);
    assert_int_equal(jnum(stats, "empty"), 43);
    assert_int_equal(jnum(stats, "evaluations"), 0);
    jfree(&root);
    /* The layout of the contract: one row per line, the lists with ", ". */
    assert_non_null(strstr(out, "\n    {\"b\": 0, \"h\": 0, \"q_block\": 2, \"full\": [1], "
                                "\"partial\": [0, 2]},\n"));
    assert_non_null(strstr(out, "\"num_q_blocks\": 8, \"num_kv_blocks\": 8,\n"));
    assert_non_null(strstr(out, "\"stats\": {\"full\": 6, \"partial\": 15, \"empty\": 43, "
                                "\"evaluations\": 0}\n}\n"));
    free(out);
    free(f);
}

static void test_json_broadcast_and_heads(void **state) {
    (void)state;
    /* per_head-like: differs by head, not by batch. */
    char *f = write_mask("heads.mask", "mask m = h % 2 == 0 ? kv <= q : kv >= q;\n");
    char *out = NULL;
    assert_int_equal(run(&out, NULL,
                         FMC " blockmask '%s' --q-len 64 --block 16 --batch 3 --heads 2 "
                             "--format json",
                         f),
                     0);
    jval root;
    parse_json(out, &root);
    assert_true(jget(jget(&root, "broadcast"), "batch")->b);
    assert_false(jget(jget(&root, "broadcast"), "heads")->b);
    jval *rows = jget(&root, "rows");
    assert_int_equal(rows->n, 2 * 4); /* b = 0 only, both heads */
    for (size_t i = 0; i < rows->n; i++) {
        assert_int_equal(jnum(&rows->items[i], "b"), 0);
        assert_int_equal(jnum(&rows->items[i], "h"), (long long)(i / 4));
        assert_int_equal(jnum(&rows->items[i], "q_block"), (long long)(i % 4));
    }
    char l[128];
    jlist_text(jget(&rows->items[1], "full"), l, sizeof l); /* h=0, causal */
    assert_string_equal(l, "[0]");
    jlist_text(jget(&rows->items[5], "full"), l, sizeof l); /* h=1, anti-causal */
    assert_string_equal(l, "[2, 3]");
    /* Counts over every batch and head: each head has 6 full, 4 partial,
     * 6 empty; 3 batches x 2 heads. */
    jval *stats = jget(&root, "stats");
    assert_int_equal(jnum(stats, "full"), 6 * 6);
    assert_int_equal(jnum(stats, "partial"), 6 * 4);
    assert_int_equal(jnum(stats, "empty"), 6 * 6);
    jfree(&root);
    free(out);
    free(f);
}

static void test_text_format(void **state) {
    (void)state;
    char *f = write_mask("sliding_text.mask", sliding_src);
    char *out = NULL;
    assert_int_equal(run(&out, NULL, FMC " blockmask '%s' --q-len 1000", f), 0);
    assert_non_null(strstr(out, "mask sliding_window"));
    assert_non_null(strstr(out, "q_len 1000"));
    assert_non_null(strstr(out, "b=0 h=0 q_block=0: full [] partial [0]\n"));
    assert_non_null(strstr(out, "b=0 h=0 q_block=2: full [1] partial [0 2]\n"));
    assert_non_null(strstr(out, "b=0 h=0 q_block=7: full [] partial [5 6 7]\n"));
    assert_non_null(strstr(out, "full 6, partial 15, empty 43"));
    assert_null(strstr(out, "q_block=8"));
    free(out);
    free(f);
}

/* ---- fmviz --check on the examples ------------------------------------------ */

typedef struct shape {
    int b, h, q, kv, bq, bkv;
} shape;

static size_t append(char *buf, size_t n, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t append(char *buf, size_t n, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && n + (size_t)k < cap);
    return n + (size_t)k;
}

static size_t append_list(char *buf, size_t n, size_t cap, const char *name, const int *v,
                          int len) {
    n = append(buf, n, cap, " --input %s=", name);
    for (int i = 0; i < len; i++)
        n = append(buf, n, cap, "%s%d", i ? "," : "", v[i]);
    return n;
}

/* enter/leave times of a depth-first walk over a random forest of n
 * nodes (parent < child). */
static void euler_tour(int n, tu_rng *rng, int *enter, int *leave) {
    int *parent = malloc((size_t)n * sizeof *parent), *first = malloc((size_t)n * sizeof *first);
    int *sib = malloc((size_t)n * sizeof *sib), *cur = malloc((size_t)n * sizeof *cur);
    int *stack = malloc((size_t)n * sizeof *stack), top = 0, t = 0;
    for (int i = 0; i < n; i++) {
        parent[i] = i ? (int)tu_rng_range(rng, -1, i - 1) : -1;
        first[i] = -1;
    }
    for (int k = n - 1; k >= 0; k--)
        if (parent[k] >= 0) {
            sib[k] = first[parent[k]];
            first[parent[k]] = k;
        }
    for (int r = 0; r < n; r++) {
        if (parent[r] >= 0) continue;
        enter[r] = t++;
        cur[r] = first[r];
        stack[top++] = r;
        while (top) {
            int u = stack[top - 1];
            if (cur[u] >= 0) {
                int v = cur[u];
                cur[u] = sib[v];
                enter[v] = t++;
                cur[v] = first[v];
                stack[top++] = v;
            } else {
                leave[u] = t++;
                top--;
            }
        }
    }
    free(parent);
    free(first);
    free(sib);
    free(cur);
    free(stack);
}

/* Packed requests for batched_prefill: each request's queries are the last
 * ones of its key/value sequence. */
static size_t ragged_requests(const shape *s, tu_rng *rng, char *buf, size_t n, size_t cap) {
    int *q_req = malloc((size_t)s->q * sizeof(int)), *q_pos = malloc((size_t)s->q * sizeof(int));
    int *kv_req = malloc((size_t)s->kv * sizeof(int)),
        *kv_pos = malloc((size_t)s->kv * sizeof(int));
    int *qo = calloc((size_t)s->q + 1, sizeof(int)), *kvn = calloc((size_t)s->q + 1, sizeof(int));
    int nreq = 0;
    for (int i = 0; i < s->q; i++) {
        if (i == 0 || tu_rng_range(rng, 0, 19) == 0) nreq++;
        q_req[i] = nreq - 1;
        qo[nreq - 1]++;
    }
    for (int r = 0; r < nreq; r++)
        kvn[r] = qo[r];
    for (int extra = s->kv - s->q; extra > 0; extra--)
        kvn[tu_rng_range(rng, 0, nreq - 1)]++;
    int qi = 0, ki = 0;
    for (int r = 0; r < nreq; r++) {
        for (int t = 0; t < qo[r]; t++)
            q_pos[qi++] = kvn[r] - qo[r] + t;
        for (int j = 0; j < kvn[r]; j++, ki++) {
            kv_req[ki] = r;
            kv_pos[ki] = j;
        }
    }
    n = append_list(buf, n, cap, "q_req", q_req, s->q);
    n = append_list(buf, n, cap, "q_pos", q_pos, s->q);
    n = append_list(buf, n, cap, "kv_req", kv_req, s->kv);
    n = append_list(buf, n, cap, "kv_pos", kv_pos, s->kv);
    free(q_req);
    free(q_pos);
    free(kv_req);
    free(kv_pos);
    free(qo);
    free(kvn);
    return n;
}

/* Arguments that bind the inputs (and params they depend on) of a mask
 * for shape s; false with *why set when they cannot be made. */
static bool input_args(const char *text, const shape *s, tu_rng *rng, char *buf, size_t cap,
                       const char **why) {
    size_t n = 0;
    buf[0] = '\0';
    int *a = calloc((size_t)(s->q + s->kv + 8), sizeof *a),
        *c = calloc((size_t)(s->q + s->kv + 8), sizeof *c);
    bool ok = true;
    /* Every `input NAME[` of the file. */
    for (const char *p = text; (p = strstr(p, "input ")) != NULL && ok; p += 6) {
        if (p != text && p[-1] != '\n') continue;
        char name[64];
        if (sscanf(p + 6, "%63[A-Za-z0-9_]", name) != 1) continue;
        if (!strcmp(name, "doc") || !strcmp(name, "set_id")) {
            if (s->q != s->kv) {
                *why = "needs Q_LEN == KV_LEN";
                ok = false;
                break;
            }
            int id = 0;
            for (int i = 0; i < s->kv; i++) {
                if (i && tu_rng_range(rng, 0, 40) == 0) id++;
                a[i] = id;
            }
            if (!strcmp(name, "set_id"))
                for (int i = s->kv - (int)tu_rng_range(rng, 0, s->kv / 4); i < s->kv; i++)
                    a[i] = -1;
            n = append_list(buf, n, cap, name, a, s->kv);
        } else if (!strcmp(name, "src_len") || !strcmp(name, "kv_len_of") ||
                   !strcmp(name, "tgt_len")) {
            int lim = !strcmp(name, "tgt_len") ? s->q : s->kv;
            for (int i = 0; i < s->b; i++)
                a[i] = (int)tu_rng_range(rng, 0, lim);
            n = append_list(buf, n, cap, name, a, s->b);
        } else if (!strcmp(name, "enter") || !strcmp(name, "leave")) {
            if (s->kv < s->q) {
                *why = "needs KV_LEN >= Q_LEN";
                ok = false;
                break;
            }
            if (!strcmp(name, "leave")) continue; /* written with enter */
            euler_tour(s->q, rng, a, c);
            n = append_list(buf, n, cap, "enter", a, s->q);
            n = append_list(buf, n, cap, "leave", c, s->q);
            n = append(buf, n, cap, " -D prefix=%d", s->kv - s->q);
        } else if (!strcmp(name, "q_req")) {
            if (s->kv < s->q) {
                *why = "needs KV_LEN >= Q_LEN";
                ok = false;
                break;
            }
            n = ragged_requests(s, rng, buf, n, cap);
        } else if (!strcmp(name, "q_pos") || !strcmp(name, "kv_req") || !strcmp(name, "kv_pos")) {
            continue; /* written with q_req */
        } else {
            *why = "has an input this test does not know how to fill";
            ok = false;
        }
    }
    free(a);
    free(c);
    return ok;
}

static void test_fmviz_check_examples(void **state) {
    (void)state;
    static const shape shapes[] = {
        {1, 1, 300, 300, 64, 64},
        {2, 3, 257, 257, 32, 48},
        {2, 2, 96, 200, 16, 16},
        {1, 2, 130, 130, 7, 13},
    };
    DIR *d = opendir(MASKS);
    if (!d) skip();
    struct dirent *e;
    int checked = 0;
    tu_rng rng = {42};
    static char args[1 << 16];
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".mask")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", MASKS, e->d_name);
        char *text = tu_read_file(path, NULL);
        assert_non_null(text);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const shape *s = &shapes[i];
            const char *why = NULL;
            if (!input_args(text, s, &rng, args, sizeof args, &why)) {
                printf("skip %s at %dx%d: %s\n", e->d_name, s->q, s->kv, why);
                continue;
            }
            /* Every `mask NAME` of the file, not only the default one. */
            for (const char *p = text; (p = strstr(p, "mask ")) != NULL; p += 5) {
                char name[64];
                if ((p != text && p[-1] != '\n') || sscanf(p + 5, "%63[A-Za-z0-9_]", name) != 1)
                    continue;
                char *out = NULL, *err = NULL;
                int rc = run(&out, &err,
                             FMVIZ " '%s' --check --mask %s --batch %d --heads %d --q-len %d "
                                   "--kv-len %d --block-q %d --block-kv %d%s",
                             path, name, s->b, s->h, s->q, s->kv, s->bq, s->bkv, args);
                if (rc != 0)
                    fprintf(stderr, "%s mask %s at b=%d h=%d q=%d kv=%d: exit %d\n%s%s\n",
                            e->d_name, name, s->b, s->h, s->q, s->kv, rc, out ? out : "",
                            err ? err : "");
                assert_int_equal(rc, 0);
                char want[128];
                int nq = (s->q + s->bq - 1) / s->bq, nkv = (s->kv + s->bkv - 1) / s->bkv;
                snprintf(want, sizeof want, "coverage ok: %d tiles checked\n",
                         s->b * s->h * nq * nkv);
                assert_non_null(strstr(out, want));
                free(out);
                free(err);
                checked++;
            }
        }
        free(text);
    }
    closedir(d);
    printf("fmviz --check passed for %d (mask, shape) pairs\n", checked);
    assert_true(checked >= 10);
}

/* A BlockMask with one tile reported wrongly must fail --check with exit
 * 3; fmviz offers a test hook that flips one tile as --check reads it. */
static void test_fmviz_check_detects_mismatch(void **state) {
    (void)state;
    char *f = write_mask("flip.mask", "mask m = kv <= q;\n");
    char *out = NULL;
    int rc = run(&out, NULL,
                 "FMVIZ_TEST_FLIP_TILE=0,0,1,0 " FMVIZ " '%s' --q-len 64 --block 16 --check", f);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "mismatch: b=0 h=0 q_block=1 kv_block=0"));
    assert_non_null(strstr(out, "the mask is full"));
    free(out);
    assert_int_equal(run(&out, NULL, FMVIZ " '%s' --q-len 64 --block 16 --check", f), 0);
    assert_non_null(strstr(out, "coverage ok: 16 tiles checked"));
    free(out);
    free(f);
}

/* ---- fmviz pictures ------------------------------------------------------------ */

/* Terminal tests fix the locale and width: the picture follows both. */
#define UTF8 "LC_ALL=C.UTF-8 COLUMNS=80 "

static void test_fmviz_terminal(void **state) {
    (void)state;
    char *f = write_mask("causal.mask", "mask causal = kv <= q;\n");
    char *out = NULL;
    assert_int_equal(run(&out, NULL, UTF8 FMVIZ " '%s' --q-len 1024", f), 0);
    assert_non_null(strstr(out, "\xe2\x96\x88")); /* █ */
    assert_non_null(strstr(out, "\xe2\x96\x92")); /* ▒ */
    assert_non_null(strstr(out, "legend"));
    assert_non_null(strstr(out, "kv pos"));
    assert_non_null(strstr(out, "q block"));
    assert_null(strstr(out, "\033[")); /* not a terminal: no colour */
    /* 8 x 8 tiles, 36 non-empty of 64 (each 128 x 128). */
    assert_non_null(strstr(out, "28 full, 8 partial, 28 empty of 64"));
    assert_non_null(strstr(out, "true positions: 524,800"));
    assert_non_null(strstr(out, "(50.05%)"));
    assert_non_null(strstr(out, "skipped against a dense run: 43.75%"));
    /* The diagonal: row 0 is one partial tile then empties. */
    assert_non_null(strstr(out, "\xe2\x96\x92\xe2\x96\x92\xc2\xb7 \xc2\xb7 "));
    free(out);
    assert_int_equal(run(&out, NULL, UTF8 FMVIZ " '%s' --q-len 1024 --color always", f), 0);
    assert_non_null(strstr(out, "\033["));
    free(out);
    assert_int_equal(
        run(&out, NULL, UTF8 "NO_COLOR=1 " FMVIZ " '%s' --q-len 1024 --color auto", f), 0);
    assert_null(strstr(out, "\033["));
    free(out);
    assert_int_equal(run(&out, NULL, UTF8 FMVIZ " '%s' --q-len 1024 --ascii", f), 0);
    assert_non_null(strstr(out, "|++. . . . . . . |"));
    assert_non_null(strstr(out, "|##++. . . . . . |"));
    assert_null(strstr(out, "\xe2"));
    free(out);
    /* Large grids are downsampled and say so. */
    assert_int_equal(run(&out, NULL, UTF8 FMVIZ " '%s' --q-len 131072 --width 64", f), 0);
    assert_non_null(strstr(out, "downsampled 16x"));
    assert_non_null(strstr(out, "skipped against a dense run: 49."));
    /* The diagonal cells hold full, partial and empty tiles: mixed, mostly
     * full (▓), and the legend says what the shade means. */
    assert_non_null(strstr(out, "\xe2\x96\x93\xe2\x96\x93"));
    assert_non_null(strstr(out, "mostly full"));
    free(out);
    free(f);
}

/* Display columns of a line: UTF-8 lead bytes. */
static int display_width(const char *s, size_t n) {
    int w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)s[i] & 0xC0) != 0x80;
    return w;
}

static int widest_line(const char *out) {
    int widest = 0;
    for (const char *p = out; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int w = display_width(p, n);
        if (w > widest) widest = w;
        p += n + (e != NULL);
    }
    return widest;
}

/* Every line, text included, fits $COLUMNS; tiles stay two characters
 * wide (about square), so a narrow terminal downsamples instead. */
static void test_fmviz_terminal_width(void **state) {
    (void)state;
    char *f = write_mask("sw_width.mask",
                         "param window = 1000;\nmask sliding_window = kv <= q && q - kv < window;\n");
    static const int widths[] = {40, 80, 200};
    int cells_seen[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        char *out = NULL;
        assert_int_equal(run(&out, NULL,
                             "LC_ALL=C.UTF-8 COLUMNS=%d " FMVIZ
                             " '%s' --q-len 16384 --heads 2 -D window=3000",
                             widths[i], f),
                         0);
        int widest = widest_line(out);
        if (widest > widths[i]) fprintf(stderr, "COLUMNS=%d, widest line %d:\n%s", widths[i], widest, out);
        assert_true(widest <= widths[i]);
        /* Cells in the first row of the picture: between the frame's bars. */
        const char *row = strstr(out, "\xe2\x94\x82");
        assert_non_null(row);
        const char *end = strstr(row + 3, "\xe2\x94\x82");
        assert_non_null(end);
        int chars = display_width(row + 3, (size_t)(end - row - 3));
        assert_int_equal(chars % 2, 0);
        cells_seen[i] = chars / 2;
        free(out);
    }
    /* 128 tiles a side: downsampled at 40 and 80 columns, less so at 200. */
    assert_true(cells_seen[0] < cells_seen[1] && cells_seen[1] < cells_seen[2]);
    free(f);
}

/* Outside a UTF-8 locale the picture is ASCII, frame and legend included. */
static void test_fmviz_ascii_locale(void **state) {
    (void)state;
    char *f = write_mask("ascii.mask", "mask causal = kv <= q;\n");
    char *out = NULL;
    assert_int_equal(run(&out, NULL, "LC_ALL=C COLUMNS=80 " FMVIZ " '%s' --q-len 131072", f), 0);
    for (const char *p = out; *p; p++)
        assert_true((unsigned char)*p < 0x80);
    assert_non_null(strstr(out, "|##"));
    assert_non_null(strstr(out, "legend: ##=full"));
    free(out);
    free(f);
}

/* Downsampling on a constructed case: 8 x 8 tiles whose classes come from
 * an input table, drawn 2 x 2 tiles a cell. A cell shows its majority
 * class (ties: partial, then full), in a mixed shade when its tiles
 * differ. */
static void test_fmviz_majority(void **state) {
    (void)state;
    char *f = write_mask("major.mask",
                         "input cls[64];\n"
                         "mask m = cls[(q / 4) * 8 + kv / 4] == 2 ||\n"
                         "         (cls[(q / 4) * 8 + kv / 4] == 1 && kv % 4 == 0);\n");
    int t[64] = {0};
#define T(qb, kb, k) t[(qb) * 8 + (kb)] = (k)
    T(0, 0, 2), T(0, 1, 2), T(1, 0, 2), T(1, 1, 2); /* all full */
    T(0, 2, 2), T(0, 3, 2), T(1, 2, 2);             /* 3 full, 1 empty */
    T(0, 4, 2), T(0, 5, 2);                         /* 2 full, 2 empty: a tie */
    T(0, 6, 1);                                     /* 1 partial, 3 empty */
    T(2, 0, 1), T(2, 1, 1);                         /* 2 partial, 2 empty: a tie */
    T(2, 2, 1), T(2, 3, 1), T(3, 2, 1), T(3, 3, 1); /* all partial */
    T(2, 6, 1), T(2, 7, 1), T(3, 6, 2);             /* 2 partial, 1 full, 1 empty */
#undef T
    char args[512];
    size_t n = append_list(args, 0, sizeof args, "cls", t, 64);
    (void)n;
    char *out = NULL;
    /* 26 columns leave room for 4 cells. */
    assert_int_equal(
        run(&out, NULL, "COLUMNS=26 " FMVIZ " '%s' --q-len 32 --block 4 --ascii%s", f, args), 0);
    assert_non_null(strstr(out, "downsampled 2x"));
    assert_non_null(strstr(out, "|##%%%%: |"));
    assert_non_null(strstr(out, "|**++. **|"));
    assert_non_null(strstr(out, "|. . . . |"));
    assert_non_null(strstr(out, "%%=mostly full"));
    assert_non_null(strstr(out, "**=mostly partial"));
    assert_non_null(strstr(out, ":=mostly empty\n"));
    free(out);
    /* Not downsampled: every tile its own class. */
    assert_int_equal(run(&out, NULL, "COLUMNS=80 " FMVIZ " '%s' --q-len 32 --block 4 --ascii%s", f, args), 0);
    assert_non_null(strstr(out, "|############++. |"));
    assert_non_null(strstr(out, "|++++++++. . ++++|"));
    assert_null(strstr(out, "mostly"));
    free(out);
    free(f);
}

static void test_fmviz_heads_shown(void **state) {
    (void)state;
    char *f = write_mask("heads.mask", "mask m = h % 2 == 0 ? kv <= q : kv >= q;\n");
    char *out = NULL;
    assert_int_equal(run(&out, NULL, UTF8 FMVIZ " '%s' --q-len 512 --heads 8", f), 0);
    assert_non_null(strstr(out, "b=0 h=3"));
    assert_null(strstr(out, "b=0 h=4"));
    assert_non_null(strstr(out, "4 more slices not shown"));
    free(out);
    assert_int_equal(run(&out, NULL, UTF8 FMVIZ " '%s' --q-len 512 --heads 8 --heads-shown 2", f), 0);
    assert_non_null(strstr(out, "b=0 h=1"));
    assert_null(strstr(out, "b=0 h=2"));
    free(out);
    assert_int_equal(run(&out, NULL, UTF8 FMVIZ " '%s' --q-len 512 --heads 8 --heads-shown 8", f), 0);
    assert_non_null(strstr(out, "b=0 h=7"));
    assert_null(strstr(out, "not shown"));
    free(out);
    expect_status(2, "--heads-shown", FMVIZ " '%s' --q-len 8 --heads-shown 0", f);
    expect_status(2, "--heads-shown", FMVIZ " '%s' --q-len 8 --heads-shown x", f);
    free(f);
}

static void test_fmviz_version(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(run(&out, NULL, FMVIZ " --version"), 0);
    char want[64];
    snprintf(want, sizeof want, "fmviz %s (mask language %d)\n", fm_version(), FM_LANGUAGE_VERSION);
    assert_string_equal(out, want);
    free(out);
}

/* --check evaluates every position, so it answers to --max-evaluations
 * like the build: exit 1 with the count and the bound. */
static void test_fmviz_check_max_evaluations(void **state) {
    (void)state;
    char *f = write_mask("check_bound.mask", "mask m = kv <= q;\n");
    char *err = NULL;
    assert_int_equal(run(NULL, &err, FMVIZ " '%s' --q-len 1000 --heads 2 --check --max-evaluations 1999999", f), 1);
    assert_non_null(strstr(err, "error: fmviz: --check evaluates the mask at up to 2000000 positions, "
                                "more than the evaluation bound of 1999999\n"));
    assert_non_null(strstr(err, "hint: "));
    free(err);
    char *out = NULL;
    assert_int_equal(run(&out, NULL, FMVIZ " '%s' --q-len 1000 --heads 2 --check --max-evaluations 2000000", f), 0);
    assert_non_null(strstr(out, "coverage ok: 128 tiles checked"));
    free(out);
    free(f);
}

/* The bytes of a file; *n its size. */
static unsigned char *slurp(const char *path, size_t *n) {
    char *s = tu_read_file(path, n);
    assert_non_null(s);
    return (unsigned char *)s;
}

static png_bytep *read_png(const char *path, png_uint_32 *w, png_uint_32 *h) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char sig[8];
    assert_int_equal(fread(sig, 1, 8, fp), 8);
    assert_int_equal(png_sig_cmp(sig, 0, 8), 0);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng could not read %s", path);
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    *w = png_get_image_width(png, info);
    *h = png_get_image_height(png, info);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    assert_int_equal(png_get_bit_depth(png, info), 8);
    png_bytep *src = png_get_rows(png, info);
    png_bytep *rows = malloc(*h * sizeof *rows);
    for (png_uint_32 y = 0; y < *h; y++) {
        rows[y] = malloc(*w * 3);
        memcpy(rows[y], src[y], *w * 3);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    return rows;
}

static void free_rows(png_bytep *rows, png_uint_32 h) {
    for (png_uint_32 y = 0; y < h; y++)
        free(rows[y]);
    free(rows);
}

/* Pixels of exactly this colour. */
static long count_colour(png_bytep *rows, png_uint_32 w, png_uint_32 h, int r, int g, int b) {
    long n = 0;
    for (png_uint_32 y = 0; y < h; y++)
        for (png_uint_32 x = 0; x < w; x++)
            n += rows[y][3 * x] == r && rows[y][3 * x + 1] == g && rows[y][3 * x + 2] == b;
    return n;
}

static void png_size(const char *path, png_uint_32 *w, png_uint_32 *h) {
    png_bytep *rows = read_png(path, w, h);
    free_rows(rows, *h);
}

static void test_fmviz_png(void **state) {
    (void)state;
#ifndef FM_TEST_IMAGES
    printf("# skipped: this build has no cairo (FM_CAIRO), so fmviz draws no images\n");
    skip();
#endif
    char *f = write_mask("causal_png.mask", "mask causal = kv <= q;\n");
    char png[1024];
    snprintf(png, sizeof png, "%s/causal.png", tu_temp_dir());
    char *out = NULL;
    /* 64 positions, blocks of 8: 8 x 8 pixels a position. */
    assert_int_equal(run(&out, NULL, FMVIZ " '%s' --q-len 64 --block 8 --png '%s'", f, png), 0);
    assert_non_null(strstr(out, "wrote"));
    assert_non_null(strstr(out, "one square per position"));
    free(out);
    png_uint_32 w, h;
    png_bytep *rows = read_png(png, &w, &h);
    /* Full tiles: 28 of 64 x 64 pixels less their grid lines; the true and
     * false positions of the 8 partial tiles (36 and 28 of each tile's 64);
     * no position contradicts its tile. */
    long full = count_colour(rows, w, h, 34, 139, 84), tp = count_colour(rows, w, h, 204, 96, 0),
         fp = count_colour(rows, w, h, 255, 233, 184);
    assert_true(full > 28 * 60 * 60 && full <= 28 * 64 * 64 + 12 * 12); /* + the legend's swatch */
    assert_true(tp > 8 * 36 * 60 && tp <= 8 * 36 * 64 + 12 * 12);
    assert_true(fp > 8 * 28 * 56 && fp <= 8 * 28 * 64 + 12 * 12);
    assert_int_equal(count_colour(rows, w, h, 220, 0, 40), 0);
    assert_true(w > 512 && h > 512); /* the body, with axes around it */
    free_rows(rows, h);
    png_uint_32 w1 = w, h1 = h;
    /* Several stored slices: one panel each, side by side. */
    char *ph = write_mask("heads_png.mask", "mask m = h == 0 ? kv <= q : kv >= q;\n");
    assert_int_equal(run(&out, NULL, FMVIZ " '%s' --q-len 64 --block 8 --heads 2 --png '%s'", ph, png), 0);
    assert_non_null(strstr(out, "2 panels"));
    free(out);
    png_size(png, &w, &h);
    assert_true(w > 2 * 512 && w > w1 + 400);
    assert_int_equal(h, h1);
    /* --heads-shown 1 draws one panel, and says the others are left out. */
    assert_int_equal(
        run(&out, NULL, FMVIZ " '%s' --q-len 64 --block 8 --heads 2 --heads-shown 1 --png '%s'", ph, png), 0);
    assert_non_null(strstr(out, "1 panel"));
    assert_non_null(strstr(out, "1 of 2 stored slices"));
    free(out);
    png_size(png, &w, &h);
    assert_int_equal(w, w1);
    /* Tiles instead of positions at 4K; downsampled and mixed at 128K. */
    assert_int_equal(run(&out, NULL, FMVIZ " '%s' --q-len 4096 --png '%s'", f, png), 0);
    assert_non_null(strstr(out, "one square per tile"));
    free(out);
    rows = read_png(png, &w, &h);
    assert_true(count_colour(rows, w, h, 245, 166, 35) > 32 * 14 * 14); /* partial tiles */
    assert_int_equal(count_colour(rows, w, h, 140, 200, 165), 0);      /* no mixed cell */
    free_rows(rows, h);
    assert_int_equal(run(&out, NULL, FMVIZ " '%s' --q-len 131072 --png '%s'", f, png), 0);
    assert_non_null(strstr(out, "downsampled"));
    free(out);
    rows = read_png(png, &w, &h);
    assert_true(count_colour(rows, w, h, 140, 200, 165) > 256); /* the mixed diagonal */
    free_rows(rows, h);
    /* An unwritable path is an error, not a crash. */
    expect_status(1, "/nonexistent", FMVIZ " '%s' --q-len 64 --png /nonexistent/dir/x.png", f);
    free(ph);
    free(f);
}

static void check_svg(const char *path, const char *title) {
    size_t n;
    char *svg = (char *)slurp(path, &n);
    assert_true(!strncmp(svg, "<?xml", 5) || !strncmp(svg, "<svg", 4));
    while (n && (svg[n - 1] == '\n' || svg[n - 1] == ' '))
        n--;
    assert_true(n >= 6 && !strncmp(svg + n - 6, "</svg>", 6));
    int lt = 0, gt = 0;
    for (const char *p = svg; *p; p++) {
        lt += *p == '<';
        gt += *p == '>';
    }
    assert_int_equal(lt, gt);
    assert_non_null(strstr(svg, "xmlns=\"http://www.w3.org/2000/svg\""));
    char want[256];
    snprintf(want, sizeof want, "<title>%s</title>", title);
    assert_non_null(strstr(svg, want));
    /* Lines keep their width whatever scales the image (issue 11: no
     * vector-effect that some renderers ignore). */
    assert_null(strstr(svg, "vector-effect"));
    free(svg);
}

static void test_fmviz_svg_pdf(void **state) {
    (void)state;
#ifndef FM_TEST_IMAGES
    printf("# skipped: this build has no cairo (FM_CAIRO), so fmviz draws no images\n");
    skip();
#endif
    char *f =
        write_mask("sw_svg.mask", "param window = 100;\nmask m = kv <= q && q - kv < window;\n");
    char svg[1024], pdf[1024];
    snprintf(svg, sizeof svg, "%s/m.svg", tu_temp_dir());
    snprintf(pdf, sizeof pdf, "%s/m.pdf", tu_temp_dir());
    char *out = NULL;
    assert_int_equal(run(&out, NULL, FMVIZ " '%s' --q-len 200 --block 32 --svg '%s'", f, svg), 0);
    assert_non_null(strstr(out, "one square per position"));
    free(out);
    check_svg(svg, "mask m: batch 1, heads 1, q_len 200, kv_len 200");
    size_t small;
    free(slurp(svg, &small));
    assert_int_equal(run(&out, NULL,
                         FMVIZ " '%s' --q-len 20000 --block 32 --heads 3 --svg '%s' --pdf '%s' --png '%s.png'",
                         f, svg, pdf, svg),
                     0);
    assert_non_null(strstr(out, "one square per group of tiles"));
    free(out);
    check_svg(svg, "mask m: batch 1, heads 3, q_len 20000, kv_len 20000");
    size_t n;
    unsigned char *d = slurp(pdf, &n);
    assert_true(n > 1000 && !memcmp(d, "%PDF-", 5));
    assert_non_null(memmem(d, n, "%%EOF", 5));
    free(d);
    png_uint_32 w, h;
    snprintf(svg + strlen(svg), sizeof svg - strlen(svg), ".png");
    png_size(svg, &w, &h);
    assert_true(w > 600 && h > 600);
    expect_status(1, "/nonexistent", FMVIZ " '%s' --q-len 64 --pdf /nonexistent/dir/x.pdf", f);
    expect_status(1, "/nonexistent", FMVIZ " '%s' --q-len 64 --svg /nonexistent/dir/x.svg", f);
    free(f);
}

/* ---- stdout write errors, flag suggestions, stdin, -D exit codes -------- */

/* Runs cmd (through sh) with stdout a pipe whose reader is already closed
 * and SIGPIPE ignored, so every write to stdout fails with EPIPE; returns
 * the exit status, stderr in *err. */
static int run_closed_stdout(const char *cmd, char **err) {
    char errpath[600];
    snprintf(errpath, sizeof errpath, "%s/closed_stdout.%ld", tu_temp_dir(), (long)getpid());
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        FILE *e = freopen(errpath, "w", stderr);
        if (!e || dup2(p[1], STDOUT_FILENO) < 0) _exit(126);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    *err = tu_read_file(errpath, NULL);
    unlink(errpath);
    assert_non_null(*err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* An output that cannot be written is exit 1 with the reason (cli.md), for
 * the help text too: a closed pipe, and a regular file past RLIMIT_FSIZE
 * (ulimit -f 1: 512 bytes, less than any of these outputs; stderr's file
 * takes the short message). */
static void test_stdout_write_errors(void **state) {
    (void)state;
    char *big = malloc(16384);
    assert_non_null(big);
    size_t n = 0;
    for (int i = 0; i < 100; i++) n += (size_t)snprintf(big + n, 16384 - n, "mask m%d = kv <= q + %d;\n", i, i);
    char *f = write_mask("write_err.mask", big);
    free(big);
    char *out_path = tu_write_temp("write_err.out", "", 0);
    assert_non_null(out_path);
    const char *cmds[][2] = {
        {"fmc print", FMC " print '%s'"},
        {"fmc", "F='%s' " FMC " --help"},
        {"fmc", "F='%s' " FMC " --version"},
        {"fmc check", "F='%s' " FMC " check --help"},
        {"fmc blockmask", FMC " blockmask '%s' --q-len 512 --block 16 --format json"},
        {"fmc cuda", FMC " cuda '%s'"},
        {"fmviz", "F='%s' " FMVIZ " --help"},
        {"fmviz", FMVIZ " '%s' --q-len 64 --block 8"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char cmd[4096], want[128], *err = NULL;
        snprintf(cmd, sizeof cmd, cmds[i][1], f);
        snprintf(want, sizeof want, "error: %s: cannot write to standard output: ", cmds[i][0]);
        int rc = run_closed_stdout(cmd, &err);
        if (rc != 1 || !strstr(err, want)) fprintf(stderr, "%s: exit %d\n%s\n", cmd, rc, err);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(err, want));
        assert_non_null(strstr(err, strerror(EPIPE)));
        free(err);
        if (strstr(cmds[i][1], "--version")) continue; /* shorter than 512 bytes */
        char limited[8192];
        snprintf(limited, sizeof limited, "ulimit -f 1; trap '' XFSZ; %s > '%s'", cmd,
                 out_path);
        rc = run(NULL, &err, "%s", limited);
        if (rc != 1 || !strstr(err, want)) fprintf(stderr, "%s: exit %d\n%s\n", limited, rc, err);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(err, want));
        assert_non_null(strstr(err, strerror(EFBIG)));
        free(err);
    }
    unlink(out_path);
    free(out_path);
    free(f);
}

/* An image that cannot be written in full leaves the previous one as it
 * was (a temporary is renamed into place only when complete), for every
 * format; the limit (ulimit -f 8: 4 KiB) is below each image's size. */
static void test_fmviz_failed_write_keeps_old_image(void **state) {
    (void)state;
#ifndef FM_TEST_IMAGES
    printf("# skipped: this build has no cairo (FM_CAIRO), so fmviz draws no images\n");
    skip();
#endif
    char *f = write_mask("keep.mask", "mask m = kv <= q;\n");
    const char *formats[] = {"png", "svg", "pdf"};
    for (size_t i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "keep_old.%s", formats[i]);
        static const char old[] = "the previous image";
        char *path = tu_write_temp(name, old, sizeof old - 1);
        assert_non_null(path);
        char *err = NULL;
        int rc = run(NULL, &err, "ulimit -f 8; trap '' XFSZ; " FMVIZ " '%s' --q-len 1024 --block 16 --%s '%s'",
                     f, formats[i], path);
        if (rc != 1) fprintf(stderr, "--%s: exit %d\n%s\n", formats[i], rc, err);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(err, path));
        free(err);
        size_t len = 0;
        char *now = tu_read_file(path, &len);
        assert_non_null(now);
        assert_int_equal(len, sizeof old - 1);
        assert_memory_equal(now, old, len);
        free(now);
        /* No temporary is left beside it. */
        char listing[4200];
        snprintf(listing, sizeof listing, "ls -a \"$(dirname '%s')\" | grep -c '^\\.keep_old' || true", path);
        char *out = NULL;
        assert_int_equal(run(&out, NULL, "%s", listing), 0);
        assert_string_equal(out, "0\n");
        free(out);
        unlink(path);
        free(path);
    }
    free(f);
}

/* A mistyped flag gets a did-you-mean hint in both tools, from the flags
 * that subcommand takes. */
static void test_flag_suggestions(void **state) {
    (void)state;
    char *f = write_mask("suggest.mask", "mask m = kv <= q;\n");
    const char *cases[][2] = {
        {FMC " blockmask '%s' --qlen 8",
         "error: fmc blockmask: unknown flag '--qlen'\n"
         "hint: did you mean '--q-len'? run 'fmc blockmask --help' for the flags\n"},
        {FMVIZ " '%s' --q-len 8 --qlen=8",
         "error: fmviz: unknown flag '--qlen=8'\n"
         "hint: did you mean '--q-len'? run 'fmviz --help' for the flags\n"},
        {FMVIZ " '%s' --q-len 8 --pngg x.png",
         "error: fmviz: unknown flag '--pngg'\n"
         "hint: did you mean '--png'? run 'fmviz --help' for the flags\n"},
        {FMC " check --diagnostic text '%s'",
         "error: fmc check: unknown flag '--diagnostic'\n"
         "hint: did you mean '--diagnostics'? run 'fmc check --help' for the flags\n"},
        {FMC " attend '%s' --outt o.npy",
         "error: fmc attend: unknown flag '--outt'\n"
         "hint: did you mean '--out'? run 'fmc attend --help' for the flags\n"},
        {FMC " cuda '%s' --ful",
         "error: fmc cuda: unknown flag '--ful'\n"
         "hint: did you mean '--full'? run 'fmc cuda --help' for the flags\n"},
        {FMC " blockmask '%s' --q-len 8 --xyzzy",
         "error: fmc blockmask: unknown flag '--xyzzy'\n"
         "hint: run 'fmc blockmask --help' for the flags\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = stderr_of(2, cases[i][0], f);
        assert_string_equal(err, cases[i][1]);
        free(err);
    }
    free(f);
}

/* "-" as the mask file reads standard input, named <stdin> in messages. */
static void test_stdin_mask(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(run(&out, &err, "printf 'mask m = kv <= q;\\n' | " FMC " print -"), 0);
    assert_string_equal(out, "mask m = kv <= q;\n");
    free(out);
    free(err);
    assert_int_equal(run(&out, &err, "printf 'mask m = kv <= q' | " FMC " check -"), 1);
    assert_non_null(strstr(err, "<stdin>:1:17: error: "));
    free(out);
    free(err);
    assert_int_equal(run(&out, &err,
                         "printf 'param w = 2;\\nmask m = kv <= q && q - kv < w;\\n' | " FMC
                         " blockmask - --q-len 4 --block 2 -D w=3 --format json"),
                     0);
    assert_non_null(strstr(out, "\"mask\": \"m\""));
    free(out);
    free(err);
    assert_int_equal(
        run(&out, &err, "printf 'mask m = kv <= q;\\n' | " FMVIZ " - --q-len 4 --block 2 --check"),
        0);
    assert_non_null(strstr(out, "coverage ok"));
    free(out);
    free(err);
}

/* -D for a name the file does not declare is exit 1 (located, with a
 * suggestion); a malformed value is bad usage, exit 2. */
static void test_define_exit_codes(void **state) {
    (void)state;
    char *f = write_mask("define_codes.mask", "param window = 4;\n"
                                              "mask m = kv <= q && q - kv < window;\n");
    char *err = stderr_of(1, FMC " blockmask '%s' --q-len 8 -D windw=3", f);
    assert_non_null(strstr(err, ":2:6: error: the file declares no param named 'windw'\n"));
    assert_non_null(strstr(err, "hint: did you mean 'window'?"));
    free(err);
    err = stderr_of(2, FMC " blockmask '%s' --q-len 8 -D window=abc", f);
    assert_string_equal(err, "error: fmc blockmask: -D window: 'abc' is not an integer literal "
                             "within 64 bits\nhint: run 'fmc blockmask --help' for the flags\n");
    free(err);
    err = stderr_of(1, FMVIZ " '%s' --q-len 8 -Dwindw=3", f);
    assert_non_null(strstr(err, "no param named 'windw'"));
    free(err);
    err = stderr_of(2, FMVIZ " '%s' --q-len 8 -D window=3x", f);
    assert_non_null(strstr(err, "error: fmviz: -D window: '3x' is not an integer literal"));
    free(err);
    free(f);
}

int main(int argc, char **argv) {
    /* Under the sanitizers a memory error in a tool must not pass for the
     * exit status 1 of a bad input. */
    setenv("ASAN_OPTIONS", "exitcode=86", 0);
    setenv("UBSAN_OPTIONS", "exitcode=87:halt_on_error=1", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_accepted_flag_forms),
        cmocka_unit_test(test_max_evaluations),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_limit_usage_errors),
        cmocka_unit_test(test_attend_limits),
        cmocka_unit_test(test_attend_streams),
        cmocka_unit_test(test_check_print_usage),
        cmocka_unit_test(test_input_errors),
        cmocka_unit_test(test_help_texts),
        cmocka_unit_test(test_unknown_name_messages),
        cmocka_unit_test(test_error_prefixes),
        cmocka_unit_test(test_input_size_hint),
        cmocka_unit_test(test_json_contract_example),
        cmocka_unit_test(test_json_broadcast_and_heads),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_fmviz_check_examples),
        cmocka_unit_test(test_fmviz_check_detects_mismatch),
        cmocka_unit_test(test_fmviz_check_max_evaluations),
        cmocka_unit_test(test_fmviz_terminal),
        cmocka_unit_test(test_fmviz_terminal_width),
        cmocka_unit_test(test_fmviz_ascii_locale),
        cmocka_unit_test(test_fmviz_majority),
        cmocka_unit_test(test_fmviz_heads_shown),
        cmocka_unit_test(test_fmviz_version),
        cmocka_unit_test(test_fmviz_png),
        cmocka_unit_test(test_fmviz_svg_pdf),
        cmocka_unit_test(test_fmviz_failed_write_keeps_old_image),
        cmocka_unit_test(test_stdout_write_errors),
        cmocka_unit_test(test_flag_suggestions),
        cmocka_unit_test(test_stdin_mask),
        cmocka_unit_test(test_define_exit_codes),
    };
    return TU_RUN(tests, argc, argv);
}
